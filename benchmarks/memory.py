"""Peak memory of training: one process, a few updates, the largest resident set it reached.

    python benchmarks/memory.py --model 2x650 --batch 64 --seq 100 --vocab 10000

Not a test; run by hand (or by run.py --memory) in a process of its own, since the peak
resident set of a process never goes down.
"""

import argparse
import sys
import time

from common import MODELS, benchmark_vocabulary, peak_memory_mb, synthetic_batches

from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.runtime.allocator import keep_freed_memory
from rwthlm_py.runtime.backend import get_backend
from rwthlm_py.training.optim import Sgd
from rwthlm_py.training.train import train_batch


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=MODELS, default="2x650")
    parser.add_argument("--output", choices=("full", "class"), default="full")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq", type=int, default=100)
    parser.add_argument("--vocab", type=int, default=10000)
    parser.add_argument("--updates", type=int, default=3)
    args = parser.parse_args()
    keep_freed_memory()  # as the command lines do
    hidden, layers = MODELS[args.model]
    vocab = benchmark_vocabulary(args.vocab, 100 if args.output == "class" else None)
    network = Network.build(parse_network(f"bench-i{hidden}" + f"-m{hidden}" * layers), vocab,
                            get_backend("numpy"), seed=1)
    optimizer = Sgd(network)
    started = time.perf_counter()
    for batch in synthetic_batches(vocab, args.batch, args.seq, args.updates):
        train_batch(network, optimizer, batch, None, 1e-5)
    seconds = (time.perf_counter() - started) / args.updates
    peak = peak_memory_mb()
    print(f"{args.model} {args.output} B={args.batch} T={args.seq} V={args.vocab}: "
          f"peak memory {peak:,.0f} MB, {seconds:.2f} s per update")
    return 0


if __name__ == "__main__":
    sys.exit(main())
