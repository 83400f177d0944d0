"""Speed of n-best rescoring: hypotheses/s and words/s with and without prefix sharing.
    python benchmarks/nbest.py                               # 1x200, 100 classes, V=10,000
    python benchmarks/nbest.py --model 2x650 --output full --hypotheses 1000 --json out.json

The lists are generated with the shape of real ones: each utterance has a sentence of 12-30
Zipf-distributed words and a few alternatives for every position (the confusions a
recogniser would have); a hypothesis takes alternatives at 1-5 positions, and one in five
also drops or inserts a word. Both ways score the same hypotheses with the same random
network through rescoring.sentence_scores, as `rwthlm-py nbest` does (whole utterances, up
to 4096 hypotheses a call), taking turns, the fastest of --repeats runs each; words count every
predicted token (the words and the final <sb>). GFLOP/s counts the products of the targets
actually computed, against numpy's own sgemm on the machine. Nothing here is a test.
"""

import argparse
import json
import pathlib
import time

import numpy
from common import MODELS, benchmark_vocabulary, matmul_flops_per_word, zipf_stream
from run import machine_line, sgemm_gflops

from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.rescoring.nbest_command import groups
from rwthlm_py.rescoring.sentence_scores import score_sentences
from rwthlm_py.runtime.allocator import keep_freed_memory
from rwthlm_py.runtime.backend import get_backend


class CountingProgress:
    """Counts the targets the network computes."""

    def __init__(self):
        self.targets = 0

    def update(self, words, neg_log_prob):
        self.targets += words


def generated_lists(vocab_size, utterances, hypotheses, seed=0):
    rng = numpy.random.default_rng(seed)
    pool = zipf_stream(vocab_size - 1, 1_000_000, seed=seed + 1)
    lists = []
    for _ in range(utterances):
        length = int(rng.integers(12, 31))
        alternatives = rng.choice(pool, size=(length, 4))  # column 0: the best path
        sentences = []
        for _ in range(hypotheses):
            words = alternatives[:, 0].copy()
            changed = rng.choice(length, size=int(rng.integers(1, 6)), replace=False)
            words[changed] = alternatives[changed, rng.integers(1, 4, size=len(changed))]
            words = list(words)
            if rng.random() < 0.2:
                position = int(rng.integers(length))
                if rng.random() < 0.5:
                    del words[position]
                else:
                    words.insert(position, int(rng.choice(pool)))
            sentences.append([int(word) for word in words])
        lists.append(sentences)
    return lists


def measure(network, lists, batch_size, share):
    counting = CountingProgress()
    start = time.perf_counter()
    for group in groups(lists, size_of=len):
        sentences = [words for utterance in group for words in utterance]
        score_sentences(network, sentences, batch_size, share_prefixes=share, progress=counting)
    return time.perf_counter() - start, counting.targets


def interleaved_best_times(network, lists, batch_size, repeats):
    """The fastest of `repeats` runs of each way, taken in turns (a shared machine's speed
    drifts from minute to minute); and the targets each way computes."""
    best, targets = {False: float("inf"), True: float("inf")}, {}
    for _ in range(repeats):
        for share in (False, True):
            seconds, targets[share] = measure(network, lists, batch_size, share)
            best[share] = min(best[share], seconds)
    return best, targets


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="1x200")
    parser.add_argument("--output", choices=("full", "class"), default="class")
    parser.add_argument("--vocab", type=int, default=10_000)
    parser.add_argument("--utterances", type=int, default=8)
    parser.add_argument("--hypotheses", type=int, default=500, help="per utterance")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the records to this file")
    args = parser.parse_args()
    keep_freed_memory()  # as the command lines do

    hidden, layers = MODELS[args.model]
    vocab = benchmark_vocabulary(args.vocab, 100 if args.output == "class" else None)
    backend = get_backend("numpy", "float32")
    network = Network.build(parse_network(f"bench-i{hidden}" + f"-m{hidden}" * layers), vocab, backend)
    lists = generated_lists(args.vocab, args.utterances, args.hypotheses)
    num_hypotheses = sum(len(sentences) for sentences in lists)
    num_words = sum(len(words) + 1 for sentences in lists for words in sentences)
    flops = matmul_flops_per_word(hidden, layers, args.vocab,
                                  args.vocab if args.output == "full" else 100 + args.vocab / 100)
    print(machine_line())
    print(f"numpy sgemm on [{args.batch} x {hidden}] x [{hidden} x {4 * hidden}]: "
          f"{sgemm_gflops(args.batch, hidden, 4 * hidden):.0f} GFLOP/s")
    print(f"{args.model} {args.output} V={args.vocab}: {args.utterances} utterances x {args.hypotheses} "
          f"hypotheses, {num_words / num_hypotheses:.1f} words each (with </s>), batch {args.batch}")
    measure(network, lists[:1], args.batch, True)  # warm up
    best, computed = interleaved_best_times(network, lists, args.batch, args.repeats)
    records = []
    for share in (False, True):
        seconds, targets = best[share], computed[share]
        record = dict(model=args.model, output=args.output, vocab=args.vocab, batch=args.batch,
                      hypotheses=num_hypotheses, words=num_words, prefix_sharing=share,
                      computed_targets=targets, seconds=seconds,
                      hypotheses_per_s=num_hypotheses / seconds, words_per_s=num_words / seconds,
                      gflops=flops * targets / seconds / 1e9)
        records.append(record)
        print(f"prefix sharing {'on ' if share else 'off'}: {record['hypotheses_per_s']:>8,.0f} hypotheses/s, "
              f"{record['words_per_s']:>9,.0f} words/s, {targets / num_words:6.1%} of the targets computed, "
              f"{record['gflops']:.1f} GFLOP/s")
    print(f"speed-up from sharing: {records[0]['seconds'] / records[1]['seconds']:.2f}x")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(records, indent=1) + "\n")


if __name__ == "__main__":
    main()
