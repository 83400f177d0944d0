#!/usr/bin/env bash
# Fetches and verifies a corpus with `rwthlm-py corpora fetch`, then links its splits as
# train/dev/test.txt.gz in DATA_DIR.
#
#   prepare_data.sh CORPUS DATA_DIR TRAIN_FILE DEV_FILE TEST_FILE [SOURCE_DIR]
#
# SOURCE_DIR (or $RWTHLM_CORPORA) holds the files; without it they are downloaded.
set -euo pipefail
corpus=$1 data_dir=$2 train=$3 dev=$4 test=$5 source=${6:-${RWTHLM_CORPORA:-}}
from=()
[ -n "$source" ] && from=(--from "$source")
rwthlm-py corpora fetch "$corpus" --dest "$data_dir" "${from[@]}"
ln -sfn "$corpus/$train" "$data_dir/train.txt.gz"
ln -sfn "$corpus/$dev" "$data_dir/dev.txt.gz"
ln -sfn "$corpus/$test" "$data_dir/test.txt.gz"
