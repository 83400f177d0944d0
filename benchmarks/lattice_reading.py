"""Speed of reading HTK lattices (htk_lattice.read_lattice) and of finding their node order
(lattice_topology), on generated lattices of the shape of real meeting-speech lattices.

    python benchmarks/lattice_reading.py              # 8 lattices, 49,342 lines
    python benchmarks/lattice_reading.py --repeats 20 --gzip

The lattices are those of benchmarks/decoder_lattices.py (shaped like 8 real ones from an
HTK decoder, 49,342 lines in all, words on the nodes; its docstring gives their statistics).
Printed: the fastest of --repeats passes over all lattices (after a warm-up; the lattices
a pass returns are freed outside the times), as seconds, lines per second and microseconds
per line (per link for the topology). Nothing here is a test.
"""

import argparse
import gzip
import pathlib
import tempfile
import time

from decoder_lattices import write_lattices

from rwthlm_py.rescoring.htk_lattice import read_lattice
from rwthlm_py.rescoring.lattice_topology import lattice_topology


def main():
    args = parse_arguments()
    with tempfile.TemporaryDirectory(prefix="rwthlm-lattice-reading-") as folder:
        words = [f"word{k}" for k in range(5000)]
        paths = write_lattices(pathlib.Path(folder), words, "</s>", seed=args.seed)
        measure(compressed(paths) if args.gzip else paths, args.gzip, args.repeats)


def measure(paths, compressed, repeats):
    lattices = [read_lattice(path) for path in paths]
    lines = sum(len(lattice.lines) for lattice in lattices)
    links = sum(len(lattice.links) for lattice in lattices)
    print(f"{len(paths)} lattices{' (gzip)' if compressed else ''}: {lines:,} lines, "
          f"{sum(len(lattice.nodes) for lattice in lattices):,} nodes, {links:,} links")
    seconds = fastest(lambda: [read_lattice(path) for path in paths], repeats)
    print(f"read_lattice    : {seconds:.4f} s, {lines / seconds:12,.0f} lines/s, {1e6 * seconds / lines:6.2f} µs/line")
    seconds = fastest(lambda: [lattice_topology(lattice) for lattice in lattices], repeats)
    print(f"lattice_topology: {seconds:.4f} s, {links / seconds:12,.0f} links/s, {1e6 * seconds / links:6.2f} µs/link "
          f"({1e6 * seconds / lines:.2f} µs/line)")


def fastest(function, repeats):
    """The fastest of `repeats` calls after a warm-up, each timed up to its return: what it
    returns is freed after the next call, outside the times."""
    best, result = float("inf"), function()
    for _ in range(repeats):
        previous = result
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
        del previous
    return best


def compressed(paths):
    """The lattices gzip-compressed, next to them."""
    written = []
    for path in paths:
        target = path.with_name(path.name + ".gz")
        target.write_bytes(gzip.compress(path.read_bytes()))
        written.append(target)
    return written


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--gzip", action="store_true", help="write the lattices gzip-compressed")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


if __name__ == "__main__":
    main()
