"""BLAS threads: one thread against two for the network's scoring steps and training batches,
on a quiet machine and beside CPU-bound processes that this script starts itself.

    python benchmarks/threads.py                          # 1x200 and 2x650, quiet and 1 busy process
    python benchmarks/threads.py --model 1x200 --competitors 2 --seconds 0.5

Cases, each with a class output (100 frequency-binned classes, V = 10,000) in float32:
one-word scoring steps of 1, 50, 400 and 1600 histories (`Network.next_word_log_probs` from a
state, as a lattice search's frame or an n-best prefix tree's level runs them), whole
sequences of 128 histories by 20 words (an n-best list's tails) and a training batch of
20 sequences by 35 words (forward and backward). The BLAS pools are set through
threadpoolctl, as the command lines do; each time is the median of the calls in
--seconds, the two thread counts taken in turns for --rounds rounds. "busy" runs the
same beside --competitors processes each spinning a pure-Python loop (one core each),
started and ended here. Printed: the cores the other processes kept busy just before
each row (this script's competitors included: a shared machine is rarely idle),
milliseconds per call, the ratio 2 threads / 1 thread (above 1: one thread is faster),
and what the rescoring cases say, quiet and busy, with the rule that follows. Nothing here
is a test.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy
import threadpoolctl
from common import MODELS, benchmark_vocabulary, synthetic_batches
from run import machine_line

from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.runtime.allocator import keep_freed_memory
from rwthlm_py.runtime.backend import get_backend

THREADS = (1, 2)
STEP_SIZES = (1, 50, 400, 1600)


def main():
    args = parse_arguments()
    keep_freed_memory()
    print(machine_line() + f"; load average {os.getloadavg()[0]:.2f}")
    print(f"{'model':6s} {'case':30s} {'condition':9s} {'others':>6s} {'1 thread':>9s} {'2 threads':>10s} "
          f"{'2 / 1':>6s}")
    findings = []
    for model in args.model:
        for name, work in cases(model):
            for busy in (0, args.competitors):
                with competing(busy):
                    others = cores_busy_elsewhere()
                    times = interleaved_median_times(work, args.seconds, args.rounds)
                condition = f"busy x{busy}" if busy else "quiet"
                ratio = times[2] / times[1]
                findings.append((model, name, others, ratio))
                print(f"{model:6s} {name:30s} {condition:9s} {others:6.1f} {times[1] * 1e3:9.2f} "
                      f"{times[2] * 1e3:10.2f} {ratio:6.2f}", flush=True)
    print(rule(findings))


def cases(model):
    """(name, work) of the model's cases; work() runs one call. Their arrays are all below
    the size at which the backend splits element-wise work over threads (runtime/parallel.py),
    so the BLAS pool is the only one that the thread count changes."""
    hidden, layers = MODELS[model]
    vocab = benchmark_vocabulary(10_000, 100)
    backend = get_backend("numpy", "float32")
    network = Network.build(parse_network(f"bench-i{hidden}" + f"-m{hidden}" * layers), vocab, backend, seed=1)
    rng = numpy.random.default_rng(0)
    for size in STEP_SIZES:
        words = rng.integers(0, len(vocab), size=size).tolist()
        _, state = network.next_word_log_probs(words, None, list(range(size)), words)
        targets = rng.integers(0, len(vocab), size=size).tolist()

        def step(words=words, state=state, targets=targets, size=size):
            network.next_word_log_probs(words, state, list(range(size)), targets)

        yield f"scoring step, {size} histor{'y' if size == 1 else 'ies'}", step
    [tails] = synthetic_batches(vocab, 128, 20, 1)

    def score():
        network.log_probs(tails)

    yield "sequences, 128 x 20 words", score
    [batch] = synthetic_batches(vocab, 20, 35, 1)

    def train():
        network.zero_grads()
        network.accumulate_gradients(batch)

    yield "training batch, 20 x 35 words", train


def interleaved_median_times(work, seconds, rounds):
    """{threads: the median seconds of a call}, each thread count run for `seconds` in turn,
    `rounds` times."""
    calls = {threads: [] for threads in THREADS}
    for _ in range(rounds):
        for threads in THREADS:
            with threadpoolctl.threadpool_limits(limits=threads):
                work()  # warm-up: the pool's threads are started or parked
                end = time.perf_counter() + seconds
                while time.perf_counter() < end or len(calls[threads]) < 3:
                    start = time.perf_counter()
                    work()
                    calls[threads].append(time.perf_counter() - start)
    return {threads: statistics.median(times) for threads, times in calls.items()}


def cores_busy_elsewhere(seconds=0.5):
    """The cores other processes kept busy (/proc/stat's time not idle, while this one
    sleeps), the processes this script started included; nan where there is no /proc/stat."""
    def busy_and_total():
        with open("/proc/stat") as handle:
            ticks = [int(value) for value in handle.readline().split()[1:]]
        idle = ticks[3] + ticks[4]  # idle and waiting for I/O
        return sum(ticks) - idle, sum(ticks)

    try:
        busy, total = busy_and_total()
        time.sleep(seconds)
        busy_after, total_after = busy_and_total()
    except (OSError, ValueError, IndexError):
        return float("nan")
    return (busy_after - busy) / max(total_after - total, 1) * os.cpu_count()


class competing:
    """`count` processes spinning a pure-Python loop while the block runs (none for 0)."""

    def __init__(self, count):
        self.count = count
        self.processes = []

    def __enter__(self):
        self.processes = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(self.count)]
        time.sleep(0.2 if self.count else 0)  # let them reach their loop
        return self

    def __exit__(self, *exception):
        for process in self.processes:
            process.kill()
            process.wait()


def rule(findings):
    """What the rescoring cases (the scoring steps and the sequences) say: where one thread
    is faster than two with the others keeping less than half a core busy (quiet) and more
    (busy), by how much, and the rule that follows."""
    lines, faster = [], {}
    for quiet, label in ((True, "quiet"), (False, "busy")):
        ratios = [ratio for model, name, others, ratio in findings
                  if not name.startswith("training") and (others < 0.5) == quiet]
        if not ratios:
            lines.append(f"{label}: no rescoring case measured")
            continue
        faster[label] = sum(ratio >= 1 for ratio in ratios) / len(ratios)
        lines.append(f"{label}: one thread as fast or faster in {sum(ratio >= 1 for ratio in ratios)} of "
                     f"{len(ratios)} rescoring cases; time with two threads / with one from {min(ratios):.2f} to "
                     f"{max(ratios):.2f}")
    if faster.get("busy", 0) > 0.5:
        lines.append("rule: one thread for rescoring steps where nothing says that the machine is not shared "
                     "(rescoring runs as parallel jobs); the count given by --threads or the environment otherwise")
    else:
        lines.append("rule: the process's count for rescoring steps too (one thread won no majority busy)")
    return "\n".join(lines)


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=MODELS, action="append",
                        help="a model to measure, may be repeated (default: 1x200 and 2x650)")
    parser.add_argument("--competitors", type=int, default=1,
                        help="busy processes beside the busy measurements (default: 1)")
    parser.add_argument("--seconds", type=float, default=0.4, help="time per thread count and round (default: 0.4)")
    parser.add_argument("--rounds", type=int, default=3, help="turns of the two thread counts (default: 3)")
    args = parser.parse_args()
    args.model = args.model or list(MODELS)
    if args.competitors < 1:
        parser.error("--competitors must be at least 1")
    return args


if __name__ == "__main__":
    main()
