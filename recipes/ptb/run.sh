#!/usr/bin/env bash
# Penn Treebank (Mikolov's split): train ptb-i200-m200 the rwthlm way, then dev and test
# perplexity. The default configuration is the one whose figures the README reports.
#
#   bash recipes/ptb/run.sh --corpora ../shared/corpora                 # full softmax
#   bash recipes/ptb/run.sh --corpora ../shared/corpora --classes 100   # exchange classes
#   bash recipes/ptb/run.sh --corpora ../shared/corpora --quick         # a few minutes
#
# Stages: 1 fetch and verify the corpus, 2 vocabulary (with --classes: word classes by the
# exchange algorithm or frequency binning), 3 training, 4 perplexity of dev and test
# (stream mode as trained, and test sentence by sentence). Finished stages are skipped
# when run again; an interrupted training resumes where it stopped.
#
# Options: --NAME VALUE sets any variable of the configuration block below (--stage N,
# --stop-stage N, --exp-dir DIR, --corpora DIR, --max-epoch N, ...); --quick is a flag.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# ---- configuration --------------------------------------------------------------------
corpora=${RWTHLM_CORPORA:-}       # folder with the corpora (else they are downloaded)
corpus_dir=""                     # the PTB folder itself: the older spelling of --corpora
exp_dir=exp/ptb                   # everything this recipe writes goes here
network=ptb-i200-m200             # rwthlm network string: projection 200, LSTM 200
classes=0                         # 0: full softmax; N: N word classes
method=exchange                   # how classes are made: exchange or frequency
max_iterations=20                 # iterations of the exchange algorithm
batch_size=20                     # parallel streams
sequence_length=36                # context word + 35 predicted words per chunk
wrapping=stream                   # carry the state from chunk to chunk (not in rwthlm)
clipping=0.25                     # largest gradient norm per word (not in rwthlm)
learning_rate=0.025               # for the summed gradient of 700 words
min_improvement=1.01              # also halve the rate after a dev gain below 1% (not in rwthlm)
dropout=0                         # dropout on the hidden layers' outputs while training (not in rwthlm)
tie_weights=0                     # 1: share the projection with the output (full softmax, equal sizes)
max_epoch=10
stage=1
stop_stage=4
quick=0                           # --quick: a 64-unit network, 50 classes (5 exchange iterations), one epoch
# ---------------------------------------------------------------------------------------

. "$here/../utils/stages.sh"
parse_options "$@"
corpora=${corpus_dir:-$corpora}
if [ "$quick" = 1 ]; then
  network=ptb-i64-m64 max_epoch=1 max_iterations=5 exp_dir=$exp_dir-quick
  [ "$classes" -gt 0 ] || classes=50
fi
. "$here/../utils/word_lm.sh"
find_tools

word_lm_experiment

if stage 1 "fetch and verify PTB"; then
  bash "$here/local/prepare_data.sh" ptb "$data" ptb.train.txt.gz ptb.valid.txt.gz ptb.test.txt.gz "$corpora"
  done_stage 1
fi

word_lm_stages
log "done: $exp_dir/results.txt; curves: tensorboard --logdir $(board_dir)"
