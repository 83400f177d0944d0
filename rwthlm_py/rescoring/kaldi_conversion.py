"""A Kaldi lattice as the lattice rwthlm's search takes (htk_lattice.Lattice), and the
search's context-expanded lattice as a Kaldi lattice again.

to_search_lattice: the states that lie on no path from the start state to a final state
are left out (they carry no path: Kaldi's Connect), then

    node 0          the start state
    nodes 1 ...     the other states, by their time, then in topological order
    the last node   a new final node, reached from every final state over a link whose
                    word is the sentence boundary </s>, carrying the final weight: the
                    network scores </s> there, as Kaldi's RNNLM rescoring does at final
                    states
    a link per arc  its word's symbol (words.txt), acoustic = -acoustic cost,
                    lm = -graph cost

A state's time is the number of frames before it (Kaldi's CompactLatticeStateTimes: the
transition ids of the arcs on the way; LatticeStateTimes: the arcs with an input label),
in seconds times the frame shift; the new final node is at the end of the latest final
state (its frames and its final weight's). Refused, as InputErrors naming the archive
and the line (the search needs a directed acyclic graph whose states have one time each):

    an empty lattice, no final state reachable from the start state, a cycle, a state
    reached after different numbers of frames on two paths, a word id not in words.txt

network_words gives the network's word of each link: </s> and the final links the
network's sentence boundary; epsilon (id 0), <eps>, <s> and the disambiguation symbols
#0, #1, ... none (-1: not LM-scored, they keep their own graph cost); unknown words the
--unk word or an error.

from_expanded writes the search's context-expanded lattice (lattice_expansion.expand: a
state per surviving hypothesis) as Kaldi arcs: each copies its arc's word, acoustic cost
and transition ids and takes the new graph cost, -(new LM log-probability); the final
links' new costs go back into the final weights of their states, and the new final node
disappears. The states are numbered in a topological order, by time, the start state 0.
"""

import dataclasses
import heapq
import math
import re

from rwthlm_py.errors import InputError
from rwthlm_py.rescoring.htk_lattice import Lattice, Link, Node
from rwthlm_py.rescoring.kaldi_lattice import EPSILON_ID, Final
from rwthlm_py.rescoring.lattice_expansion import expand

SENTENCE_END = "</s>"
NOT_LM_SCORED = re.compile(r"<eps>|<s>|#[0-9]+")


@dataclasses.dataclass
class SearchLattice:
    lattice: Lattice  # what the search takes
    origins: list  # per link: the kaldi_lattice.Arc it copies, or the Final of its state
    kaldi: object  # the KaldiLattice

    def is_final_link(self, link_id):
        return isinstance(self.origins[link_id], Final)


def to_search_lattice(kaldi, symbols, frame_shift):
    """The SearchLattice of a KaldiLattice; `symbols` is words.txt ({id: word})."""
    if kaldi.start is None:
        raise InputError(f"the lattice of '{kaldi.key}' is empty (no states)", kaldi.path, kaldi.line)
    finals = {final.state: final for final in kaldi.finals}
    kept = _connected_states(kaldi, finals)
    arcs = [arc for arc in kaldi.arcs if arc.source in kept and arc.target in kept]
    order = _topological_order(kaldi, arcs)
    frames = _state_frames(kaldi, arcs, order)
    position = {state: k for k, state in enumerate(order)}
    states = sorted(order, key=lambda state: (frames[state], position[state]))  # the start state first
    node_of = {state: k for k, state in enumerate(states)}
    line_of = {kaldi.start: kaldi.line}
    for arc in arcs:
        line_of.setdefault(arc.target, arc.line)
    ends = [frames[state] + final.frames for state, final in finals.items() if state in kept]
    nodes = [Node(node_of[state], frames[state] * frame_shift, None, None, line_of[state]) for state in states]
    nodes.append(Node(len(states), max(ends) * frame_shift, None, None, kaldi.line))
    links, origins = [], []
    for arc in arcs:
        if arc.word not in symbols and arc.word != EPSILON_ID:
            raise InputError(f"word id {arc.word} is not in the symbol table (--kaldi-words)", kaldi.path, arc.line)
        word = symbols.get(arc.word, "<eps>")
        links.append(Link(len(links), node_of[arc.source], node_of[arc.target], word, None,
                          -arc.acoustic, -arc.graph, arc.line, None, None))
        origins.append(arc)
    for final in kaldi.finals:
        if final.state in kept:
            links.append(Link(len(links), node_of[final.state], len(states), SENTENCE_END, None, -final.acoustic,
                              -final.graph, final.line, None, None))
            origins.append(final)
    return SearchLattice(Lattice(kaldi.path, {}, math.e, nodes, links, []), origins, kaldi)


