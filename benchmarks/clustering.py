"""Time and peak memory of the exchange algorithm on a large synthetic vocabulary.

    python benchmarks/clustering.py --vocab 100000 --tokens 5000000 --classes 200

Writes a Zipf-distributed text with a hidden class bigram structure to a temporary file,
builds `rwthlm-py vocab --classes N` from it, and prints seconds per iteration and the peak
resident memory of the process. Not a test.
"""

import argparse
import os
import sys
import tempfile
import time

import numpy
from common import peak_memory_mb

from rwthlm_py.output.reporting import Console
from rwthlm_py.text.clustering import class_vocabulary


def synthetic_text(path, vocab_size, tokens, hidden_classes=50, templates=200, length=20, seed=0):
    """Sentences of `length` words: a sentence follows one of `templates` sequences of hidden
    classes, and each word is drawn from its hidden class with Zipf weights."""
    rng = numpy.random.default_rng(seed)
    hidden = rng.integers(0, hidden_classes, size=vocab_size)
    weights = 1.0 / numpy.arange(1, vocab_size + 1)
    patterns = rng.integers(0, hidden_classes, size=(templates, length))
    classes = patterns[rng.integers(0, templates, size=tokens // length)].ravel()
    words = numpy.empty(len(classes), dtype=numpy.int64)
    for k in range(hidden_classes):
        members = numpy.flatnonzero(hidden == k)
        places = numpy.flatnonzero(classes == k)
        p = weights[members] / weights[members].sum()
        words[places] = rng.choice(members, size=len(places), p=p)
    with open(path, "w") as handle:
        for sentence in words.reshape(-1, length):
            handle.write(" ".join(f"w{w}" for w in sentence.tolist()) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vocab", type=int, default=100_000)
    parser.add_argument("--tokens", type=int, default=5_000_000)
    parser.add_argument("--classes", type=int, default=200)
    parser.add_argument("--max-iterations", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "text.txt")
        started = time.perf_counter()
        synthetic_text(path, args.vocab, args.tokens)
        print(f"synthetic text: {args.tokens:,} tokens in {time.perf_counter() - started:.0f} s", flush=True)
        started = time.perf_counter()
        vocab = class_vocabulary(path, args.classes, "exchange", max_iterations=args.max_iterations,
                                 console=Console())
        seconds = time.perf_counter() - started
    peak = peak_memory_mb()
    print(f"{len(vocab):,} words in {vocab.num_classes} classes: {seconds:.0f} s for "
          f"{args.max_iterations} iterations with counting; peak memory {peak:,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
