"""rwthlm_py's CPU benchmark suite: words/s of training and scoring, against PyTorch.
    python benchmarks/run.py                       # every case
    python benchmarks/run.py --model 1x200 --output full --mode train --json out.json
    python benchmarks/run.py --mode train --dropout 0.5      # also: training with dropout

For each case (model 1x200 or 2x650; output `full` softmax or `class` with about 100
frequency-binned classes; mode `train` or `score`; batch B, sequence T, vocabulary V) it
prints words/s, the GFLOP/s the matrix products reached, and, where PyTorch is importable,
PyTorch's nn.LSTM words/s on the same machine, measured in a separate process, and the
ratio; a class output also gets its speed over our full softmax in the same run. With
`--dropout P` (and `--variational-dropout`) a training case is also timed with dropout,
in turns with the plain one, and its cost in per cent is printed. numpy's own sgemm
GFLOP/s on the output layer's shape is printed first as the machine's yardstick. Timings
are the fastest of several repeats. Nothing here is a test.

Where OPENBLAS_CORETYPE makes OpenBLAS use slower kernels than the CPU has (Haswell's on a
CPU with AVX-512), the suite then runs again in a child process with the CPU's best
kernels (OPENBLAS_CORETYPE=SkylakeX) and prints those figures too; `--memory` adds the
peak memory of training 2x650 at B=64, T=100 (benchmarks/memory.py).
"""

import argparse
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import numpy
from common import MODELS, benchmark_vocabulary, best_time, matmul_flops_per_word, synthetic_batches

from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.output.run_record import cpu_model
from rwthlm_py.runtime.allocator import keep_freed_memory
from rwthlm_py.runtime.backend import get_backend
from rwthlm_py.training.optim import Sgd
from rwthlm_py.training.train import Schedule, train_batch

HERE = pathlib.Path(__file__).resolve().parent


