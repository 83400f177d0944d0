# Stages 2-4 of a word-level recipe, shared by the recipes' run.sh (sourced after
# stages.sh). They read the configuration variables of run.sh: data (a folder with
# train/dev/test.txt.gz; train_text, dev_text, test_text name other files), exp_dir, model,
# vocab, classes, method, max_iterations, batch_size, sequence_length, wrapping, clipping,
# learning_rate, min_improvement, dropout, tie_weights, max_epoch; verbatim_length (default 100, 0: no
# sentence-by-sentence run) bounds the sentences of the verbatim test run.

# the experiment: its name, the network string with the classes after the corpus name
# (e.g. ptb100e-i200-m200), and its folder under exp_dir; sets suffix, name, exp_dir, data
# (beside the experiments, shared by them), model and vocab
word_lm_experiment() {
  suffix=""
  [ "$classes" -gt 0 ] && suffix=$classes${method:0:1}
  name=${network%%-*}$suffix-${network#*-}
  exp_dir=$exp_dir/$name
  mkdir -p "$exp_dir"
  data=$exp_dir/../data model=$exp_dir/$name vocab=$exp_dir/vocab$suffix
}

board_dir() { echo "$exp_dir/tensorboard"; }
text_of() { local name="${1}_text"; echo "${!name:-$data/$1.txt.gz}"; }

# sets the array `common`: the options every training and perplexity run shares
common_options() {
  common=(--batch-size "$batch_size" --sequence-length "$sequence_length" --word-wrapping "$wrapping"
          --record "$exp_dir")
}

vocabulary_stage() {
  local class_options=()
  [ "$classes" -gt 0 ] && class_options=(--classes "$classes" --method "$method" --max-iterations "$max_iterations")
  rwthlm-py vocab --train "$(text_of train)" "${class_options[@]}" --out "$vocab" --record "$exp_dir"
}

training_stage() {
  common_options
  local tie=()
  [ "${tie_weights:-0}" = 1 ] && tie=(--tie-weights)
  rwthlm --train "$(text_of train)" --dev "$(text_of dev)" --vocab "$vocab" "${common[@]}" \
    --gradient-clipping "$clipping" --learning-rate "$learning_rate" --min-improvement "$min_improvement" \
    --dropout "${dropout:-0}" "${tie[@]}" --max-epoch "$max_epoch" --tensorboard "$(board_dir)" "$model"
}

# dev and test perplexity as trained, and test sentence by sentence (the state reset at
# every sentence, rwthlm's verbatim mode); the whole outputs go to $exp_dir/ppl.{dev,test,
# test_verbatim}, the perplexities to $exp_dir/results.txt
perplexity_stage() {
  common_options
  rwthlm --ppl "$(text_of dev)" "${common[@]}" "$model" > "$exp_dir/ppl.dev"
  rwthlm-py ppl --ppl "$(text_of test)" "${common[@]}" --tensorboard "$(board_dir)" "$model" > "$exp_dir/ppl.test"
  local runs=(dev test)
  if [ "${verbatim_length:-100}" -gt 0 ]; then
    rwthlm --ppl "$(text_of test)" --batch-size 64 --sequence-length "${verbatim_length:-100}" \
      --word-wrapping verbatim --record "$exp_dir" "$model" > "$exp_dir/ppl.test_verbatim"
    runs+=(test_verbatim)
  fi
  for run in "${runs[@]}"; do
    printf '%s %.2f\n' $run "$(tail -n 1 "$exp_dir/ppl.$run")"
  done | tee "$exp_dir/results.txt"
}

# stages 2 to 4 of a word-level recipe; suffix names the classes ("" for a full softmax)
word_lm_stages() {
  if stage 2 "vocabulary${suffix:+ with $classes $method classes}" train_text classes method max_iterations; then
    vocabulary_stage
    done_stage 2
  fi
  if stage 3 "training $(basename "$model")" train_text dev_text network batch_size sequence_length wrapping \
      clipping learning_rate min_improvement dropout tie_weights max_epoch; then
    training_stage
    done_stage 3
  fi
  if stage 4 "perplexity of dev and test" dev_text test_text batch_size sequence_length wrapping verbatim_length; then
    perplexity_stage
    done_stage 4
  fi
}
