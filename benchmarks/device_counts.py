"""What one batch would ask of a GPU: kernel launches, waits and copies, by call site, and
the host's time per batch.

    python benchmarks/device_counts.py                       # 2x650, B=64, T=35, V=10,000
    python benchmarks/device_counts.py --mode score --batch 1 --clipping 1.0 --top 40
    python benchmarks/device_counts.py --dropout 0.5 [--variational-dropout]

Runs a batch on the test suite's strict cupy double (rwthlm_py/testing/strict_cupy.py),
which counts a launch per element-wise operation, reduction, gather, copy and product (plus
one per GEMM operand that cupy would copy first), a wait per device-to-host transfer, and a
copy per host-to-device transfer. The fused kernels are the CUDA kernels run on the CPU
(rwthlm_py/testing/cuda_on_cpu.py; needs g++), so what they launch around their kernels is
counted too. Counts are of the second batch, after one of warm-up. No GPU is needed.
The class output uses frequency-binned classes, as benchmarks/run.py does.

Host time per batch: the same batches run on the double without arithmetic
(rwthlm_py/testing/host_time_cupy.py), whose kernels, products and element-wise operations
return at once, and the fastest batch after warm-up is timed (glibc keeping freed memory,
as the command lines have it: on a GPU cupy's memory pool serves the allocations). That is
the time the host spends on a batch in rwthlm_py's own Python (layers, the kernels'
launchers and their prepared arguments, allocations, views, host-to-device copies), plus
the double's own cost per call, which stands in for cupy's. It is not what a batch costs
the host on a GPU: cupy's own cost per call (its Cython, the CUDA driver's launch,
cuBLAS's) needs a GPU to measure (benchmarks/gpu_check.py reports the host time per batch
there), and nothing here waits for a device. So that the figure can be read, the double's
own cost per call is printed beside it, timed the same way: a kernel launch, a cuBLAS
product on prepared arguments, an element-wise operation (into a given array, and into a
new one), a reduction, a view and an allocation.
"""

import argparse
import time

import numpy
from common import MODELS, benchmark_vocabulary, synthetic_batches

from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.runtime.allocator import keep_freed_memory
from rwthlm_py.testing import cuda_on_cpu
from rwthlm_py.testing.host_time_cupy import shape_only_backend
from rwthlm_py.testing.strict_cupy import strict_backend
from rwthlm_py.training.optim import Sgd
from rwthlm_py.training.train import Schedule, train_batch


def main():
    args = parse_arguments()
    keep_freed_memory()  # as the command lines do (a GPU's allocations come from cupy's pool)
    counts = count_one_batch(args.model, args.mode, args.batch, args.seq, args.vocab, args.classes, args.clipping,
                             args.dropout, args.variational_dropout)
    dropout = f" dropout={args.dropout:g}{' variational' if args.variational_dropout else ''}" if args.dropout else ""
    print(f"{args.model} {args.mode} B={args.batch} T={args.seq} V={args.vocab} classes={args.classes} "
          f"clipping={args.clipping}{dropout}: {counts.summary()}")
    for name in ("launches", "waits", "copies", "operand_copies"):
        for site, number in getattr(counts, name).most_common(args.top):
            print(f"  {name:15s} {number:6d}  {site}")
    if args.host_time:
        seconds = host_time_per_batch(args.model, args.mode, args.batch, args.seq, args.vocab, args.classes,
                                      args.clipping, args.dropout, args.variational_dropout, args.repeats)
        print(f"host time per batch: {1000 * seconds:.2f} ms (the fastest of {args.repeats} batches after "
              f"{WARM_UP} of warm-up, no arithmetic)")
        costs = ", ".join(f"{name} {1e6 * cost:.2f}" for name, cost in double_cost_per_call().items())
        print(f"the double's own cost per call, us: {costs}")


def count_one_batch(model, mode, batch_size, steps, vocab_size, classes, clipping=None, dropout=0.0,
                    variational=False):
    """The strict double's counts (rwthlm_py.testing.strict_cupy.Counts) of the second of two
    batches (trained with the dropout masks of batches 0 and 1 of epoch 1 when `dropout`)."""
    vocab = benchmark_vocabulary(vocab_size, classes)
    backend = strict_backend(cuda_kernels=cuda_on_cpu.compiler() is not None)
    run = batch_runner(backend, model, mode, vocab, clipping, dropout, variational)
    counts = backend.xp.counts
    for number, batch in enumerate(synthetic_batches(vocab, batch_size, steps, 2)):
        counts.clear()
        run(number, batch)
    return counts