def main():
    args = parse_arguments()
    kept = keep_freed_memory()  # as the command lines do
    print(machine_line())
    if kept:
        print("malloc keeps freed memory (rwthlm_py.runtime.allocator, as the command lines set it); "
              "the PyTorch process runs with the C library's defaults")
    print(f"numpy sgemm on [{args.batch * args.seq} x 200] x [200 x {args.vocab}]: "
          f"{sgemm_gflops(args.batch * args.seq, 200, args.vocab):.0f} GFLOP/s")
    records = []
    for case in cases(args):
        record = run_case(case, args)
        add_class_speedup(record, records)
        records.append(record)
        print(format_record(record), flush=True)
    if args.memory:
        command = [sys.executable, str(HERE / "memory.py"), "--model", "2x650", "--batch", "64", "--seq", "100"]
        print(subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip())
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(records, indent=1) + "\n")
    better = best_kernels()
    if better and not args.no_kernel_rerun:
        print(f"\nOPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} holds OpenBLAS to slower kernels "
              f"than this CPU has; again with OPENBLAS_CORETYPE={better}:", flush=True)
        command = [sys.executable, *sys.argv, "--no-kernel-rerun", "--no-memory"]
        if args.json:
            command += ["--json", str(pathlib.Path(args.json).with_suffix(f".{better}.json"))]
        subprocess.run(command, env=dict(os.environ, OPENBLAS_CORETYPE=better), check=True)


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=MODELS, action="append")
    parser.add_argument("--output", choices=("full", "class"), action="append")
    parser.add_argument("--mode", choices=("train", "score"), action="append")
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--seq", type=int, default=35)
    parser.add_argument("--vocab", type=int, default=10000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--score-batch-one", action=argparse.BooleanOptionalAction, default=True,
                        help="also score with batch 1, the rescoring case")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, default=4, help="batches per timed repeat")
    parser.add_argument("--pytorch", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--json", help="write the records to this file")
    parser.add_argument("--dropout", type=float, default=0.0, help="also time training with this dropout")
    parser.add_argument("--variational-dropout", action="store_true")
    parser.add_argument("--memory", action=argparse.BooleanOptionalAction, default=False,
                        help="also measure the peak memory of training 2x650 at B=64, T=100")
    parser.add_argument("--no-kernel-rerun", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def cases(args):
    for model in args.model or list(MODELS):
        for output in args.output or ["full", "class"]:
            for mode in args.mode or ["train", "score"]:
                yield dict(model=model, output=output, mode=mode, batch=args.batch, seq=args.seq)
                if mode == "score" and args.score_batch_one and args.batch != 1:
                    yield dict(model=model, output=output, mode=mode, batch=1, seq=args.seq)


def run_case(case, args):
    hidden, layers = MODELS[case["model"]]
    vocab = benchmark_vocabulary(args.vocab, args.classes if case["output"] == "class" else None)
    spec = parse_network(f"bench-i{hidden}" + f"-m{hidden}" * layers)
    backend = get_backend("numpy")
    network = Network.build(spec, vocab, backend, seed=1)
    optimizer = Sgd(network)
    batches = synthetic_batches(vocab, case["batch"], case["seq"], args.batches)
    if case["mode"] == "train":
        plain = Schedule()

        def work(schedule=plain):  # times_with_dropout passes a schedule with dropout
            for number, batch in enumerate(batches, start=1):
                train_batch(network, optimizer, batch, None, 1e-4,
                            dropout=schedule.dropout_masks(backend, 0, number))
    else:
        def work():
            for batch in batches:
                network.backend.to_numpy(network.log_probs(batch)[0])
    words = args.batches * case["batch"] * case["seq"]
    pytorch = None
    if args.pytorch and case["output"] == "full" and importlib.util.find_spec("torch"):
        pytorch = PyTorchProcess(case, args)
    seconds, pytorch_seconds = interleaved_best_times(work, pytorch, args.repeats)
    flops = matmul_flops_per_word(hidden, layers, args.vocab, output_width(vocab, batches))
    flops *= 3 if case["mode"] == "train" else 1
    record = dict(case, vocab=args.vocab, threads=backend.threads, words_per_s=words / seconds,
                  gflops=flops * words / seconds / 1e9,
                  openblas_coretype=os.environ.get("OPENBLAS_CORETYPE", ""))
    if pytorch is not None:
        record["pytorch_words_per_s"] = words / pytorch_seconds
    if case["mode"] == "train" and args.dropout:
        seconds, dropout_seconds = times_with_dropout(work, args, seconds)
        record.update(words_per_s=words / seconds, dropout=args.dropout,
                      variational_dropout=args.variational_dropout, dropout_words_per_s=words / dropout_seconds)
    return record


def times_with_dropout(work, args, plain_seconds):
    """Best times of the training work without and with dropout, taken in turns."""
    schedule = Schedule(dropout=args.dropout, variational_dropout=args.variational_dropout)
    dropout_seconds = float("inf")
    for _ in range(args.repeats):
        dropout_seconds = min(dropout_seconds, best_time(lambda: work(schedule), 1, warm_up=0))
        plain_seconds = min(plain_seconds, best_time(work, 1, warm_up=0))
    return plain_seconds, dropout_seconds


def interleaved_best_times(work, pytorch, repeats):
    """Best times of our repeats and of PyTorch's, taken in turns so that both see the
    same machine (a shared machine's speed drifts from minute to minute)."""
    for _ in range(2):
        work()
    ours, theirs = float("inf"), float("inf")
    try:
        for _ in range(repeats):
            ours = min(ours, best_time(work, 1, warm_up=0))
            if pytorch is not None:
                theirs = min(theirs, pytorch.time_one_repeat())
    finally:
        if pytorch is not None:
            pytorch.close()
    return ours, theirs


class PyTorchProcess:
    """benchmarks/pytorch_lstm.py in a child process, timing one repeat per request."""

    def __init__(self, case, args):
        command = [sys.executable, str(HERE / "pytorch_lstm.py"), "--model", case["model"],
                   "--mode", case["mode"], "--batch", str(case["batch"]), "--seq", str(case["seq"]),
                   "--vocab", str(args.vocab), "--batches", str(args.batches)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("benchmarks/pytorch_lstm.py did not start")

    def time_one_repeat(self):
        self.process.stdin.write("time\n")
        self.process.stdin.flush()
        return float(self.process.stdout.readline())

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def output_width(vocab, batches):
    """C plus the mean size of the targets' classes (V for a full softmax)."""
    if vocab.num_classes == len(vocab):
        return len(vocab)
    targets = numpy.concatenate([batch.targets.ravel() for batch in batches])
    sizes = vocab.class_size[vocab.word_class[targets]]
    return vocab.num_classes + float(numpy.mean(numpy.where(sizes > 1, sizes, 0)))


def best_kernels():
    """SkylakeX when OPENBLAS_CORETYPE names older kernels on a CPU with AVX-512, else None."""
    chosen = os.environ.get("OPENBLAS_CORETYPE", "")
    if not chosen or chosen.lower() in ("skylakex", "cooperlake", "sapphirerapids"):
        return None
    try:
        with open("/proc/cpuinfo") as handle:
            has_avx512 = " avx512f" in handle.read()
    except OSError:
        return None
    return "SkylakeX" if has_avx512 else None


def sgemm_gflops(rows, inner, columns):
    rng = numpy.random.default_rng(0)
    a = rng.random((rows, inner), dtype=numpy.float32)
    b = rng.random((inner, columns), dtype=numpy.float32)
    return 2 * rows * inner * columns / best_time(lambda: a @ b, 10) / 1e9


def machine_line():
    cpu = cpu_model()
    coretype = os.environ.get("OPENBLAS_CORETYPE", "unset")
    return (f"machine: {cpu}, {get_backend('numpy').threads} threads; numpy {numpy.__version__}; "
            f"OPENBLAS_CORETYPE={coretype}")


def add_class_speedup(record, earlier):
    """For a class-output case: its speed over the full softmax's of the same case in this run."""
    if record["output"] != "class":
        return
    same = ("model", "mode", "batch", "seq", "vocab")
    for full in earlier:
        if full["output"] == "full" and all(full[key] == record[key] for key in same):
            record["speedup_over_full"] = record["words_per_s"] / full["words_per_s"]


def format_record(record):
    line = (f"{record['model']:>5} {record['output']:>5} {record['mode']:>5} B={record['batch']:<3} "
            f"T={record['seq']} V={record['vocab']}: {record['words_per_s']:>9,.0f} words/s, "
            f"{record['gflops']:5.0f} GFLOP/s")
    if "pytorch_words_per_s" in record:
        ratio = record["words_per_s"] / record["pytorch_words_per_s"]
        line += f" | PyTorch {record['pytorch_words_per_s']:>9,.0f} words/s | ratio {ratio:.2f}"
    if "speedup_over_full" in record:
        line += f" | {record['speedup_over_full']:.1f}x our full softmax"
    if "dropout_words_per_s" in record:
        cost = 100.0 * (record["words_per_s"] / record["dropout_words_per_s"] - 1.0)
        kind = "variational " if record["variational_dropout"] else ""
        line += (f" | {kind}dropout {record['dropout']:g}: {record['dropout_words_per_s']:,.0f} words/s, "
                 f"+{cost:.1f}% time")
    return line


if __name__ == "__main__":
    main()
