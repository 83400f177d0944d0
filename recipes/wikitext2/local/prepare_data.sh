#!/usr/bin/env bash
# WikiText-2's data preparation is PTB's: fetch and verify with `rwthlm-py corpora fetch`,
# link the splits. Its empty lines (between sections) stay empty sentences: only their
# sentence boundary is predicted, as PyTorch's word_language_model counts one <eos> per line.
exec bash "$(dirname "$0")/../../ptb/local/prepare_data.sh" "$@"
