#!/usr/bin/env bash
# The toy recipe: every stage of a real recipe, on text the project writes itself, in
# well under a minute. The test suite runs it.
#
#   bash recipes/toy/run.sh [--exp-dir DIR] [--stage N] [--stop-stage N] [--quick]
#
# Stages: 1 write the text (local/make_text.py), 2 vocabulary with word classes (exchange
# algorithm), 3 training, 4 perplexity of dev and test, 5 n-best rescoring of test
# sentences' generated lists (local/make_nbest.py) with word error rates, 6 the same lists
# as lattices (local/make_lattices.py), rescored with word error rates. Finished stages
# are skipped when run again; an interrupted training resumes.
#
# Options: --NAME VALUE sets any variable of the configuration block below (--stage N,
# --stop-stage N, --exp-dir DIR, --max-epoch N, ...); --quick is a flag.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# ---- configuration --------------------------------------------------------------------
exp_dir=exp/toy                   # everything this recipe writes goes here
network=toy-i16-m16               # projection 16, LSTM 16
classes=6                         # word classes of the output (exchange algorithm)
batch_size=8
sequence_length=20
learning_rate=0.02
clipping=1                        # largest gradient norm per word
max_epoch=6
nbest_utterances=100              # n-best lists of the first test sentences
nbest_hypotheses=50               # hypotheses per list
lm_weight=1                       # total = acoustic + lm_weight * LM (log10)
quick=0                           # --quick: 3 epochs (the whole recipe is quick; this halves training)
stage=1
stop_stage=6
# ---------------------------------------------------------------------------------------

. "$here/../utils/stages.sh"
parse_options "$@"
if [ "$quick" = 1 ]; then
  max_epoch=3
fi
find_tools
mkdir -p "$exp_dir"
data=$exp_dir/data model=$exp_dir/$network vocab=$exp_dir/vocab.$classes
common=(--batch-size $batch_size --sequence-length $sequence_length --record "$exp_dir")

if stage 1 "write the toy text"; then
  python "$here/local/make_text.py" "$data"
  done_stage 1
fi

if stage 2 "vocabulary with $classes word classes" classes; then
  rwthlm-py vocab --train "$data/train.txt" --classes $classes --method exchange --out "$vocab" \
    --record "$exp_dir"
  done_stage 2
fi

if stage 3 "training $network" network batch_size sequence_length learning_rate clipping max_epoch; then
  rwthlm --train "$data/train.txt" --dev "$data/dev.txt" --vocab "$vocab" "${common[@]}" \
    --learning-rate $learning_rate --gradient-clipping $clipping --max-epoch $max_epoch --tensorboard "$exp_dir/tensorboard" "$model"
  done_stage 3
fi

if stage 4 "perplexity of dev and test" batch_size sequence_length; then
  for split in dev test; do
    rwthlm-py ppl --ppl "$data/$split.txt" "${common[@]}" --tensorboard "$exp_dir/tensorboard" "$model" \
      | tail -n 1 > "$exp_dir/perplexity.$split"
    log "$split perplexity: $(cat "$exp_dir/perplexity.$split")"
  done
  done_stage 4
fi

if stage 5 "n-best rescoring of $nbest_utterances test sentences' lists" nbest_utterances nbest_hypotheses lm_weight; then
  python "$here/local/make_nbest.py" "$data/test.txt" "$exp_dir/nbest" --utterances $nbest_utterances \
    --hypotheses $nbest_hypotheses
  rwthlm-py nbest --nbest "$exp_dir/nbest/lists" --refs "$exp_dir/nbest/refs" --lm-weight $lm_weight \
    --out "$exp_dir/nbest/rescored" --record "$exp_dir" "$model" > "$exp_dir/wer.test"
  while read -r line; do log "$line"; done < "$exp_dir/wer.test"
  done_stage 5
fi

if stage 6 "lattice rescoring of the same lists as word graphs"; then
  python "$here/local/make_lattices.py" "$exp_dir/nbest/lists" "$exp_dir/lattices"
  mkdir -p "$exp_dir/lattices/rescored"
  rwthlm-py lattice --lambda 1 --pruning-threshold 0 --output ctm --refs "$exp_dir/nbest/refs" \
    --out "$exp_dir/lattices/rescored" --record "$exp_dir" "$exp_dir"/lattices/*.lat "$model" \
    | tail -n 3 > "$exp_dir/lattice.wer.test"
  while read -r line; do log "$line"; done < "$exp_dir/lattice.wer.test"
  done_stage 6
fi
