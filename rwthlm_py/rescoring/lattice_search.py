"""rwthlm's lattice rescoring search (§7.3-7.6), with the network evaluated in batches.

Everything is a cost (a negated natural log). A hypothesis at node u carries its score
(its accumulated cost plus the look-ahead LA(u)), the network state before its last
LM-scored word, that word (the network lags one word: the first hypothesis has the zero
state, or the previous lattice's with --dependent, and the word <sb>), its last dp_order
LM-scored words, and its traceback entry. Extending it over link e = (u -> v, word w):

    score' = score + am(e) - LA(u) + LA(v) + lm_scale * lmcost(e)
    am(e) = -acoustic_scale * a(e) - word_penalty [e LM-scored]      (scores.link_cost without l)
    lmcost(e) = 0 if the lattice's LM score l(e) is exactly 0 (no network step, the state
                and the last word stay: silence, noise and epsilon links)
              = -ln((1 - lambda) e^l(e) + lambda p_nn(w | history))   (log_probs.interpolate_linear)

p_nn of <unk> is divided by num_oovs + 1 once (rwthlm divides it twice in lattices).

Nodes are visited in the topology's order. Before the first node of a time frame (other
than the first frame) is expanded, the frame is pruned node by node: the beam keeps the
hypotheses within `beam` of the best score that entered the frame (0: no beam; a node's
best always stays), recombination keeps the best of those that agree in their last
dp_order LM-scored words (compared as words, never as a hash as in rwthlm), and at most
`limit` remain (0: no limit). Then every hypothesis of the frame's nodes is extended over
every outgoing link. The network steps this needs are collected over the whole frame and
run `batch_size` histories at a time (None: all at once; 1: one at a time, as rwthlm):
a hypothesis takes one step, whatever the number of its LM-scored links, and
hypotheses that share a state and a last word (reached over links without LM score) share
it. A link between two nodes of the same frame makes its end node wait until the steps
collected so far have run.

The look-ahead LA (§7.4) is computed backwards over the lattice's own scores with
s = look_ahead_lm_scale * (-l) + am + LA(to) per link: `tropical` takes min s, `log` the
soft minimum -scale ln sum e^(-s / scale), `none` 0 (rwthlm's code takes a true 0 for
"not set yet" in both; here a 0 is a value).

Traceback (§7.6): entries ordered by (their end node's position, descending; score,
ascending); walking them and their predecessors, each link gets, the first time it is
reached, the LM log-probability of that hypothesis (kept with the entry, where rwthlm
recovers it from score differences). The first chain is the best path.
"""

import collections
import dataclasses
import math

import numpy

from rwthlm_py.log_probs import interpolate_linear
from rwthlm_py.model.network import concatenate_states, select_state
from rwthlm_py.rescoring.scores import link_cost
from rwthlm_py.runtime import threads


@dataclasses.dataclass
class SearchOptions:
    lam: float  # the network's weight
    beam: float = 0.0  # --pruning-threshold (0: infinite)
    limit: int = 0  # --pruning-limit per node (0: none)
    dp_order: int = 3
    lm_scale: float = 1.0
    look_ahead: str = "none"
    look_ahead_lm_scale: float = None  # default: lm_scale
    acoustic_scale: float = 1.0
    word_penalty: float = 0.0
    unk_penalty: float = 0.0  # ln(num_oovs + 1)
    batch_size: int = None


# A hypothesis; its state is (batch, column), column `column` of the network state
# `states[batch]` of its search, or None for the initial state. Tuples, as a frame holds
# thousands of them.
Hypothesis = collections.namedtuple("Hypothesis", "score entry state last_word history")


@dataclasses.dataclass
class Traceback:
    link: list  # the link that made each entry (-1: the root)
    predecessor: list
    score: list
    node: list  # the node each entry ends in
    lm_log_prob: list  # the LM log-probability its link got (0 without an LM score)


@dataclasses.dataclass
class SearchResult:
    cost: float  # of the best path
    best_links: list  # link ids of the best path, in order
    link_lm: list  # per link: the new LM log-probability (None: no hypothesis reached it)
    final_state: object  # the state of the best final hypothesis (before its last word)
    final_word: int  # its last LM-scored word (the next lattice's first input, --dependent)
    traceback: Traceback
    pruning_lines: list  # rwthlm's line per pruned frame
    network_steps: int  # histories stepped by the network


def look_ahead_scores(lattice, topology, semiring, lm_scale, acoustic_scale=1.0):
    """LA of every node (§7.4), from the lattice's own scores."""
    scores = numpy.zeros(len(lattice.nodes))
    if semiring == "none":
        return scores
    for node in reversed(topology.order):
        links = topology.outgoing[node]
        if not links:
            continue
        outgoing = [lattice.links[k] for k in links]
        # the lattice's own scores without a word penalty, as in rwthlm (which has none)
        costs = numpy.array([link_cost(link.acoustic, link.lm, link.lm != 0, acoustic_scale, lm_scale)
                             + scores[link.end] for link in outgoing])
        if semiring == "tropical":
            scores[node] = costs.min()
        else:
            lowest = costs.min()
            scores[node] = lowest - lm_scale * math.log(numpy.exp(-(costs - lowest) / lm_scale).sum())
    return scores


