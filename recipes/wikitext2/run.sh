#!/usr/bin/env bash
# WikiText-2 (v1, tokenised, 33,278 words with <eos>): a 1x200 LSTM with word classes made by
# the exchange algorithm, then dev and test perplexity.
#
#   bash recipes/wikitext2/run.sh --corpora ../shared/corpora
#   bash recipes/wikitext2/run.sh --corpora ../shared/corpora --quick   # a few minutes
#
# Stages: 1 fetch and verify the corpus, 2 vocabulary with word classes, 3 training,
# 4 perplexity of dev and test. Finished stages are skipped when run again; an
# interrupted training resumes where it stopped.
#
# Options: --NAME VALUE sets any variable of the configuration block below (--stage N,
# --stop-stage N, --exp-dir DIR, --corpora DIR, --max-epoch N, ...); --quick is a flag.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# ---- configuration --------------------------------------------------------------------
corpora=${RWTHLM_CORPORA:-}       # folder with the corpora (else they are downloaded)
exp_dir=exp/wikitext2             # everything this recipe writes goes here
network=wt2-i200-m200             # rwthlm network string: projection 200, LSTM 200
classes=200                       # word classes (about the square root of 33,278); 0: full softmax
method=exchange                   # how classes are made: exchange or frequency
max_iterations=10                 # iterations of the exchange algorithm
batch_size=20                     # parallel streams
sequence_length=36                # context word + 35 predicted words per chunk
wrapping=stream                   # carry the state from chunk to chunk (not in rwthlm)
clipping=0.25                     # largest gradient norm per word (not in rwthlm)
learning_rate=0.025               # for the summed gradient of 700 words
min_improvement=1.01              # also halve the rate after a dev gain below 1% (not in rwthlm)
dropout=0                         # dropout on the hidden layers' outputs while training (not in rwthlm)
tie_weights=0                     # 1: share the projection with the output (full softmax, equal sizes)
max_epoch=8
verbatim_length=500               # the sentence-by-sentence run takes paragraphs of up to 481 words
stage=1
stop_stage=4
quick=0                           # --quick: a 64-unit network, 3 exchange iterations, one epoch
# ---------------------------------------------------------------------------------------

. "$here/../utils/stages.sh"
parse_options "$@"
if [ "$quick" = 1 ]; then
  network=wt2-i64-m64 max_epoch=1 max_iterations=3 exp_dir=$exp_dir-quick
fi
. "$here/../utils/word_lm.sh"
find_tools

word_lm_experiment

if stage 1 "fetch and verify WikiText-2"; then
  bash "$here/local/prepare_data.sh" wikitext2 "$data" wiki.train.tokens.gz wiki.valid.tokens.gz \
    wiki.test.tokens.gz "$corpora"
  done_stage 1
fi

word_lm_stages
log "done: $exp_dir/results.txt; curves: tensorboard --logdir $(board_dir)"
