#!/usr/bin/env bash
# Penn Treebank (Mikolov's split): train ptb-i200-m200 the rwthlm way, then test perplexity.
#
#   bash recipes/ptb/run.sh --corpus-dir ../shared/corpora/ptb             # full softmax
#   bash recipes/ptb/run.sh --corpus-dir ../shared/corpora/ptb --classes 100   # exchange classes
#   bash recipes/ptb/run.sh --corpus-dir ../shared/corpora/ptb --classes 100 --method frequency
#   bash recipes/ptb/run.sh --corpus-dir ../shared/corpora/ptb --quick     # a few minutes
#
# Stages: 1 vocabulary (with --classes: word classes made by the exchange algorithm or by
# frequency binning), 2 training,
# 3 test perplexity (stream mode as trained, and sentence by sentence). Training resumes
# where it stopped when run again; finished stages are skipped.
set -euo pipefail

# ---- configuration --------------------------------------------------------------------
corpus_dir=${RWTHLM_PTB:-}        # folder with ptb.{train,valid,test}.txt.gz
exp_dir=exp                       # everything this recipe writes goes here
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
max_epoch=10
stage=1
stop_stage=3
quick=0                           # --quick: a 64-unit network, 50 classes (5 exchange iterations), one epoch
# ---------------------------------------------------------------------------------------

while [ $# -gt 0 ]; do
  case "$1" in
    --corpus-dir) corpus_dir=$2; shift 2 ;;
    --exp-dir) exp_dir=$2; shift 2 ;;
    --classes) classes=$2; shift 2 ;;
    --method) method=$2; shift 2 ;;
    --max-epoch) max_epoch=$2; shift 2 ;;
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --quick) network=ptb-i64-m64; max_epoch=1; quick=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

if [ "$quick" = 1 ]; then
  exp_dir=$exp_dir-quick
  [ "$classes" -gt 0 ] || classes=50
  max_iterations=5
fi

log() { echo "$(date '+%Y-%m-%d %H:%M:%S') $*"; }

if [ -z "$corpus_dir" ]; then
  echo "give --corpus-dir DIR (the folder with ptb.train.txt.gz, ptb.valid.txt.gz, ptb.test.txt.gz)" >&2
  exit 2
fi
for split in train valid test; do
  [ -f "$corpus_dir/ptb.$split.txt.gz" ] || { echo "missing $corpus_dir/ptb.$split.txt.gz" >&2; exit 2; }
done

name=$network
suffix=""
[ "$classes" -gt 0 ] && suffix=$classes${method:0:1}
[ "$classes" -gt 0 ] && name=ptb$suffix-${network#*-}
mkdir -p "$exp_dir"
model=$exp_dir/$name
vocab=$exp_dir/vocab$suffix

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ] && [ ! -f "$vocab" ]; then
  log "Stage 1: vocabulary"
  if [ "$classes" -gt 0 ]; then
    python -m rwthlm_py vocab --train "$corpus_dir/ptb.train.txt.gz" --classes "$classes" --method "$method" \
      --max-iterations "$max_iterations" --out "$vocab"
  else
    python -m rwthlm_py vocab --train "$corpus_dir/ptb.train.txt.gz" --out "$vocab"
  fi
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  log "Stage 2: training $model"
  rwthlm --train "$corpus_dir/ptb.train.txt.gz" --dev "$corpus_dir/ptb.valid.txt.gz" --vocab "$vocab" \
    --batch-size $batch_size --sequence-length $sequence_length --word-wrapping $wrapping \
    --gradient-clipping $clipping --learning-rate $learning_rate --min-improvement $min_improvement \
    --max-epoch $max_epoch "$model" \
    | tee -a "$exp_dir/train-$name.log"
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "Stage 3: test perplexity"
  rwthlm --ppl "$corpus_dir/ptb.test.txt.gz" --batch-size $batch_size --sequence-length $sequence_length \
    --word-wrapping $wrapping "$model" | tail -n 4
  log "sentence by sentence (verbatim, state reset at every sentence):"
  rwthlm --ppl "$corpus_dir/ptb.test.txt.gz" --batch-size 64 --sequence-length 100 \
    --word-wrapping verbatim "$model" | tail -n 4
fi
