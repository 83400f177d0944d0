"""What one batch would ask of a GPU: kernel launches, waits and copies, by call site.

    python benchmarks/device_counts.py                       # 2x650, B=64, T=35, V=10,000
    python benchmarks/device_counts.py --mode score --batch 1 --clipping 1.0 --top 40
    python benchmarks/device_counts.py --dropout 0.5 [--variational-dropout]

Runs a batch on the test suite's strict cupy double (rwthlm_py/testing/strict_cupy.py),
which counts a launch per element-wise operation, reduction, gather, copy and product (plus
one per GEMM operand that cupy would copy first), a wait per device-to-host transfer, and a
copy per host-to-device transfer. The fused kernels are the CUDA kernels run on the CPU
(rwthlm_py/testing/cuda_on_cpu.py; needs g++), so what they launch around their kernels is
counted too. Counts are of the second batch, after one of warm-up. No GPU is needed;
nothing is timed. The class output uses frequency-binned classes, as benchmarks/run.py does.
"""

import argparse

from common import MODELS, benchmark_vocabulary, synthetic_batches

from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.testing import cuda_on_cpu
from rwthlm_py.testing.strict_cupy import strict_backend
from rwthlm_py.training.optim import Sgd
from rwthlm_py.training.train import Schedule, train_batch


def main():
    args = parse_arguments()
    counts = count_one_batch(args.model, args.mode, args.batch, args.seq, args.vocab, args.classes, args.clipping,
                             args.dropout, args.variational_dropout)
    dropout = f" dropout={args.dropout:g}{' variational' if args.variational_dropout else ''}" if args.dropout else ""
    print(f"{args.model} {args.mode} B={args.batch} T={args.seq} V={args.vocab} classes={args.classes} "
          f"clipping={args.clipping}{dropout}: {counts.summary()}")
    for name in ("launches", "waits", "copies", "operand_copies"):
        for site, number in getattr(counts, name).most_common(args.top):
            print(f"  {name:15s} {number:6d}  {site}")


def count_one_batch(model, mode, batch_size, steps, vocab_size, classes, clipping=None, dropout=0.0,
                    variational=False):
    """The strict double's counts (rwthlm_py.testing.strict_cupy.Counts) of the second of two
    batches (trained with the dropout masks of batches 0 and 1 of epoch 1 when `dropout`)."""
    hidden, layers = MODELS[model]
    vocab = benchmark_vocabulary(vocab_size, classes)
    backend = strict_backend(cuda_kernels=cuda_on_cpu.compiler() is not None)
    network = Network.build(parse_network(f"bench-i{hidden}" + f"-m{hidden}" * layers), vocab, backend, seed=1)
    optimizer = Sgd(network, momentum=0.9)
    counts = backend.xp.counts
    schedule = Schedule(dropout=dropout, variational_dropout=variational)
    for number, batch in enumerate(synthetic_batches(vocab, batch_size, steps, 2)):
        counts.clear()
        if mode == "train":
            train_batch(network, optimizer, batch, None, 1e-3, clipping=clipping,
                        dropout=schedule.dropout_masks(backend, 1, number))
        else:
            backend.to_numpy(network.log_probs(batch)[0])
    return counts


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
    return parser.parse_args()


if __name__ == "__main__":
    main()