def _connected_states(kaldi, finals):
    """The states on a path from the start state to a final state."""
    forward, backward = {}, {}
    for arc in kaldi.arcs:
        forward.setdefault(arc.source, []).append(arc.target)
        backward.setdefault(arc.target, []).append(arc.source)
    reached = _reached([kaldi.start], forward)
    kept = reached & _reached(list(finals), backward)
    if kaldi.start not in kept:
        raise InputError(f"no final state can be reached from the start state {kaldi.start} of '{kaldi.key}'",
                         kaldi.path, kaldi.line)
    return kept


def _reached(starts, successors):
    reached, stack = set(starts), list(starts)
    while stack:
        for state in successors.get(stack.pop(), ()):
            if state not in reached:
                reached.add(state)
                stack.append(state)
    return reached


def _topological_order(kaldi, arcs):
    """The states in reverse depth-first postorder from the start state (iteratively: a
    lattice is deeper than Python's recursion limit); an arc back to a state on the path
    closes a cycle."""
    outgoing = {}
    for arc in arcs:
        outgoing.setdefault(arc.source, []).append(arc)
    on_path, done, postorder = {kaldi.start}, set(), []
    stack = [(kaldi.start, 0)]
    while stack:
        state, next_arc = stack[-1]
        leaving = outgoing.get(state, ())
        if next_arc == len(leaving):
            stack.pop()
            on_path.discard(state)
            done.add(state)
            postorder.append(state)
            continue
        stack[-1] = (state, next_arc + 1)
        arc = leaving[next_arc]
        if arc.target in on_path:
            raise InputError(f"the arc from state {arc.source} to state {arc.target} closes a cycle: the search "
                             "needs an acyclic lattice", kaldi.path, arc.line)
        if arc.target not in done:
            on_path.add(arc.target)
            stack.append((arc.target, 0))
    return postorder[::-1]


def _state_frames(kaldi, arcs, order):
    """Each state's frames from the start; a state reached after two different numbers
    of frames is an error (Kaldi's state times assert it)."""
    outgoing = {}
    for arc in arcs:
        outgoing.setdefault(arc.source, []).append(arc)
    frames = {kaldi.start: 0}
    for state in order:
        for arc in outgoing.get(state, ()):
            reached = frames[state] + arc.frames
            earlier = frames.setdefault(arc.target, reached)
            if earlier != reached:
                raise InputError(f"state {arc.target} is reached after {reached} frames over this arc and after "
                                 f"{earlier} over another: a state's time must be one", kaldi.path, arc.line)
    return frames


def network_words(search_lattice, vocab, unk, map_unk):
    """The network's word id of every link (-1: not LM-scored); `unk`: --unk."""
    words = []
    for link, origin in zip(search_lattice.lattice.links, search_lattice.origins, strict=True):
        if isinstance(origin, Final) or link.word == SENTENCE_END:
            words.append(vocab.sb)
        elif origin.word == EPSILON_ID or NOT_LM_SCORED.fullmatch(link.word):
            words.append(-1)
        elif link.word in vocab.index:
            words.append(vocab.index[link.word])
        elif unk:
            words.append(vocab.unk)
        else:
            raise InputError(f"'{link.word}' is not in the network's vocabulary (give --unk to map unknown words "
                             f"to {map_unk})", search_lattice.lattice.path, origin.line)
    return words


def from_expanded(search_lattice, result, topology):
    """The context-expanded lattice of a search as Kaldi arcs and final weights:
    ([(source, target, word, graph, acoustic, transitions)], {state: (graph, acoustic,
    transitions)}), states numbered from the start state 0; and the expansion (times,
    links) it comes from, for the n-best lists."""
    times, links = expand(result, topology)
    final_copies = {link.end for link in links if link.link is not None and search_lattice.is_final_link(link.link)}
    arcs, finals = [], {}
    for link in links:
        if link.link is None:
            continue  # into the expansion's own final node
        origin, graph = search_lattice.origins[link.link], 0.0 - link.lm_log_prob
        if isinstance(origin, Final):
            finals[link.start] = (graph, origin.acoustic, origin.transitions)
        else:
            arcs.append((link.start, link.end, origin.word, graph, origin.acoustic, origin.transitions))
    kept = [node for node in range(len(times) - 1) if node not in final_copies]
    number = _numbering(kept, times, arcs)
    renumbered = [(number[source], number[target], *rest) for source, target, *rest in arcs]
    return renumbered, {number[state]: weight for state, weight in finals.items()}, (times, links)


def _numbering(nodes, times, arcs):
    """{node: state number}: a topological order (Kahn's), of the earliest time first and
    then the lowest node; node 0, the root, is the only node without arcs into it."""
    incoming = dict.fromkeys(nodes, 0)
    outgoing = {}
    for source, target, *_ in arcs:
        incoming[target] += 1
        outgoing.setdefault(source, []).append(target)
    ready = [(times[node], node) for node in nodes if incoming[node] == 0]
    heapq.heapify(ready)
    number = {}
    while ready:
        _, node = heapq.heappop(ready)
        number[node] = len(number)
        for target in outgoing.get(node, ()):
            incoming[target] -= 1
            if incoming[target] == 0:
                heapq.heappush(ready, (times[target], target))
    return number
