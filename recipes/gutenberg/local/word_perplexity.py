"""Per-piece and per-word perplexity of a subword model, from `rwthlm-py ppl` output.

    python word_perplexity.py PPL_OUTPUT TEXT_GZ

PPL_OUTPUT is what `rwthlm-py ppl` printed on the pieces of TEXT_GZ (its SRILM summary:
`N sentences, M words` and `logprob= L`, log10, over every piece and sentence end). The
log-probability of a word is the sum of its pieces', so the per-word perplexity is

    10 ** (-L / (words + sentences))

with the words counted in the normalised text (whitespace-separated) and the sentence ends
predicted once per line, as a word-level model counts them.
"""

import argparse
import gzip
import re


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ppl_output")
    parser.add_argument("text_gz")
    args = parser.parse_args()
    summary = open(args.ppl_output, encoding="utf-8").read()
    counts = re.search(r"(\d+) sentences, (\d+) words", summary)
    logprob = re.search(r"logprob= (\S+) ppl= (\S+)", summary)
    if not counts or not logprob:
        raise SystemExit(f"{args.ppl_output}: no SRILM summary (N sentences, M words ... logprob= ...) found")
    sentences, pieces = int(counts.group(1)), int(counts.group(2))
    log10_total, piece_perplexity = float(logprob.group(1)), float(logprob.group(2))
    with gzip.open(args.text_gz, "rt", encoding="utf-8") as handle:
        lines = [line.split() for line in handle]
    words = sum(len(line) for line in lines)
    if len(lines) != sentences:
        raise SystemExit(f"{args.text_gz} has {len(lines)} lines, the perplexity run scored {sentences}")
    word_perplexity = 10 ** (-log10_total / (words + sentences))
    print(f"{pieces} pieces, {words} words, {sentences} sentences: "
          f"perplexity per piece {piece_perplexity:.2f}, per word {word_perplexity:.2f}")


if __name__ == "__main__":
    main()
