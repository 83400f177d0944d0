"""rwthlm's lattice rescoring search (§7.3-7.6), with the network evaluated in batches.

Everything is a cost (a negated natural log). A hypothesis at node u carries its score
(its accumulated cost plus the look-ahead LA(u)), the network state before its last
LM-scored word, that word (the network lags one word: the first hypothesis has the zero
state, or the previous lattice's with --dependent, and the word <sb>), its last dp_order
LM-scored words, and its traceback entry. Extending it over link e = (u -> v, word w):

    score' = score + am(e) - LA(u) + LA(v) + lm_scale * lmcost(e)
    am(e) = -acoustic_scale * a(e) - word_penalty [e LM-scored]      (scores.link_cost without l)
    lmcost(e) = -l(e) if e is not LM-scored (no network step, the state and the last word
                stay: silence, noise and epsilon links, whose word id is -1; in HTK
                lattices these are the links with l(e) = 0)
              = -ln((1 - lambda) e^l(e) + lambda p_nn(w | history))   combination "linear":
                                                     rwthlm's (log_probs.interpolate_linear)
              = -l(e) - lambda ln p_nn(w | history)  combination "loglinear": Kaldi's
                                                     lattice-lmrescore-kaldi-rnnlm --lm-scale

p_nn of <unk> is divided by num_oovs + 1 once (rwthlm divides it twice in lattices).

Nodes are visited in the topology's order. Before the first node of a time frame (other
than the first frame) is expanded, the frame is pruned node by node: the beam keeps the
hypotheses within `beam` of the best score that entered the frame (0: no beam; a node's
best always stays), recombination keeps the best of those that agree in their last
dp_order LM-scored words (compared as words, never as a hash as in rwthlm), and at most
`limit` remain (0: no limit). Then every hypothesis of the frame's nodes is extended over
every outgoing link. The network steps this needs are collected over the whole frame: a
hypothesis takes one step, whatever the number of its LM-scored links, and hypotheses that
share a state and a last word (reached over links without LM score) share it. A link
between two nodes of the same frame makes its end node wait until the steps collected so
far have run.

Several lattices are searched side by side (search_together): each search is a generator
that stops whenever it needs network steps (a StepRequest), and the steps that all of them
wait for run together, `batch_size` histories a call (None: all at once; 1: one at a time,
as rwthlm), through a scorer (model/scoring_step.py). A search's result does not depend on
the other searches. A hypothesis's network state is a row of its search's StateStore.

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

from rwthlm_py.layers.functional import get_xp
from rwthlm_py.log_probs import interpolate_linear
from rwthlm_py.model.network import concatenate_states, select_state
from rwthlm_py.model.scoring_step import scoring_step
from rwthlm_py.rescoring.scores import link_cost


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
    combination: str = "linear"  # of the lattice's l and the network's ln p: "linear" or "loglinear"


# A hypothesis; its state is a row of its search's StateStore, or None for the zero state.
# Tuples, as a frame holds thousands of them.
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


def search(network, lattice, topology, link_words, options, initial_state=None, scorer=None):
    """The best path and the new per-link LM scores of one lattice (a SearchResult).

    link_words[k] is the network's word id of link k, -1 where the link is not LM-scored
    (lattice_command.network_words: in HTK lattices, where its LM score is 0).
    initial_state is the state before the first word (None: the zero state). `scorer`
    steps the network (scoring_step.scoring_step(network) if None).
    """
    scorer = scorer if scorer is not None else scoring_step(network)
    return search_together(scorer, [Search(network, lattice, topology, link_words, options, initial_state)],
                           options.batch_size)[0]


def search_together(scorer, searches, batch_size):
    """Runs the Searches side by side, their network steps shared: whenever every search
    waits for the steps of a frame, all those steps run together, `batch_size`
    histories a call (None: all at once). Returns their SearchResults, in order."""
    results = [None] * len(searches)
    waiting = {}
    for index, running in enumerate(searches):
        _advance(running, None, index, waiting, results)
    while waiting:
        requests = list(waiting.values())
        answers = step_together(scorer, requests, batch_size)
        waiting = {}
        for request, answer in zip(requests, answers, strict=True):
            _advance(request.search, answer, request.index, waiting, results)
    return results


def _advance(running, answer, index, waiting, results):
    """Sends a search its network steps; records its next request, or its result."""
    try:
        request = running.steps.send(answer)
    except StopIteration as finished:
        results[index] = finished.value
    else:
        request.index = index
        waiting[index] = request


@dataclasses.dataclass
class StepRequest:
    """The network steps a search waits for: a history per key (its state reference and
    last word, see Hypothesis) and (key index, target word) pairs to score."""

    search: "Search"
    keys: list
    requests: list
    index: int = None


def step_together(scorer, requests, batch_size):
    """The StepRequests' network steps in shared calls, `batch_size` histories each (None:
    all at once); histories of the zero state run apart from the others (a call's state is
    all given or all zero). Returns per request (ln p_nn of each pair, the StateStore row
    of each key's new state)."""
    answers = [(numpy.empty(len(request.requests)), [None] * len(request.keys)) for request in requests]
    targets_of = [_targets_by_key(request) for request in requests]
    zero = [(r, k) for r, request in enumerate(requests) for k, (state, _) in enumerate(request.keys) if state is None]
    given = [(r, k) for r, request in enumerate(requests) for k, (state, _) in enumerate(request.keys)
             if state is not None]
    unk_penalty = requests[0].search.options.unk_penalty
    for group in (zero, given):
        size = batch_size or len(group) or 1
        for start in range(0, len(group), size):
            _run_call(scorer, requests, group[start:start + size], targets_of, answers, unk_penalty)
    return answers


def _targets_by_key(request):
    """Per key of the request, the indices of its (key, word) pairs."""
    by_key = [[] for _ in request.keys]
    for index, (key, _) in enumerate(request.requests):
        by_key[key].append(index)
    return by_key


def _run_call(scorer, requests, members, targets_of, answers, unk_penalty):
    """One network call for the histories `members` ((request, key) pairs, grouped by
    request as step_together lists them); fills in their answers."""
    inputs, columns, words, owners, parts = [], [], [], [], []
    for column, (r, k) in enumerate(members):
        request = requests[r]
        inputs.append(request.keys[k][1])
        for index in targets_of[r][k]:
            columns.append(column)
            words.append(request.requests[index][1])
            owners.append((r, index))
    by_request = {}
    for column, (r, k) in enumerate(members):
        by_request.setdefault(r, []).append((column, k))
    if requests[members[0][0]].keys[members[0][1]][0] is not None:
        parts = [requests[r].search.states.gather([requests[r].keys[k][0] for _, k in keyed])
                 for r, keyed in by_request.items()]
    state = concatenate_states(parts) if parts else None
    log_probs, new_state = scorer.next_word_log_probs(inputs, state, columns, words, unk_penalty)
    log_probs = requests[0].search.network.backend.to_numpy(log_probs).tolist()
    for (r, index), value in zip(owners, log_probs, strict=True):
        answers[r][0][index] = value
    for r, keyed in by_request.items():
        search = requests[r].search
        first_column = keyed[0][0]  # a request's columns are consecutive
        first_row = search.states.add(select_state(new_state, slice(first_column, first_column + len(keyed))))
        search.network_steps += len(keyed)
        for column, k in keyed:
            answers[r][1][k] = first_row + column - first_column


class StateStore:
    """The network states of a search's histories, a row each: a state's reference is its
    row, and the states of any rows are gathered with one index per array. States are
    tuples as the network gives them (arrays [B, ...], tuples of them, or None), all of
    the same structure."""

    def __init__(self):
        self.structure, self.arrays, self.size = None, [], 0

    def add(self, state):
        """Stores the B histories of `state`; returns the first one's row (the rest follow)."""
        parts = []
        structure = _flatten(state, parts)
        if self.structure is None:
            self.structure = structure
            self.arrays = [get_xp(part).empty((max(64, 2 * len(part)),) + part.shape[1:], dtype=part.dtype)
                           for part in parts]
        rows = len(parts[0])
        if self.size + rows > len(self.arrays[0]):
            self.arrays = [_grown(array, self.size, self.size + rows) for array in self.arrays]
        for array, part in zip(self.arrays, parts, strict=True):
            array[self.size:self.size + rows] = part
        self.size += rows
        return self.size - rows

    def gather(self, rows):
        """The state of the histories `rows` (a list of row numbers), in that order."""
        index = numpy.asarray(rows, dtype=numpy.int64)
        parts = iter([array[index] for array in self.arrays])
        return _unflatten(self.structure, parts)


def _flatten(state, parts):
    """The structure of a state (its arrays replaced by True), its arrays appended to `parts`."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(_flatten(part, parts) for part in state)
    parts.append(state)
    return True


def _unflatten(structure, parts):
    if structure is None:
        return None
    if isinstance(structure, tuple):
        return tuple(_unflatten(part, parts) for part in structure)
    return next(parts)


def _grown(array, used, needed):
    """`array` with room for at least `needed` rows (doubling), its first `used` rows kept."""
    grown = get_xp(array).empty((max(needed, 2 * len(array)),) + array.shape[1:], dtype=array.dtype)
    grown[:used] = array[:used]
    return grown


class Search:
    """One lattice's search, run by search_together: `steps` is a generator that yields a
    StepRequest whenever the search needs network steps, is sent back their answer
    (step_together), and returns the SearchResult."""

    def __init__(self, network, lattice, topology, link_words, options, initial_state=None):
        self.network, self.lattice, self.topology = network, lattice, topology
        self.link_words, self.options = link_words, options
        scale = options.lm_scale if options.look_ahead_lm_scale is None else options.look_ahead_lm_scale
        self.look_ahead = look_ahead_scores(lattice, topology, options.look_ahead, scale, options.acoustic_scale)
        # each link's cost but for its LM score, with the look-ahead moved from start to end
        self.costs_but_lm = [link_cost(link.acoustic, None, link_words[link.id] >= 0, options.acoustic_scale,
                                       word_penalty=options.word_penalty)
                             - self.look_ahead[link.start] + self.look_ahead[link.end] for link in lattice.links]
        self.centiseconds = topology.centiseconds.tolist()
        self.hypotheses = [[] for _ in lattice.nodes]
        self.best_in_frame = {}
        self.traceback = Traceback([-1], [-1], [self.look_ahead[0]], [0], [0.0])
        self.states = StateStore()  # the network states of the histories stepped so far
        self.pruning_lines = []
        self.network_steps = 0
        self.steps = self._run(initial_state)

    def _run(self, initial_state):
        sb = self.network.vocab.sb
        root_state = None if initial_state is None else self.states.add(initial_state)
        self.hypotheses[0] = [Hypothesis(self.look_ahead[0], 0, root_state, sb, (sb,) * self.options.dp_order)]
        for index, nodes in enumerate(self._frames()):
            if index > 0:
                self._prune(nodes)
            yield from self._expand_frame(nodes)
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
                yield from self._apply(pending)
                pending, reached = [], set()
            outgoing = [links[link_id] for link_id in self.topology.outgoing[node]]
            reached.update(link.end for link in outgoing)
            pending += [(hypothesis, link) for hypothesis in self.hypotheses[node] for link in outgoing]
        yield from self._apply(pending)

    def _apply(self, pending):
        """Runs the network steps of the pending extensions, then makes them in order:
        each a new hypothesis at the link's end and a traceback entry (a hot loop, hence
        the local names)."""
        keys, column_of, requests, lattice_lm = [], {}, [], []
        for hypothesis, link in pending:
            if self.link_words[link.id] < 0:
                continue
            key = (hypothesis.state, hypothesis.last_word)
            if key not in column_of:
                column_of[key] = len(keys)
                keys.append(key)
            requests.append((column_of[key], self.link_words[link.id]))
            lattice_lm.append(link.lm)
        lm_log_probs, new_states = [], []
        if requests:
            nn_log_probs, new_states = yield StepRequest(self, keys, requests)
            lm_log_probs = self._combine(nn_log_probs, lattice_lm).tolist()
        stepped = iter(zip(lm_log_probs, requests, strict=True))
        traceback, hypotheses, best = self.traceback, self.hypotheses, self.best_in_frame
        costs_but_lm, centiseconds, lm_scale = self.costs_but_lm, self.centiseconds, self.options.lm_scale
        keep_history, link_words = self.options.dp_order > 0, self.link_words
        for hypothesis, link in pending:
            if link_words[link.id] < 0:  # + 0.0: the lattice's -0 is written back as 0
                lm_log_prob, state, word, history = link.lm + 0.0, hypothesis.state, hypothesis.last_word, \
                    hypothesis.history
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

    def _combine(self, nn_log_probs, lattice_lm):
        """The new LM log-probabilities of LM-scored links from the network's and the lattice's."""
        if self.options.combination == "loglinear":
            return numpy.asarray(lattice_lm) + self.options.lam * nn_log_probs
        return interpolate_linear(nn_log_probs, lattice_lm, self.options.lam)

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
            final_state = self.states.gather([best_hypothesis.state])
        return SearchResult(traceback.score[best], best_links, link_lm, final_state, best_hypothesis.last_word,
                            traceback, self.pruning_lines, self.network_steps)
