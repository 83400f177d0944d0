"""Speed of reading HTK lattices (htk_lattice.read_lattice) and of finding their node order
(lattice_topology), on generated lattices of the shape of real meeting-speech lattices.

    python benchmarks/lattice_reading.py              # 8 lattices, 49,342 lines
    python benchmarks/lattice_reading.py --repeats 20 --gzip

The lattices are shaped like 8 real ones from an HTK decoder (49,342 lines in all; 834 to
4,967 nodes and 1,410 to 11,763 links each): words on the nodes, times at 10 ms, a header
of four lines and a size line, then

    I=12 t=0.35 W=word v=1                      every node
    J=7 S=3 E=12 a=-1234.56 l=-3.456            every link (no W=: the word is its end node's)

Node 0 is the start (!NULL), the last node the only final one (</s>); every node has a
link from one of the 30 nodes before it, and every other link joins two nodes at most 30
apart, so that each lattice passes lattice_topology's checks. Words are Zipf-distributed.
Printed: the fastest of --repeats passes over all lattices (after a warm-up; the lattices
a pass returns are freed outside the times), as seconds, lines per second and microseconds
per line (per link for the topology). Nothing here is a test.
"""

import argparse
import gzip
import pathlib
import tempfile
import time

import numpy
from common import zipf_stream

from rwthlm_py.rescoring.htk_lattice import read_lattice
from rwthlm_py.rescoring.lattice_topology import lattice_topology

# (nodes, links) of each lattice: the real ones' smallest and largest, the others between
SIZES = [(834, 1410), (1210, 2644), (1388, 3107), (1502, 3391), (1655, 3790), (1741, 4028), (1779, 4093),
         (4967, 11763)]
HEADER_LINES = 4
WINDOW = 30  # the farthest a link reaches back, in nodes


def main():
    args = parse_arguments()
    with tempfile.TemporaryDirectory(prefix="rwthlm-lattice-reading-") as folder:
        rng = numpy.random.default_rng(args.seed)
        paths = [write_lattice(pathlib.Path(folder) / f"meeting{k}.lat", rng, nodes, links, args.gzip)
                 for k, (nodes, links) in enumerate(SIZES)]
        measure(paths, args.gzip, args.repeats)


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


def write_lattice(path, rng, num_nodes, num_links, compress):
    """A lattice of the shape the module docstring describes, as an SLF file."""
    words = [f"word{k}" for k in zipf_stream(5000, num_nodes, seed=int(rng.integers(1 << 30)))]
    words[0], words[-1] = "!NULL", "</s>"
    centiseconds = numpy.concatenate([[0], numpy.cumsum(rng.integers(0, 4, size=num_nodes - 1))])
    pairs = [(int(rng.integers(max(0, end - WINDOW), end)), end) for end in range(1, num_nodes)]
    has_outgoing = {start for start, _ in pairs}
    pairs += [(start, int(rng.integers(start + 1, min(num_nodes, start + WINDOW + 1))))
              for start in range(num_nodes - 1) if start not in has_outgoing]
    while len(pairs) < num_links:
        start = int(rng.integers(0, num_nodes - 1))
        pairs.append((start, int(rng.integers(start + 1, min(num_nodes, start + WINDOW + 1)))))
    assert len(pairs) == num_links, "too few links for a connected lattice"
    pairs.sort()
    lines = ["VERSION=1.0", f"UTTERANCE={path.stem}", "lmname=meeting.lm lmscale=12.00 wdpenalty=0.00",
             "vocab=meeting.dict", f"N={num_nodes} L={num_links}"]
    assert len(lines) == HEADER_LINES + 1
    lines += [f"I={k} t={centiseconds[k] / 100:.2f} W={word} v=1" for k, word in enumerate(words)]
    for k, (start, end) in enumerate(pairs):
        duration = int(centiseconds[end] - centiseconds[start])
        acoustic = -(60 + 40 * duration) * rng.uniform(0.9, 1.1)
        lines.append(f"J={k} S={start} E={end} a={acoustic:.2f} l={-rng.uniform(0.5, 9):.3f}")
    text = "\n".join(lines) + "\n"
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--gzip", action="store_true", help="write the lattices gzip-compressed")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


if __name__ == "__main__":
    main()
