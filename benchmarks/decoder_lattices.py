"""HTK lattices shaped like a decoder's, for the lattice benchmarks.

The shape follows 8 real meeting-speech lattices from an HTK decoder (19.2 s of audio in
all, 49,342 lines):

    nodes, links per lattice     834-4,967 nodes, 1,410-11,763 links (SIZES below)
    words                        on the nodes (links carry no W=), Zipf-distributed
    times                        10 ms steps; 12-37 nodes per distinct time on average,
                                 a few times with hundreds (the real maximum is 566)
    out-degree                   1.7-2.7 on average (links / nodes), a few hubs with
                                 hundreds of links (the real maximum is 278)
    lines                        `I=12 t=0.35 W=word v=1`, `J=7 S=3 E=12 a=-1234.56 l=-3.456`

Node 0 is the start (!NULL) and the last node the only final one (!NULL, reached from the
sentence-end nodes over links with l=0, which the network does not score); about one node
in twenty is a pause (`-pau-`, reached over links with l=0). A link spans 3 to 60 frames
(30 ms to 0.6 s, a word), its acoustic log-likelihood is about -60 per frame with a spread
of a few per cent between competing words, and its LM log-probability -1 to -9. The number
of histories a search steps hardly depends on these scores: every node keeps at least its
best hypothesis, so a lattice with words on its nodes steps about one history per node
(18,353 for these 15,076 nodes at `--pruning-threshold 150 --lm-scale 14 --dp-order 3`).

A job of many lattices (drawn_sizes): each lattice's nodes drawn log-uniformly between
SIZES's fewest and most (834 to 4,967), its links per node and its nodes per second of
audio uniformly between SIZES's lowest and highest (1.69 to 2.37; 642 to 1,211).
"""

import numpy

# (nodes, links, seconds of audio) of each lattice: the real ones' smallest and largest
# sizes, the others between; 19.2 s of audio in all
SIZES = [(834, 1410, 1.3), (1210, 2644, 1.9), (1388, 3107, 2.1), (1502, 3391, 2.3), (1655, 3790, 2.4),
         (1741, 4028, 2.5), (1779, 4093, 2.6), (4967, 11763, 4.1)]
PAUSE = "-pau-"
SHORTEST, LONGEST = 3, 60  # frames a link spans


def drawn_sizes(count, seed=1):
    """`count` (nodes, links, seconds of audio) in SIZES's ranges (see the module docstring),
    the same for the same seed."""
    rng = numpy.random.default_rng(seed)
    nodes = numpy.array([size[0] for size in SIZES], dtype=numpy.float64)
    links_per_node = numpy.array([size[1] for size in SIZES]) / nodes
    nodes_per_second = nodes / numpy.array([size[2] for size in SIZES])
    drawn = numpy.exp(rng.uniform(numpy.log(nodes.min()), numpy.log(nodes.max()), size=count)).round()
    links = drawn * rng.uniform(links_per_node.min(), links_per_node.max(), size=count)
    seconds = drawn / rng.uniform(nodes_per_second.min(), nodes_per_second.max(), size=count)
    return [(int(n), int(round(k)), round(float(t), 2))
            for n, k, t in zip(drawn.tolist(), links.tolist(), seconds.tolist(), strict=True)]


def write_lattices(folder, words, sentence_end, seed=1, sizes=SIZES):
    """Writes one lattice per entry of `sizes` into `folder` (`meeting<k>.lat`); `words` is the
    vocabulary to draw from (most frequent first), `sentence_end` the word of the sentence-end
    nodes. Returns the paths."""
    rng = numpy.random.default_rng(seed)
    paths = []
    for k, (num_nodes, num_links, seconds) in enumerate(sizes):
        path = folder / f"meeting{k}.lat"
        path.write_text("\n".join(lattice_lines(rng, words, sentence_end, num_nodes, num_links, seconds,
                                                f"meeting{k}")) + "\n")
        paths.append(path)
    return paths


def lattice_lines(rng, words, sentence_end, num_nodes, num_links, seconds, name):
    """One lattice as SLF lines (see the module docstring)."""
    frames = node_frames(rng, num_nodes, round(100 * seconds))
    node_words = choose_words(rng, words, sentence_end, frames)
    links = choose_links(rng, frames, num_links)
    lines = ["VERSION=1.0", f"UTTERANCE={name}", "lmname=meeting.lm lmscale=12.00 wdpenalty=0.00",
             "vocab=meeting.dict", f"N={len(frames)} L={len(links)}"]
    lines += [f"I={node} t={frame / 100:.2f} W={word} v=1" for node, (frame, word)
              in enumerate(zip(frames.tolist(), node_words, strict=True))]
    per_frame = -60.0 * rng.uniform(0.97, 1.03, size=len(frames))  # how well each word fits
    for k, (start, end) in enumerate(links):
        span = int(frames[end] - frames[start])
        acoustic = per_frame[end] * span + rng.normal(0.0, 4.0)
        scored = node_words[end] not in ("!NULL", PAUSE)
        lm = -rng.uniform(1.0, 9.0) if scored else 0.0
        lines.append(f"J={k} S={start} E={end} a={acoustic:.2f} l={lm:.3f}")
    return lines