def batch_runner(backend, model, mode, vocab, clipping, dropout, variational):
    """A function that runs batch number `number` of `mode` on a new network of `model` on
    `backend` (trained with momentum 0.9 and the dropout masks of that batch of epoch 1; its
    loss left unread, as the training loop leaves it)."""
    hidden, layers = MODELS[model]
    network = Network.build(parse_network(f"bench-i{hidden}" + f"-m{hidden}" * layers), vocab, backend, seed=1)
    optimizer = Sgd(network, momentum=0.9)
    schedule = Schedule(dropout=dropout, variational_dropout=variational)

    def run(number, batch):
        if mode == "train":
            train_batch(network, optimizer, batch, None, 1e-3, clipping=clipping,
                        dropout=schedule.dropout_masks(backend, 1, number), read_loss=False)
        else:
            backend.to_numpy(network.log_probs(batch)[0])
    return run


WARM_UP = 2  # batches before the timed ones


def host_time_per_batch(model, mode, batch_size, steps, vocab_size, classes, clipping=None, dropout=0.0,
                        variational=False, repeats=20):
    """The fastest of `repeats` batches (after WARM_UP) on the double without arithmetic,
    in seconds: the host's work of a batch."""
    vocab = benchmark_vocabulary(vocab_size, classes)
    run = batch_runner(shape_only_backend(), model, mode, vocab, clipping, dropout, variational)
    best = float("inf")
    for number, batch in enumerate(synthetic_batches(vocab, batch_size, steps, WARM_UP + repeats)):
        started = time.perf_counter()
        run(number, batch)
        if number >= WARM_UP:
            best = min(best, time.perf_counter() - started)
    return best


def double_cost_per_call(calls=2000, repeats=5):
    """Seconds per call of the double without arithmetic, the fastest of `repeats` rounds
    of `calls` calls each, for the kinds of call a batch makes."""
    xp = shape_only_backend().xp
    a, b, out = xp.empty((650, 64), numpy.float32), xp.empty((650, 64), numpy.float32), xp.empty((650, 64),
                                                                                               numpy.float32)
    cases = xp.empty((35, 650, 64), numpy.float32)
    kernel = xp.RawModule(code="").get_function("lstm_forward_step")
    arguments = tuple(a.data.ptr for _ in range(8)) + tuple(numpy.int32(1) for _ in range(4))
    cublas, handle = xp.cuda.cublas, xp.cuda.device.get_cublas_handle()
    one = numpy.ones(1, numpy.float32)
    product = (handle, 0, 0, 64, 650, 650, one.ctypes.data, a.data.ptr, 64, b.data.ptr, 650, one.ctypes.data,
               out.data.ptr, 64)
    work = {"kernel launch": lambda: kernel((163,), (256,), arguments),
            "cuBLAS gemm": lambda: cublas.sgemm(*product),
            "element-wise into out": lambda: xp.multiply(a, b, out=out),
            "element-wise": lambda: a * b,
            "reduction": lambda: a.sum(axis=1),
            "view": lambda: cases[7],
            "allocation": lambda: xp.empty((650, 64), numpy.float32)}
    costs = {}
    for name, call in work.items():
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            for _ in range(calls):
                call()
            best = min(best, time.perf_counter() - started)
        costs[name] = best / calls
    return costs


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=MODELS, default="2x650")
    parser.add_argument("--mode", choices=("train", "score"), default="train")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq", type=int, default=35)
    parser.add_argument("--vocab", type=int, default=10000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--clipping", type=float, default=None)
    parser.add_argument("--dropout", type=float, default=0.0, help="train with this dropout")
    parser.add_argument("--variational-dropout", action="store_true")
    parser.add_argument("--top", type=int, default=15, help="call sites listed per count")
    parser.add_argument("--host-time", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the host's work per batch on the double without arithmetic")
    parser.add_argument("--repeats", type=int, default=20, help="timed batches (the fastest is reported)")
    return parser.parse_args()


if __name__ == "__main__":
    main()
