"""What a search leaves behind, as a lattice: rwthlm's context-expanded lattice (§7.8)
built from the traceback, and the n best distinct word sequences of such a lattice.

The expanded lattice has a node per hypothesis that survived and a link per hypothesis,
each with the LM log-probability of its own history, so that its paths carry exact
network scores (up to the recombination of --dp-order). `distinct_best_paths` finds its
cheapest paths by A* with an exact heuristic, keeping the first path of each word
sequence (rwthlm-py lattice --nbest).
"""

import dataclasses
import heapq
import math

import numpy


@dataclasses.dataclass
class ExpandedLink:
    start: int
    end: int
    link: int  # the lattice link it copies, or None for an epsilon link into the new final node
    lm_log_prob: float


def expand(result, topology):
    """rwthlm's context-expanded lattice (§7.8) from a search's traceback.

    Its nodes are the traceback entries that survived (predecessors of another entry, or
    at the final node; the root first), then one new final node; node k's time is that of
    its entry's lattice node. Every entry but the root is a link from its predecessor's
    node, with the LM log-probability its hypothesis gave it; an entry that was pruned
    leads to the worst surviving entry of its lattice node whose score is not worse than
    its own (or, if there is none, the best one). Every entry at the final node gets an
    epsilon link to the new final node. Returns (node times in centiseconds, links).
    """
    traceback, final = result.traceback, topology.final
    link, predecessor, score, node, lm_log_prob = (values.tolist() for values in (
        traceback.link, traceback.predecessor, traceback.score, traceback.node, traceback.lm_log_prob))
    predecessors = set(predecessor[1:])
    surviving = [entry for entry in range(len(link)) if entry in predecessors or node[entry] == final]
    node_of = {entry: k for k, entry in enumerate(surviving)}
    survivors_at = {}
    for entry in surviving:
        survivors_at.setdefault(node[entry], []).append(entry)
    links = []
    for entry in range(1, len(link)):
        end = node_of.get(entry)
        if end is None:
            survivors = survivors_at[node[entry]]
            not_worse = [other for other in survivors if score[other] <= score[entry]]
            if not_worse:
                end = node_of[max(not_worse, key=lambda other: score[other])]
            else:
                end = node_of[min(survivors, key=lambda other: score[other])]
        links.append(ExpandedLink(node_of[predecessor[entry]], end, link[entry], lm_log_prob[entry]))
    new_final = len(surviving)
    links += [ExpandedLink(node_of[entry], new_final, None, 0.0) for entry in surviving if node[entry] == final]
    times = [int(topology.centiseconds[node[entry]]) for entry in surviving]
    return times + [int(topology.centiseconds[final])], links


def distinct_best_paths(num_nodes, links, costs, words_of, count, max_paths=None):
    """The `count` cheapest paths from node 0 to node num_nodes - 1 of an acyclic graph,
    one per distinct word sequence: (cost, link indices).

    links[k] = (start, end) with cost costs[k]; words_of(path) gives a path's word
    sequence. Paths come in order of cost from an A* search whose heuristic is the exact
    cost to the end, so a sequence's first path is its best; at most max_paths (default
    100 x count) complete paths are looked at.
    """
    outgoing = [[] for _ in range(num_nodes)]
    for k, (start, _) in enumerate(links):
        outgoing[start].append(k)
    to_end = numpy.full(num_nodes, math.inf)
    to_end[num_nodes - 1] = 0.0
    for node in reversed(_topological_order(num_nodes, links, outgoing)):
        for k in outgoing[node]:
            to_end[node] = min(to_end[node], costs[k] + to_end[links[k][1]])
    found, seen, complete = [], set(), 0
    queue = [(to_end[0], 0.0, 0, ())]
    limit = max_paths or 100 * count
    while queue and len(found) < count and complete < limit:
        _, cost, node, path = heapq.heappop(queue)
        if node == num_nodes - 1:
            complete += 1
            words = tuple(words_of(path))
            if words not in seen:
                seen.add(words)
                found.append((cost, list(path)))
            continue
        for k in outgoing[node]:
            end = links[k][1]
            if math.isfinite(to_end[end]):
                heapq.heappush(queue, (cost + costs[k] + to_end[end], cost + costs[k], end, path + (k,)))
    return found


def _topological_order(num_nodes, links, outgoing):
    """Kahn's order of an acyclic graph (the expanded lattice's node ids need not be one:
    a pruned hypothesis's link may lead to an older node)."""
    incoming = numpy.zeros(num_nodes, dtype=numpy.int64)
    for _, end in links:
        incoming[end] += 1
    ready = [node for node in range(num_nodes) if incoming[node] == 0]
    order = []
    while ready:
        node = ready.pop()
        order.append(node)
        for k in outgoing[node]:
            end = links[k][1]
            incoming[end] -= 1
            if incoming[end] == 0:
                ready.append(end)
    return order