def search(network, lattice, topology, link_words, options, initial_state=None):
    """The best path and the new per-link LM scores of one lattice (a SearchResult).

    link_words[k] is the network's word id of link k (unused where the link's LM score is
    0). initial_state is the state before the first word (None: the zero state).
    """
    return _Search(network, lattice, topology, link_words, options).run(initial_state)


class _Search:
    def __init__(self, network, lattice, topology, link_words, options):
        self.network, self.lattice, self.topology = network, lattice, topology
        self.link_words, self.options = link_words, options
        scale = options.lm_scale if options.look_ahead_lm_scale is None else options.look_ahead_lm_scale
        self.look_ahead = look_ahead_scores(lattice, topology, options.look_ahead, scale, options.acoustic_scale)
        # each link's cost but for its LM score, with the look-ahead moved from start to end
        self.costs_but_lm = [link_cost(link.acoustic, None, link.lm != 0, options.acoustic_scale,
                                    word_penalty=options.word_penalty)
                          - self.look_ahead[link.start] + self.look_ahead[link.end] for link in lattice.links]
        self.centiseconds = topology.centiseconds.tolist()
        self.hypotheses = [[] for _ in lattice.nodes]
        self.best_in_frame = {}
        self.traceback = Traceback([-1], [-1], [self.look_ahead[0]], [0], [0.0])
        self.states = []  # network state tuples of the steps run so far
        self.pruning_lines = []
        self.network_steps = 0

    def run(self, initial_state):
        sb = self.network.vocab.sb
        root_state = None
        if initial_state is not None:
            self.states.append(initial_state)
            root_state = (0, 0)
        self.hypotheses[0] = [Hypothesis(self.look_ahead[0], 0, root_state, sb, (sb,) * self.options.dp_order)]
        for index, nodes in enumerate(self._frames()):
            if index > 0:
                self._prune(nodes)
            self._expand_frame(nodes)
        return self._result()

    def _frames(self):
        """The node order cut into runs of equal time; the final node is never expanded."""
        frames, times = [], self.topology.centiseconds
        for node in self.topology.order:
            if frames and times[frames[-1][0]] == times[node]:
                frames[-1].append(node)
            else:
                frames.append([node])
        return frames

    # -- pruning ---------------------------------------------------------------------------

    def _prune(self, nodes):
        options = self.options
        time = self.topology.centiseconds[nodes[0]]
        best = self.best_in_frame.get(time, math.inf)
        before = [len(self.hypotheses[node]) for node in nodes]
        for node in nodes:
            hypotheses = sorted(self.hypotheses[node], key=lambda h: h.score)
            if options.beam > 0 and hypotheses:
                hypotheses = hypotheses[:1] + [h for h in hypotheses[1:] if h.score <= best + options.beam]
            kept, seen = [], set()
            for hypothesis in hypotheses:
                if hypothesis.history not in seen:
                    seen.add(hypothesis.history)
                    kept.append(hypothesis)
            if options.limit > 0:
                kept = kept[:options.limit]
            self.hypotheses[node] = kept
        after = [len(self.hypotheses[node]) for node in nodes]
        self.pruning_lines.append(
            f"t={time} #hyps/#nodes: {sum(before)}/{len(nodes)} (min: {min(before)}, max: {max(before)}) -> "
            f"{sum(after)} (min: {min(after)}, max: {max(after)})")

    # -- expansion -------------------------------------------------------------------------

    def _expand_frame(self, nodes):
        """Extends the hypotheses of the frame's nodes, in order. The extensions are
        collected with the network steps they need and applied in the same order once
        the steps have run: at the end of the frame, or before a node they may reach."""
        final, links = self.topology.final, self.lattice.links
        pending, reached = [], set()
        for node in nodes:
            if node == final:
                continue
            if node in reached:
                self._apply(pending)
                pending, reached = [], set()
            outgoing = [links[link_id] for link_id in self.topology.outgoing[node]]
            reached.update(link.end for link in outgoing)
            pending += [(hypothesis, link) for hypothesis in self.hypotheses[node] for link in outgoing]
        self._apply(pending)

    def _apply(self, pending):
        """Runs the network steps of the pending extensions, then makes them in order:
        each a new hypothesis at the link's end and a traceback entry (a hot loop, hence
        the local names)."""
        keys, column_of, requests, lattice_lm = [], {}, [], []
        for hypothesis, link in pending:
            if link.lm == 0:
                continue
            key = (hypothesis.state, hypothesis.last_word)
            if key not in column_of:
                column_of[key] = len(keys)
                keys.append(key)
            requests.append((column_of[key], self.link_words[link.id]))
            lattice_lm.append(link.lm)
        lm_log_probs, new_states = [], []
        if requests:
            with threads.for_rescoring():
                nn_log_probs, new_states = self._step(keys, requests)
            lm_log_probs = interpolate_linear(nn_log_probs, lattice_lm, self.options.lam).tolist()
        stepped = iter(zip(lm_log_probs, requests, strict=True))
        traceback, hypotheses, best = self.traceback, self.hypotheses, self.best_in_frame
        costs_but_lm, centiseconds, lm_scale = self.costs_but_lm, self.centiseconds, self.options.lm_scale
        keep_history = self.options.dp_order > 0
        for hypothesis, link in pending:
            if link.lm == 0:
                lm_log_prob, state, word, history = 0.0, hypothesis.state, hypothesis.last_word, hypothesis.history
            else:
                lm_log_prob, (column, word) = next(stepped)
                state = new_states[column]
                history = (hypothesis.history + (word,))[1:] if keep_history else ()
            score = hypothesis.score + costs_but_lm[link.id] - lm_scale * lm_log_prob
            traceback.link.append(link.id)
            traceback.predecessor.append(hypothesis.entry)
            traceback.score.append(score)
            traceback.node.append(link.end)
            traceback.lm_log_prob.append(lm_log_prob)
            hypotheses[link.end].append(Hypothesis(score, len(traceback.link) - 1, state, word, history))
            time = centiseconds[link.end]
            if score < best.get(time, math.inf):
                best[time] = score

    def _step(self, keys, requests):
        """ln p_nn of every request (column, word) and a (batch, column) state per column, the columns
        run `batch_size` at a time; columns of the initial (zero) state run apart."""
        log_probs = numpy.empty(len(requests))
        new_states = [None] * len(keys)
        requests_of = [[] for _ in keys]
        for index, (column, _) in enumerate(requests):
            requests_of[column].append(index)
        groups = [[c for c, (state, _) in enumerate(keys) if state is None],
                  [c for c, (state, _) in enumerate(keys) if state is not None]]
        size = self.options.batch_size or len(keys)
        for group in groups:
            for start in range(0, len(group), size):
                columns = group[start:start + size]
                indices = [index for column in columns for index in requests_of[column]]
                local = {column: k for k, column in enumerate(columns)}
                state = self._gather([keys[column][0] for column in columns])
                logp, new_state = self.network.next_word_log_probs(
                    [keys[column][1] for column in columns], state,
                    [local[requests[index][0]] for index in indices], [requests[index][1] for index in indices],
                    self.options.unk_penalty)
                log_probs[indices] = self.network.backend.to_numpy(logp)
                self.states.append(new_state)
                for k, column in enumerate(columns):
                    new_states[column] = (len(self.states) - 1, k)
                self.network_steps += len(columns)
        return log_probs, new_states

    def _gather(self, refs):
        """The network state of the columns `refs` (all (batch, column) pairs, or all None)."""
        if refs[0] is None:
            return None
        by_batch = {}
        for position, (batch, column) in enumerate(refs):
            by_batch.setdefault(batch, []).append((position, column))
        parts, order = [], []
        for batch, members in by_batch.items():
            parts.append(select_state(self.states[batch], numpy.array([column for _, column in members])))
            order += [position for position, _ in members]
        state = concatenate_states(parts)
        if order != sorted(order):
            state = select_state(state, numpy.argsort(order))
        return state

    # -- traceback -------------------------------------------------------------------------

    def _result(self):
        traceback, lattice = self.traceback, self.lattice
        position = self.topology.position
        # by end node position descending, then score ascending (lexsort: last key first)
        entries = numpy.lexsort((numpy.array(traceback.score), -position[numpy.array(traceback.node)])).tolist()
        final, best = self.topology.final, entries[0]  # the final node is last in the order
        if traceback.node[best] != final:
            raise RuntimeError("no hypothesis reached the final node")  # every node reaches it
        link_lm = [None] * len(lattice.links)
        best_links = []
        for rank, entry in enumerate(entries):
            chain = []
            while entry > 0 and link_lm[traceback.link[entry]] is None:
                link_id = traceback.link[entry]
                link_lm[link_id] = traceback.lm_log_prob[entry]
                chain.append(link_id)
                entry = traceback.predecessor[entry]
            if rank == 0:
                best_links = chain[::-1]
        best_hypothesis = next(h for h in self.hypotheses[final] if h.entry == best)
        final_state = None
        if best_hypothesis.state is not None:
            ref = best_hypothesis.state
            final_state = select_state(self.states[ref[0]], numpy.array([ref[1]]))
        return SearchResult(traceback.score[best], best_links, link_lm, final_state, best_hypothesis.last_word,
                            traceback, self.pruning_lines, self.network_steps)
