"""The cost of one scoring step per call: the lean step (model/scoring_step.py) against the
network's generic `next_word_log_probs`, on one BLAS thread, as lattice rescoring runs them.

    python benchmarks/scoring_step.py                        # 1x200, 100 classes, V = 10,000
    python benchmarks/scoring_step.py --model 2x650 --histories 1 51 400

Each call steps B histories from a state by one word and scores 2.3 targets per history,
drawn from B Zipf-distributed words (the means of a lattice frame's calls on the
decoder-shaped lattices of decoder_lattices.py: the histories of a frame ask for the words
of the same few links, about one distinct word per history). Printed per B: microseconds per call (the
fastest of --repeats rounds of calls for --seconds each, CPU time of this process), the
cost per history beyond the first (the slope from B = 1), and the GFLOP/s of the products
(counted as benchmarks/step_flops.py counts them) against numpy's own sgemm on one thread
for the recurrent product [4H, H] x [H, B]. Nothing here is a test.
"""

import argparse
import time

import numpy
from common import MODELS, benchmark_vocabulary, zipf_stream
from run import machine_line, sgemm_gflops
from step_flops import StepFlops

from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.model.scoring_step import LeanStep
from rwthlm_py.runtime import threads
from rwthlm_py.runtime.backend import get_backend

TARGETS_PER_HISTORY = 2.3


def main():
    args = parse_arguments()
    hidden, layers = MODELS[args.model]
    vocab = benchmark_vocabulary(args.vocab, args.classes)
    network = Network.build(parse_network(f"bench-i{hidden}" + f"-m{hidden}" * layers), vocab,
                            get_backend("numpy", "float32"), seed=1)
    lean, flops = LeanStep(network), StepFlops(network)
    print(machine_line() + f"; {args.model}, V={len(vocab)}, {vocab.num_classes} classes, one BLAS thread")
    print(f"{'B':>5s} {'lean, us/call':>14s} {'generic, us/call':>17s} {'lean, us/extra history':>23s} "
          f"{'lean GFLOP/s':>13s} {'sgemm GFLOP/s':>14s}")
    with threads.limited(1):
        single = None
        for size in args.histories:
            call = step_call(network, size, seed=size)
            lean_time = cpu_time_per_call(lambda call=call: lean.next_word_log_probs(*call), args)
            generic_time = cpu_time_per_call(lambda call=call: network.next_word_log_probs(*call), args)
            single = lean_time if size == 1 else single
            slope = "" if single is None or size == 1 else f"{(lean_time - single) / (size - 1) * 1e6:.1f}"
            rate = flops.call_flops(*call) / lean_time / 1e9
            print(f"{size:5d} {lean_time * 1e6:14.0f} {generic_time * 1e6:17.0f} {slope:>23s} {rate:13.1f} "
                  f"{sgemm_gflops(4 * hidden, hidden, size):14.1f}", flush=True)


def step_call(network, size, seed):
    """(inputs, state, columns, targets) of one step of `size` histories from a state that
    the network reached from the zero state (so that its values are the network's own)."""
    vocab_size = len(network.vocab)
    words = zipf_stream(vocab_size, size, seed=seed)
    _, state = network.next_word_log_probs(words, None, [0], [0])
    count = max(size, round(TARGETS_PER_HISTORY * size))
    columns = numpy.sort(numpy.concatenate([numpy.arange(size), numpy.arange(count - size) % size]))
    words_asked = zipf_stream(vocab_size, size, seed=seed + 1)
    targets = numpy.random.default_rng(seed).choice(words_asked, size=count)
    return zipf_stream(vocab_size, size, seed=seed + 2), state, columns, targets


def cpu_time_per_call(call, args):
    """The fastest of args.repeats rounds of calls for args.seconds each: CPU seconds a call."""
    call()
    best = float("inf")
    for _ in range(args.repeats):
        count, start = 0, time.process_time()
        while time.process_time() - start < args.seconds:
            call()
            count += 1
        best = min(best, (time.process_time() - start) / count)
    return best


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=MODELS, default="1x200")
    parser.add_argument("--vocab", type=int, default=10000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--histories", type=int, nargs="+", default=[1, 2, 10, 51, 100, 400])
    parser.add_argument("--seconds", type=float, default=0.3)
    parser.add_argument("--repeats", type=int, default=5)
    return parser.parse_args()


if __name__ == "__main__":
    main()
