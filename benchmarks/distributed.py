"""Data-parallel training on one machine: one process against N MPI ranks, same global batch.

    python benchmarks/distributed.py                          # 1x200 and 2x650, full and class output
    python benchmarks/distributed.py --model 1x200 --output class --ranks 2 --rounds 3

For each case (model 1x200 or 2x650; output `full` softmax or `class` with about 100
frequency-binned classes; global batch B x T, vocabulary V, float32) it times training
batches (forward, backward, the SGD step; training/train.py's train_batch) in one process
with all the machine's cores as BLAS threads (and, for reference, with one), and as
--ranks MPI ranks (`mpiexec -n N`, each rank cores / N threads), each rank training its
block of the batch's columns and
summing the gradients in one allreduce per batch (training/data_parallel.py), once with
the embedding's gradient as the rows some rank touched (what training does) and once
with every gradient dense. Printed per case: words/s and GFLOP/s, the speed-up over one
process, the bytes summed per batch, and the shares of a rank's batch time spent in the
allreduce alone, in the whole gradient sum (exchanging the touched rows, packing, the
allreduce, handing the sums back) and, before it, in waiting for the slower rank (a
barrier the benchmark adds, so that the sum's figures are its own cost). numpy's sgemm
GFLOP/s is printed first as the machine's yardstick. The one-process and the N-rank runs
alternate for --rounds rounds and each keeps its best (the machine may be shared). Nothing
here is a test.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

from common import MODELS, benchmark_vocabulary, matmul_flops_per_word, synthetic_batches
from run import machine_line, output_width, sgemm_gflops

from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.runtime import distributed, threads
from rwthlm_py.runtime.allocator import keep_freed_memory
from rwthlm_py.runtime.backend import get_backend
from rwthlm_py.training import data_parallel
from rwthlm_py.training.optim import Sgd
from rwthlm_py.training.train import train_batch

HERE = pathlib.Path(__file__).resolve().parent


def main():
    args = parse_arguments()
    if args.worker:
        return worker(args)
    print(machine_line() + f"; load average {os.getloadavg()[0]:.2f}")
    print(f"numpy sgemm on [{args.batch * args.seq} x 200] x [200 x {args.vocab}]: "
          f"{sgemm_gflops(args.batch * args.seq, 200, args.vocab):.0f} GFLOP/s")
    print(f"global batch {args.batch} x {args.seq}, V = {args.vocab}, float32; 1 process: {os.cpu_count()} threads, "
          f"{args.ranks} ranks: {max(1, os.cpu_count() // args.ranks)} thread(s) each; best of {args.rounds} rounds")
    print(f"{'model':6s} {'output':6s} {'run':19s} {'words/s':>8s} {'GFLOP/s':>8s} {'speed-up':>8s} "
          f"{'MB/batch':>8s} {'allreduce':>9s} {'grad sum':>8s} {'wait':>5s}")
    records = []
    runs = {"1 process": (1, False, None), "1 process, 1 thread": (1, False, 1),
            f"{args.ranks} ranks": (args.ranks, False, None), f"{args.ranks} ranks, dense": (args.ranks, True, None)}
    for model in args.model or list(MODELS):
        for output in args.output or ["full", "class"]:
            best = {}
            for _ in range(args.rounds):
                for name, (ranks, dense, thread_count) in runs.items():
                    record = run_worker(model, output, ranks, dense, thread_count, args)
                    if name not in best or record["words_per_s"] > best[name]["words_per_s"]:
                        best[name] = record
            records.append({"model": model, "output": output, **best})
            for name, record in best.items():
                shares = (f"{record['mb_per_batch']:8.1f} {100 * record['allreduce_share']:8.0f}% "
                          f"{100 * record['sum_share']:7.0f}% {100 * record['wait_share']:4.0f}%"
                          if record["ranks"] > 1 else "")
                print(f"{model:6s} {output:6s} {name:19s} {record['words_per_s']:8,.0f} {record['gflops']:8.1f} "
                      f"{record['words_per_s'] / best['1 process']['words_per_s']:7.2f}x {shares}", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(records, indent=1))
    return 0


def run_worker(model, output, ranks, dense, thread_count, args):
    """One timing, in a fresh process (ranks == 1) or as `ranks` MPI ranks (every gradient
    summed dense where `dense`; `thread_count` BLAS threads, None: the cores / ranks);
    its record."""
    command = [sys.executable, str(HERE / "distributed.py"), "--worker", "--model", model, "--output", output,
               "--batch", str(args.batch), "--seq", str(args.seq), "--vocab", str(args.vocab),
               "--classes", str(args.classes), "--batches", str(args.batches)] + (["--dense-rows"] if dense else [])
    if thread_count:
        command += ["--threads", str(thread_count)]
    if ranks > 1:
        command = [distributed_launcher(), "-n", str(ranks)] + command
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"the timing run failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def distributed_launcher():
    beside = pathlib.Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else "mpiexec"


def worker(args):
    """Times --batches training batches (after two to warm up) on this process's ranks and
    prints one JSON line (rank 0)."""
    ranks = distributed.world()
    data_parallel.GradientSum.sparse_rows = not args.dense_rows
    keep_freed_memory()  # as the command lines do
    threads.settle(args.threads)  # None: the cores / local ranks, as the command lines settle it
    hidden, layers = MODELS[args.model[0]]
    vocab = benchmark_vocabulary(args.vocab, args.classes if args.output[0] == "class" else None)
    backend = get_backend("numpy", "float32")
    network = Network.build(parse_network(f"bench-i{hidden}" + f"-m{hidden}" * layers), vocab, backend, seed=1)
    optimizer = Sgd(network)
    batches = synthetic_batches(vocab, args.batch, args.seq, args.batches + 2)
    timer = SumTimer(network, ranks)
    for batch in batches[:2]:
        train_batch(network, optimizer, batch, None, 1e-4, ranks=ranks)
    timer.reset()
    ranks.barrier()
    start = time.perf_counter()
    for batch in batches[2:]:
        train_batch(network, optimizer, batch, None, 1e-4, ranks=ranks)
    ranks.barrier()
    seconds = time.perf_counter() - start
    words = sum(batch.num_targets for batch in batches[2:])
    flops = 3 * matmul_flops_per_word(hidden, layers, args.vocab, output_width(vocab, batches)) * words
    record = {"ranks": ranks.size, "threads": backend.threads, "words_per_s": words / seconds,
              "gflops": flops / seconds / 1e9, "mb_per_batch": timer.bytes / max(timer.sums, 1) / 1e6,
              "allreduce_share": timer.allreduce / seconds, "sum_share": timer.whole / seconds,
              "wait_share": timer.wait / seconds}
    if ranks.is_root:
        print(json.dumps(record))
    return 0


class SumTimer:
    """Times the gradient sums of a network's data-parallel training: the allreduce alone,
    the whole GradientSum.sum, and the wait for the slowest rank before it (a world of one
    has none of them)."""

    def __init__(self, network, ranks):
        self.reset()
        if ranks.size == 1:
            return
        gradient_sum = data_parallel.gradient_sum(network, ranks)
        summer_sum, whole_sum = gradient_sum.summer.sum_in_place, gradient_sum.sum

        def timed_allreduce(array):
            start = time.perf_counter()
            summer_sum(array)
            self.allreduce += time.perf_counter() - start
            self.bytes += array.nbytes
            self.sums += 1

        def timed_sum(loss):
            # waiting for the slowest rank is not the sum's cost: a barrier takes it first
            start = time.perf_counter()
            ranks.barrier()
            arrived = time.perf_counter()
            total = whole_sum(loss)
            self.wait += arrived - start
            self.whole += time.perf_counter() - arrived
            return total

        gradient_sum.summer.sum_in_place = timed_allreduce
        gradient_sum.sum = timed_sum

    def reset(self):
        self.allreduce = self.whole = self.wait = 0.0
        self.bytes = self.sums = 0


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=MODELS, action="append")
    parser.add_argument("--output", choices=("full", "class"), action="append")
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--seq", type=int, default=35)
    parser.add_argument("--vocab", type=int, default=10000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--batches", type=int, default=12, help="timed batches per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="write the records to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dense-rows", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())
