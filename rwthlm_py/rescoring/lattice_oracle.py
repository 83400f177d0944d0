"""Word sequences of a lattice for error counting: its own best path, and its oracle.

    viterbi_links:  the path of least cost under the lattice's own scores (scores.link_cost:
                    -acoustic_scale a - lm_scale l - word_penalty per LM-scored link)
                    (the recognizer's 1-best, before rescoring)
    oracle_words:   the words of a path with the fewest word errors against a reference
                    (substitutions, deletions and insertions, each 1)

Both are dynamic programs over the nodes in topological order. The oracle's chart D[u, j]
is the fewest errors of a path from node 0 to node u that has used the first j reference
words: a link with a word w goes from D[u, j] to D[v, j + 1] (+1 unless w = ref[j]) or
D[v, j] (+1, an insertion), a link without a word to D[v, j], and a deletion from
D[u, j] to D[u, j + 1] (+1). Which links carry words is the caller's choice (the rescoring
counts LM-scored words other than the sentence boundary and the noise words).
"""

import numpy

from rwthlm_py.rescoring.scores import link_cost


def viterbi_links(lattice, topology, lm_scale=1.0, acoustic_scale=1.0, word_penalty=0.0):
    """The link ids of the best path under the lattice's own scores."""
    cost = numpy.full(len(lattice.nodes), numpy.inf)
    cost[0] = 0.0
    into = [None] * len(lattice.nodes)
    for node in topology.order:
        for link_id in topology.outgoing[node]:
            link = lattice.links[link_id]
            step = link_cost(link.acoustic, link.lm, link.lm != 0, acoustic_scale, lm_scale, word_penalty)
            if cost[node] + step < cost[link.end]:
                cost[link.end], into[link.end] = cost[node] + step, link_id
    return _links_into(lattice, into, topology.final)


def oracle_words(lattice, topology, reference, word_of):
    """The words of a path with the fewest errors against `reference`; word_of(link) is a
    link's word to count, or None."""
    size = len(reference) + 1
    errors = numpy.full((len(lattice.nodes), size), numpy.inf)
    errors[0] = numpy.arange(size)
    back = {}  # (node, j) -> (previous node, previous j, link or None)
    for node in topology.order:
        row = errors[node]
        for j in range(1, size):  # deletions within the node
            if row[j - 1] + 1 < row[j]:
                row[j], back[node, j] = row[j - 1] + 1, (node, j - 1, None)
        for link_id in topology.outgoing[node]:
            link = lattice.links[link_id]
            target, word = errors[link.end], word_of(link)
            for j in range(size):
                if word is None:
                    _relax(target, back, link.end, j, row[j], (node, j, link_id))
                    continue
                _relax(target, back, link.end, j, row[j] + 1, (node, j, link_id))
                if j + 1 < size:
                    _relax(target, back, link.end, j + 1, row[j] + (word != reference[j]), (node, j, link_id))
    words, state = [], (topology.final, size - 1)
    while state in back:
        node, j, link_id = back[state]
        if link_id is not None and word_of(lattice.links[link_id]) is not None:
            words.append(word_of(lattice.links[link_id]))
        state = (node, j)
    return words[::-1]


def _relax(target, back, node, j, value, origin):
    if value < target[j]:
        target[j], back[node, j] = value, origin


def _links_into(lattice, into, final):
    links, node = [], final
    while node != 0:
        links.append(into[node])
        node = lattice.links[into[node]].start
    return links[::-1]
