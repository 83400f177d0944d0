# Shared by the recipes' run.sh: option parsing, stage selection with done-markers, and
# timestamped log lines. Source it after the configuration block.
#
#   parse_options "$@"  Kaldi's convention (utils/parse_options.sh): --name VALUE sets the
#                     configuration variable name (dashes read as underscores) that run.sh
#                     defines, e.g. --stop-stage 2, --exp-dir DIR; --quick sets quick=1
#   stage N "what"    true when stage N is selected (--stage/--stop-stage) and not done yet;
#                     prints why it is skipped otherwise
#   done_stage N      marks stage N finished (a rerun skips it)
#
# A stage is only marked done when it finished; an interrupted stage runs again, and
# training resumes from its model file.

log() { echo "$(date '+%Y-%m-%d %H:%M:%S') $*"; }

die() { echo "$(basename "$0"): $*" >&2; exit 2; }

parse_options() {
  local name
  while [ $# -gt 0 ]; do
    case "$1" in
      --quick) quick=1; shift ;;
      --*=*) set -- "${1%%=*}" "${1#*=}" "${@:2}" ;;
      --*)
        name=${1#--}
        name=${name//-/_}
        [ -n "${!name+set}" ] || die "unknown option $1 (the options are the variables of the configuration block)"
        [ $# -ge 2 ] || die "$1 needs a value"
        printf -v "$name" '%s' "$2"
        shift 2 ;;
      *) die "unknown argument $1" ;;
    esac
  done
}

stage() {
  local number=$1 what=$2
  if [ "$number" -lt "$stage" ] || [ "$number" -gt "$stop_stage" ]; then
    return 1
  fi
  if [ -f "$exp_dir/.done.$number" ]; then
    log "Stage $number ($what): done already (remove $exp_dir/.done.$number to redo it)"
    return 1
  fi
  log "Stage $number: $what"
  return 0
}

done_stage() { touch "$exp_dir/.done.$1"; }

# the command lines of the environment rwthlm_py is installed in
find_tools() {
  command -v rwthlm >/dev/null && command -v rwthlm-py >/dev/null \
    || die "rwthlm and rwthlm-py are not on PATH: activate the environment rwthlm_py is installed in (pip install -e .)"
}
