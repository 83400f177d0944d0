"""Turns the toy recipe's n-best lists into HTK lattices: each list as a word graph.

    python make_lattices.py LISTS_DIR OUT_DIR

For each list LISTS_DIR/<utt>.nbest (`ascore lscore nwords words`, log10), OUT_DIR/<utt>.lat
is a prefix tree of its hypotheses: hypotheses that begin alike share their first links,
word k of a hypothesis ends at 0.3 (k + 1) s, and each hypothesis ends in its own <sb>
link into the one final node, which carries its acoustic score (as a natural log). The
lists have no LM score; every link gets l = -0.001, a nearly flat LM that still asks the
network (a link with l = 0 would be silence). The lattice's own best path is then the
list's first hypothesis, and rescoring with --lambda 1 ranks the paths as `nbest` ranks
the list with --lm-weight 1.
"""

import argparse
import math
import pathlib

WORD_SECONDS = 0.3
FLAT_LM = -0.001


def lattice_lines(hypotheses):
    """SLF lines of the prefix tree of (log10 acoustic score, words) hypotheses."""
    nodes = {(): 0}
    links = []
    for _, words in hypotheses:
        for depth in range(len(words)):
            prefix = tuple(words[:depth + 1])
            if prefix not in nodes:
                nodes[prefix] = len(nodes)
                links.append((nodes[prefix[:-1]], nodes[prefix], words[depth], 0.0))
    final = len(nodes)
    for acoustic, words in hypotheses:
        links.append((nodes[tuple(words)], final, "<sb>", acoustic * math.log(10)))
    times = {number: len(prefix) * WORD_SECONDS for prefix, number in nodes.items()}
    times[final] = (max(len(prefix) for prefix in nodes) + 1) * WORD_SECONDS
    lines = ["VERSION=1.0", f"N={final + 1} L={len(links)}"]
    lines += [f"I={node} t={times[node]:.2f}" for node in range(final + 1)]
    lines += [f"J={k} S={start} E={end} W={word} v=1 a={acoustic:.4f} l={FLAT_LM}"
              for k, (start, end, word, acoustic) in enumerate(links)]
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("lists")
    parser.add_argument("out_dir")
    args = parser.parse_args()
    out = pathlib.Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(pathlib.Path(args.lists).glob("*.nbest")):
        hypotheses = []
        for line in path.read_text().splitlines():
            fields = line.split()
            hypotheses.append((float(fields[0]), fields[3:]))
        (out / (path.name.split(".")[0] + ".lat")).write_text("\n".join(lattice_lines(hypotheses)) + "\n")


if __name__ == "__main__":
    main()
