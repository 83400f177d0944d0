"""The cost of drawing one dropout mask on the CPU: the numpy body of the Philox4x32-10
kernel (rwthlm_py/kernels/dropout.py) against numpy's default generator (PCG64), which
drew the masks on the host before, for a mask of a 2x650 batch (T=35, B=64, H=650).

    python benchmarks/dropout_masks.py [--seq T] [--batch B] [--hidden H] [--repeats N]

Prints the best of N draws of each: the bare mask, and the mask applied to a layer's
output (what training asks for); default_rng's rows are drawn as the host did
(`rng.random(shape, float32) >= p`, times 1/(1-p)) and its apply is a multiplication.
"""

import argparse

import numpy
from common import best_time

from rwthlm_py.runtime.backend import get_backend
from rwthlm_py.training.dropout import DropoutMasks

PROBABILITY = 0.5


def default_rng_mask(shape, key):
    keep = numpy.random.default_rng(key).random(shape, dtype=numpy.float32) >= PROBABILITY
    return keep * numpy.float32(1.0 / (1.0 - PROBABILITY))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seq", type=int, default=35)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=650)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    shape = (args.seq, args.batch, args.hidden)
    masks = DropoutMasks(PROBABILITY, False, (1, 1, 1), get_backend("numpy"))
    x = numpy.random.default_rng(0).standard_normal(shape).astype(numpy.float32)
    cases = {"default_rng (host draw, before)": lambda: default_rng_mask(shape, (1, 1, 1, 0)),
             "Philox numpy body": lambda: masks.mask(0, shape),
             "default_rng, applied": lambda: x * default_rng_mask(shape, (1, 1, 1, 0)),
             "Philox numpy body, applied": lambda: masks.apply(0, x)}
    times = {name: float("inf") for name in cases}
    for _ in range(args.repeats):  # in turns, so that a busy spell of the machine hits all alike
        for name, draw in cases.items():
            times[name] = min(times[name], best_time(draw, 1, warm_up=0))
    print(f"one {'x'.join(map(str, shape))} float32 mask, p={PROBABILITY}, best of {args.repeats}:")
    for name, seconds in times.items():
        print(f"  {name:30s} {seconds * 1e3:7.2f} ms")


if __name__ == "__main__":
    main()