def node_frames(rng, num_nodes, num_frames):
    """Each node's frame, ascending: node 0 at frame 0, the final node alone at the last
    frame, the others at distinct times a few frames apart, heavy-tailed counts per time."""
    inner = num_nodes - 2
    times = max(2, min(num_frames - 2, round(inner / rng.uniform(12, 37))))
    frames_used = numpy.sort(rng.choice(numpy.arange(SHORTEST, num_frames - 1), size=times, replace=False))
    weights = rng.pareto(1.6, size=times) + 1.0
    counts = numpy.maximum(1, numpy.floor(weights / weights.sum() * inner)).astype(numpy.int64)
    counts[numpy.argmax(counts)] += inner - counts.sum()  # the busiest time takes the rest
    return numpy.concatenate([[0], numpy.repeat(frames_used, counts), [num_frames]])


def choose_words(rng, words, sentence_end, frames):
    """A word per node: !NULL at both ends, the sentence end on the nodes of the last
    times, pauses now and then, else Zipf-drawn words, repeated at a time as a decoder
    repeats a word for its different histories."""
    weights = 1.0 / numpy.arange(1, len(words) + 1)
    weights /= weights.sum()
    last_times = numpy.unique(frames[1:-1])[-2:]
    chosen = ["!NULL"]
    for frame in frames[1:-1].tolist():
        if frame in last_times:
            chosen.append(sentence_end)
        elif rng.uniform() < 0.05:
            chosen.append(PAUSE)
        elif len(chosen) > 1 and frame == frames[len(chosen) - 1] and rng.uniform() < 0.6:
            chosen.append(chosen[-1] if chosen[-1] not in (PAUSE, sentence_end) else words[0])
        else:
            chosen.append(words[rng.choice(len(words), p=weights)])
    return chosen + ["!NULL"]


def choose_links(rng, frames, num_links):
    """(start, end) node pairs: every node but the last has a link out and every node but
    the first a link in, spanning SHORTEST to LONGEST frames where it can; the remaining
    links leave hubs (Pareto-weighted starts). Links into the final node leave only the
    sentence-end nodes (the last two times)."""
    num_nodes = len(frames)
    final = num_nodes - 1
    last_times = numpy.unique(frames[1:-1])[-2:]
    sentence_ends = numpy.flatnonzero(numpy.isin(frames, last_times))
    hub_weight = rng.pareto(0.9, size=num_nodes) + 1.0
    links = set()

    def later(node):
        """Nodes a link from `node` may reach (never the final node: only sentence ends do)."""
        low = numpy.searchsorted(frames, frames[node] + SHORTEST)
        high = numpy.searchsorted(frames, frames[node] + LONGEST, side="right")
        return numpy.arange(low, min(high, final))

    def earlier(node):
        low = numpy.searchsorted(frames, frames[node] - LONGEST)
        high = numpy.searchsorted(frames, frames[node] - SHORTEST, side="right")
        return numpy.arange(low, high)

    for node in sentence_ends.tolist():
        links.add((node, final))
    for node in range(num_nodes - 1):
        if node in set(sentence_ends.tolist()):
            continue
        targets = later(node)
        targets = targets[~numpy.isin(targets, sentence_ends[-1:])] if len(targets) > 1 else targets
        end = int(rng.choice(targets)) if len(targets) else int(sentence_ends[0])
        links.add((node, end))
    has_incoming = {end for _, end in links}
    for node in range(1, final):
        if node not in has_incoming:
            sources = earlier(node)
            links.add((int(rng.choice(sources)) if len(sources) else 0, node))
    starts = numpy.arange(final)
    starts = starts[~numpy.isin(starts, sentence_ends)]
    probabilities = hub_weight[starts] / hub_weight[starts].sum()
    while len(links) < num_links:
        start = int(rng.choice(starts, p=probabilities))
        targets = later(start)
        if len(targets):
            links.add((start, int(rng.choice(targets))))
    return sorted(links, key=lambda link: (frames[link[1]], link[1], link[0]))
