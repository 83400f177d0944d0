# Shared by the recipes' run.sh: option parsing for the common flags, stage selection with
# done-markers, and timestamped log lines. Source it after the configuration block.
#
#   stage N "what"    true when stage N is selected (--stage/--stop-stage) and not done yet;
#                     prints why it is skipped otherwise
#   done_stage N      marks stage N finished (a rerun skips it)
#
# A stage is only marked done when it finished; an interrupted stage runs again, and
# training resumes from its model file.

log() { echo "$(date '+%Y-%m-%d %H:%M:%S') $*"; }

die() { echo "$(basename "$0"): $*" >&2; exit 2; }

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
