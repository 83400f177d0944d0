# Shared by the recipes' run.sh: option parsing, stage selection with done-markers, and
# timestamped log lines. Source it after the configuration block.
#
#   parse_options "$@"  Kaldi's convention (utils/parse_options.sh): --name VALUE sets the
#                     configuration variable name (dashes read as underscores) that run.sh
#                     defines, e.g. --stop-stage 2, --exp-dir DIR; --quick sets quick=1
#   stage N "what" [VAR...]
#                     true when stage N is selected (--stage/--stop-stage) and not done yet;
#                     prints why it is skipped otherwise. VARs are the configuration
#                     variables the stage's results depend on.
#   done_stage N      marks stage N finished (a rerun skips it)
#
# A stage is only marked done when it finished; an interrupted stage runs again, and
# training resumes from its model file. The marker, $exp_dir/.done.N, holds the stage's
# settings: its VARs as NAME=VALUE lines and those of the done stages before it (prefixed
# with their number), so that a rerun with another setting does not silently keep results
# made with the old one: it stops, naming what changed (remove the marker to redo the
# stage and those after it, or choose another --exp-dir). An empty marker (from an older
# rwthlm_py) counts as done with unknown settings.

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

declare -A stage_settings_of  # stage number -> the settings its marker will hold

stage() {
  local number=$1 what=$2 marker=$exp_dir/.done.$1 settings
  shift 2
  if [ "$number" -lt "$stage" ] || [ "$number" -gt "$stop_stage" ]; then
    return 1
  fi
  settings=$(settings_of_stage "$number" "$@")
  if [ -f "$marker" ]; then
    if [ ! -s "$marker" ] || [ "$(cat "$marker")" = "$settings" ]; then
      log "Stage $number ($what): done already (remove $marker to redo it)"
      return 1
    fi
    echo "$(basename "$0"): stage $number ($what) was done with other settings; was (<) and now (>):" >&2
    diff <(cat "$marker") <(printf '%s\n' "$settings") | grep '^[<>]' >&2
    die "remove $marker to redo stage $number and the stages after it with these settings, or choose another --exp-dir"
  fi
  stage_settings_of[$number]=$settings
  log "Stage $number: $what"
  return 0
}

# the NAME=VALUE lines of the variables given, then the own lines of every earlier stage's marker
settings_of_stage() {
  local number=$1 name earlier
  shift
  for name in "$@"; do
    printf '%s=%s\n' "$name" "${!name-}"
  done
  for ((earlier = 1; earlier < number; earlier++)); do
    [ -f "$exp_dir/.done.$earlier" ] && sed -n "/^stage/!s/^/stage$earlier./p" "$exp_dir/.done.$earlier"
  done
  return 0
}

done_stage() {
  printf '%s\n' "${stage_settings_of[$1]-}" > "$exp_dir/.done.$1.tmp"
  mv "$exp_dir/.done.$1.tmp" "$exp_dir/.done.$1"
}

# the command lines of the environment rwthlm_py is installed in
find_tools() {
  command -v rwthlm >/dev/null && command -v rwthlm-py >/dev/null \
    || die "rwthlm and rwthlm-py are not on PATH: activate the environment rwthlm_py is installed in (pip install -e .)"
}
