"""Lattice rescoring speed on decoder-shaped lattices: the command's default batching (the
histories of a frame of up to 16 lattices stepped together) against rwthlm's one history
at a time (`--batch-size 1`), on a quiet machine and beside a competing CPU-bound process.

    python benchmarks/lattice.py                           # 1x200, 100 classes, V = 10,000
    python benchmarks/lattice.py --model 2x650 --busy 0
    python benchmarks/lattice.py --count 100 --busy 0      # a job of 100 lattices
    python benchmarks/lattice.py --lattices /data/lats/*.lat.gz --vocab-file words.voc

The lattices are those of benchmarks/decoder_lattices.py (8 lattices, 19.2 s of audio,
shaped like a real HTK decoder's; see its docstring); with --count N a job of N lattices
of that shape, their sizes drawn from --seed in the 8 lattices' ranges (834 to 4,967
nodes; decoder_lattices.drawn_sizes), where the lattices searched side by side end at
different times; or real ones with --lattices (their words then need --vocab-file, a
vocabulary of the network, else every word is mapped to <unk>). They are rescored as
`rwthlm-py lattice --lambda 0.5 --lm-scale 14 --pruning-threshold 150 --dp-order 3`
rescores them (rescore_lattices, in this process, outputs into a temporary folder), with
an untrained network (its speed does not depend on its weights). Printed per case: the
command's own summary line (the real-time factor, and the time of reading, network steps,
search and writing, and the histories stepped), the GFLOP/s of the network's products
(step_flops.py counts them in an untimed run) against numpy's own sgemm on one thread for
the step's recurrent product [4H, H] x [H, B] at the run's mean B, and the speed-up of
batching. The fastest of --repeats runs is kept. Nothing here is a test.
"""

import argparse
import contextlib
import io
import pathlib
import subprocess
import sys
import tempfile

import step_flops
from common import MODELS, benchmark_vocabulary
from decoder_lattices import SIZES, drawn_sizes, write_lattices
from run import sgemm_gflops

from rwthlm_py.commands import lattice_rescoring
from rwthlm_py.config import Options
from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.output.reporting import Console
from rwthlm_py.rescoring.lattice_command import rescore_lattices
from rwthlm_py.runtime import threads
from rwthlm_py.runtime.backend import get_backend
from rwthlm_py.text.vocabulary import read_vocabulary

BUSY_LOOP = "while True: pass"


def main():
    args = parse_arguments()
    threads.settle()  # as the command does: rescoring steps on one thread unless a count is given
    hidden, layers = MODELS[args.model]
    vocab = read_vocabulary(args.vocab_file) if args.vocab_file else benchmark_vocabulary(args.vocab, args.classes)
    network = Network.build(parse_network(f"bench-i{hidden}" + f"-m{hidden}" * layers), vocab,
                            get_backend("numpy", "float32"), seed=1)
    with tempfile.TemporaryDirectory(prefix="rwthlm-lattices-") as folder:
        sizes = drawn_sizes(args.count, args.seed) if args.count else SIZES
        paths = args.lattices or write_lattices(pathlib.Path(folder), [vocab.words[k] for k in range(len(vocab) - 1)],
                                                vocab.sb_name, seed=args.seed, sizes=sizes)
        print(f"{args.model}, V={len(vocab)}, {vocab.num_classes} classes; {len(paths)} lattices; --lambda 0.5 "
              f"--lm-scale {args.lm_scale:g} --pruning-threshold {args.beam:g} --dp-order {args.dp_order}")
        with step_flops.counting(network) as counter:
            _, summary = best_run(network, paths, pathlib.Path(folder) / "out", None, args, repeats=1)
        histories, calls = summary_number(summary, " histories", before=True), summary_number(summary, " histories in ")
        mean_batch = round(histories / calls)
        with threads.limited(1):
            yardstick = sgemm_gflops(4 * hidden, hidden, mean_batch)
        print(f"the network's products: {counter.flops / 1e9:.2f} GFLOP; numpy's sgemm on one thread, "
              f"[{4 * hidden},{hidden}]x[{hidden},{mean_batch}]: {yardstick:.0f} GFLOP/s")
        for busy in sorted({0, args.busy}):
            with competing_processes(busy):
                seconds = {}
                for name, batch_size in (("default batching", None), ("--batch-size 1", 1)):
                    seconds[name], summary = best_run(network, paths, pathlib.Path(folder) / "out", batch_size, args)
                    rate = counter.flops / summary_number(summary, "network ") / 1e9
                    print(f"{busy} competing process(es), {name:16s}: {summary}; network {rate:.1f} GFLOP/s")
                speed_up = seconds["--batch-size 1"] / seconds["default batching"]
                print(f"{busy} competing process(es): batching is {speed_up:.1f}x faster than one history at a time")


def best_run(network, paths, out, batch_size, args, repeats=None):
    """(seconds, summary line) of the fastest of `repeats` runs (default args.repeats)."""
    best = None
    for _ in range(repeats or args.repeats):
        options = Options(lam=0.5, lm_scale=args.lm_scale, pruning_threshold=args.beam, dp_order=args.dp_order,
                          unk=bool(args.lattices), out=str(out))
        console = Console(out=io.StringIO(), err=io.StringIO())
        status = rescore_lattices(network, [str(path) for path in paths], lattice_rescoring(options, batch_size),
                                  console, "rwthlm-py")
        summary = console.err.getvalue().strip().splitlines()[-1]
        if status != 0:
            sys.exit(f"rescoring failed: {console.err.getvalue()}")
        seconds = float(summary.split(" s of audio) in ")[1].split()[0])
        if best is None or seconds < best[0]:
            best = (seconds, summary)
    return best


def summary_number(summary, label, before=False):
    """The number after `label` in a summary line (before it, with `before`), commas removed."""
    if before:
        return float(summary.split(label)[0].split()[-1].replace(",", ""))
    return float(summary.split(label, 1)[1].split()[0].replace(",", ""))


@contextlib.contextmanager
def competing_processes(count):
    """`count` CPU-bound processes running beside the benchmark, as other jobs of a busy machine."""
    processes = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(count)]
    try:
        yield
    finally:
        for process in processes:
            process.kill()
            process.wait()


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=MODELS, default="1x200")
    parser.add_argument("--vocab", type=int, default=10000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--vocab-file", help="the network's vocabulary (with --lattices)")
    parser.add_argument("--lattices", nargs="+", metavar="LATTICE", help="real lattices instead of generated ones")
    parser.add_argument("--count", type=int, help="a job of this many generated lattices (sizes drawn from --seed)")
    parser.add_argument("--beam", type=float, default=150.0)
    parser.add_argument("--dp-order", type=int, default=3)
    parser.add_argument("--lm-scale", type=float, default=14.0)
    parser.add_argument("--busy", type=int, default=1, help="competing CPU-bound processes in the busy case")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


if __name__ == "__main__":
    main()
