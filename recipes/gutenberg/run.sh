#!/usr/bin/env bash
# Project Gutenberg books (raw text) with subword units: normalise the books, train a
# sentencepiece model, train an LSTM on the pieces, and report perplexity per piece and per
# word (a word's piece log-probabilities summed), which compares with word-level models.
#
#   bash recipes/gutenberg/run.sh --corpora ../shared/corpora
#   bash recipes/gutenberg/run.sh --corpora ../shared/corpora --quick   # a few minutes
#
# Stages: 1 fetch, verify and normalise the books (local/normalize.py), 2 sentencepiece
# model and the pieces of every split (local/subwords.py), 3 training, 4 perplexity of dev
# and test per piece and per word (local/word_perplexity.py). Finished stages are skipped
# when run again; an interrupted training resumes where it stopped.
#
# Options: --NAME VALUE sets any variable of the configuration block below (--stage N,
# --stop-stage N, --exp-dir DIR, --corpora DIR, --max-epoch N, ...); --quick is a flag.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# ---- configuration --------------------------------------------------------------------
corpora=${RWTHLM_CORPORA:-}       # folder with the corpora (else they are downloaded)
exp_dir=exp/gutenberg             # everything this recipe writes goes here
held_out=0.05                     # the last 5% of each book is test, the 5% before dev
pieces=8000                       # sentencepiece vocabulary (unigram model)
network=gut-i200-m200             # rwthlm network string: projection 200, LSTM 200
batch_size=20                     # parallel streams
sequence_length=36                # context piece + 35 predicted pieces per chunk
wrapping=stream                   # carry the state from chunk to chunk (not in rwthlm)
clipping=0.25                     # largest gradient norm per piece (not in rwthlm)
learning_rate=0.025               # for the summed gradient of 700 pieces
min_improvement=1.01              # also halve the rate after a dev gain below 1% (not in rwthlm)
dropout=0                         # dropout on the hidden layers' outputs while training (not in rwthlm)
tie_weights=0                     # 1: share the projection with the output (full softmax, equal sizes)
max_epoch=8
verbatim_length=0                 # no sentence-by-sentence run: book sentences reach 2,000 pieces
stage=1
stop_stage=4
quick=0                           # --quick: 2000 pieces, a 64-unit network, one epoch
# ---------------------------------------------------------------------------------------

. "$here/../utils/stages.sh"
parse_options "$@"
if [ "$quick" = 1 ]; then
  network=gut-i64-m64 pieces=2000 max_epoch=1 exp_dir=$exp_dir-quick
fi
. "$here/../utils/word_lm.sh"
find_tools

name=${network%%-*}$pieces-${network#*-}
exp_dir=$exp_dir/$name
mkdir -p "$exp_dir"
data=$exp_dir/data model=$exp_dir/$name vocab=$exp_dir/data/pieces.vocab.lm
train_text=$data/train.pieces.gz dev_text=$data/dev.pieces.gz test_text=$data/test.pieces.gz

if stage 1 "fetch, verify and normalise the books" held_out; then
  from=()
  [ -n "$corpora" ] && from=(--from "$corpora")
  rwthlm-py corpora fetch gutenberg --dest "$exp_dir/.." "${from[@]}"
  python "$here/local/normalize.py" "$exp_dir/../gutenberg" "$data" --held-out $held_out
  done_stage 1
fi

if stage 2 "sentencepiece model with $pieces pieces" pieces; then
  python "$here/local/subwords.py" "$data" $pieces
  done_stage 2
fi

if stage 3 "training $name on pieces" network batch_size sequence_length wrapping clipping learning_rate \
    min_improvement dropout tie_weights max_epoch; then
  training_stage
  done_stage 3
fi

if stage 4 "perplexity of dev and test, per piece and per word" batch_size sequence_length wrapping verbatim_length; then
  perplexity_stage
  for split in dev test; do
    echo "$split: $(python "$here/local/word_perplexity.py" "$exp_dir/ppl.$split" "$data/$split.txt.gz")"
  done | tee -a "$exp_dir/results.txt"
  done_stage 4
fi
log "done: $exp_dir/results.txt; curves: tensorboard --logdir $(board_dir)"
