"""Lattice rescoring speed: the network steps batched per time frame against rwthlm's one
history at a time (`--batch-size 1`), on generated lattices of a decoder's shape.

    python benchmarks/lattice.py                     # 1x200, 100 classes, V = 10,000
    python benchmarks/lattice.py --model 2x650 --lattices 4 --beam 80

Each lattice has word boundaries every 20 to 80 ms over `--seconds` of audio, a few nodes
at each (different words ending there), and links from nodes one to three boundaries
back, words drawn Zipf-like from the vocabulary, acoustic scores of about -40 per 10 ms
and LM scores of about -4 per word: hundreds of nodes and thousands of links. The network
is untrained (its speed does not depend on its weights). Printed per way: seconds,
hypotheses extended per second, network steps (histories stepped) per second, the
hypotheses kept per frame, and whether the 1-best word sequences are the same. Nothing
here is a test.
"""

import argparse
import pathlib
import tempfile
import time

import numpy
from common import MODELS, benchmark_vocabulary

from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.rescoring.htk_lattice import read_lattice
from rwthlm_py.rescoring.lattice_search import SearchOptions, search
from rwthlm_py.rescoring.lattice_topology import lattice_topology
from rwthlm_py.runtime.backend import get_backend


def main():
    args = parse_arguments()
    hidden, layers = MODELS[args.model]
    vocab = benchmark_vocabulary(args.vocab, args.classes)
    backend = get_backend(args.backend, "float32")
    network = Network.build(parse_network(f"bench-i{hidden}" + f"-m{hidden}" * layers), vocab, backend, seed=1)
    folder = pathlib.Path(tempfile.mkdtemp(prefix="rwthlm-lattices-"))
    rng = numpy.random.default_rng(args.seed)
    lattices = [read_lattice(write_lattice(folder / f"{k}.lat", rng, vocab, args.seconds))
                for k in range(args.lattices)]
    print(f"{args.model}, V={args.vocab}, {args.classes} classes, {backend.describe()}; {args.lattices} lattices "
          f"of {args.seconds:g} s: {sum(len(x.nodes) for x in lattices)} nodes, "
          f"{sum(len(x.links) for x in lattices)} links; beam {args.beam:g}, dp-order {args.dp_order}, "
          f"look-ahead {args.look_ahead}")
    prepared = [(lattice, lattice_topology(lattice), [vocab.index[link.word] for link in lattice.links])
                for lattice in lattices]
    results = {}
    for name, batch_size in (("batched per frame", None), ("one at a time (--batch-size 1)", 1)):
        options = SearchOptions(lam=0.5, beam=args.beam, dp_order=args.dp_order, lm_scale=args.lm_scale,
                                look_ahead=args.look_ahead, batch_size=batch_size)
        search(network, *prepared[0], options)  # warm-up
        start = time.perf_counter()
        found = [search(network, lattice, topology, words, options) for lattice, topology, words in prepared]
        seconds = time.perf_counter() - start
        extended = sum(len(result.traceback.link) - 1 for result in found)
        steps = sum(result.network_steps for result in found)
        kept = [int(line.split("-> ")[1].split()[0]) for result in found for line in result.pruning_lines]
        results[name] = (seconds, [[lattice.links[k].word for k in result.best_links]
                                   for (lattice, _, _), result in zip(prepared, found, strict=True)])
        print(f"{name:32s}: {seconds:7.2f} s, {extended / seconds:9,.0f} hypotheses/s, {steps / seconds:8,.0f} "
              f"network steps/s ({steps:,} steps), {numpy.mean(kept):.0f} hypotheses kept per frame "
              f"(largest {max(kept)})")
    (batched, batched_best), (single, single_best) = results.values()
    print(f"speed-up of batching: {single / batched:.1f}x; "
          f"the same 1-best word sequences: {batched_best == single_best}")


def write_lattice(path, rng, vocab, seconds):
    """A decoder-like lattice (see the module docstring) as an SLF file."""
    words = [vocab.words[k] for k in range(len(vocab)) if k != vocab.sb]
    weights = 1.0 / numpy.arange(1, len(words) + 1)
    weights /= weights.sum()
    boundaries = [0]
    while boundaries[-1] < seconds * 100:
        boundaries.append(boundaries[-1] + int(rng.integers(2, 9)))
    nodes = [(0, 0)]  # (boundary index, centiseconds)
    at_boundary = [[0]]
    for index, time_cs in enumerate(boundaries[1:], start=1):
        at_boundary.append(list(range(len(nodes), len(nodes) + int(rng.integers(1, 7)))))
        nodes += [(index, time_cs)] * len(at_boundary[-1])
    links = []

    def link(start, end):
        duration = nodes[end][1] - nodes[start][1]
        word = words[rng.choice(len(words), p=weights)]
        links.append((start, end, word, -40.0 * duration * rng.uniform(0.9, 1.1), -rng.uniform(1, 8)))

    has_outgoing = set()
    for index in range(1, len(boundaries)):
        earlier = [node for back in (1, 2, 3) if index - back >= 0 for node in at_boundary[index - back]]
        for end in at_boundary[index]:
            for start in rng.choice(earlier, size=min(len(earlier), int(rng.integers(1, 9))), replace=False):
                link(int(start), end)
                has_outgoing.add(int(start))
    final = len(nodes)
    nodes.append((len(boundaries), boundaries[-1] + 5))
    for node in range(final):
        if node not in has_outgoing:
            links.append((node, final, vocab.words[vocab.sb], -40.0 * (nodes[final][1] - nodes[node][1]), -1.0))
    lines = [f"N={len(nodes)} L={len(links)}"]
    lines += [f"I={k} t={time_cs / 100:.2f}" for k, (_, time_cs) in enumerate(nodes)]
    lines += [f"J={k} S={s} E={e} W={w} v=1 a={a:.2f} l={lm:.3f}" for k, (s, e, w, a, lm) in enumerate(links)]
    path.write_text("\n".join(lines) + "\n")
    return path


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=MODELS, default="1x200")
    parser.add_argument("--vocab", type=int, default=10000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--lattices", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="audio per lattice")
    parser.add_argument("--beam", type=float, default=100.0)
    parser.add_argument("--dp-order", type=int, default=4)
    parser.add_argument("--lm-scale", type=float, default=10.0)
    parser.add_argument("--look-ahead", choices=("none", "tropical", "log"), default="tropical")
    parser.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


if __name__ == "__main__":
    main()
