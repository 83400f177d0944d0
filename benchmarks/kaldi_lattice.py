"""What reading and writing Kaldi text archives costs, against reading the same lattices
as HTK SLF files: the format's share of `rwthlm-py lattice --kaldi-words` (the search is
benchmarks/lattice.py's).

    python benchmarks/kaldi_lattice.py                   # 20 utterances of 3 s
    python benchmarks/kaldi_lattice.py --utterances 100 --seconds 10

The lattices have benchmarks/lattice.py's decoder shape (word boundaries every 20 to 80
ms, a few nodes at each, links from one to three boundaries back); as a Kaldi
CompactLattice each link carries a transition id per 10 ms frame, and the nodes that end
the utterance are final states. Printed per way: seconds, and arcs (links) per second.
Nothing here is a test.
"""

import argparse
import pathlib
import tempfile
import time

import numpy
from common import benchmark_vocabulary
from lattice import write_lattice

from rwthlm_py.rescoring.htk_lattice import read_lattice
from rwthlm_py.rescoring.kaldi_conversion import to_search_lattice
from rwthlm_py.rescoring.kaldi_lattice import lattice_lines, read_archive, read_symbols
from rwthlm_py.rescoring.lattice_topology import lattice_topology


def main():
    args = parse_arguments()
    vocab = benchmark_vocabulary(args.vocab, 100)
    folder = pathlib.Path(tempfile.mkdtemp(prefix="rwthlm-kaldi-lattices-"))
    rng = numpy.random.default_rng(args.seed)
    slf = [write_lattice(folder / f"{k}.lat", rng, vocab, args.seconds) for k in range(args.utterances)]
    htk = [read_lattice(path) for path in slf]
    ids = {word: k + 1 for k, word in enumerate(vocab.words)}
    (folder / "words.txt").write_text("".join(f"{word} {k}\n" for word, k in [("<eps>", 0), *ids.items()]))
    archive = folder / "lattices.ark"
    archive.write_text("".join(kaldi_text(f"utt{k}", lattice, ids) for k, lattice in enumerate(htk)))
    links = sum(len(lattice.links) for lattice in htk)
    print(f"{args.utterances} lattices of {args.seconds:g} s: {sum(len(x.nodes) for x in htk)} nodes, {links} links; "
          f"archive {archive.stat().st_size / 1e6:.1f} MB")

    start = time.perf_counter()
    for path in slf:
        lattice_topology(read_lattice(path))
    report("HTK SLF: read, topology", time.perf_counter() - start, links)

    symbols = read_symbols(folder / "words.txt")
    start = time.perf_counter()
    kaldi = list(read_archive(archive))
    report("Kaldi archive: read", time.perf_counter() - start, links)
    start = time.perf_counter()
    for utterance in kaldi:
        lattice_topology(to_search_lattice(utterance, symbols, 0.01).lattice)
    report("Kaldi: conversion, topology", time.perf_counter() - start, links)
    start = time.perf_counter()
    for utterance in kaldi:
        arcs = [(a.source, a.target, a.word, a.graph, a.acoustic, a.transitions) for a in utterance.arcs]
        finals = {f.state: (f.graph, f.acoustic, f.transitions) for f in utterance.finals}
        lattice_lines(utterance.key, True, arcs, finals)
    report("Kaldi archive: write", time.perf_counter() - start, links)


def kaldi_text(key, lattice, ids):
    """An HTK lattice of benchmarks/lattice.py as a CompactLattice: the links into the last
    node become final weights."""
    final = len(lattice.nodes) - 1
    frames = [round(100 * node.time) for node in lattice.nodes]
    lines = [f"{key} "]
    for link in lattice.links:
        if link.end == final:
            lines.append(f"{link.start}\t{-link.lm:.7g},{-link.acoustic:.7g},")
            continue
        tids = "_".join(str(1 + (link.start + k) % 5000) for k in range(frames[link.end] - frames[link.start]))
        lines.append(f"{link.start}\t{link.end}\t{ids[link.word]}\t{-link.lm:.7g},{-link.acoustic:.7g},{tids}")
    return "\n".join(lines) + "\n\n"


def report(name, seconds, links):
    print(f"{name:30s}: {seconds:6.2f} s, {links / seconds:9,.0f} links/s")


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--utterances", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=3.0, help="audio per lattice")
    parser.add_argument("--vocab", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


if __name__ == "__main__":
    main()
