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

import dataclasses
import math

import numpy

from rwthlm_py.log_probs import interpolate_linear
from rwthlm_py.model.scoring_step import scoring_step
from rwthlm_py.rescoring.lattice_steps import StateStore, StepRequest, grown, step_together
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
    combination: str = "linear"  # of the lattice's l and the network's ln p: "linear" or "loglinear"


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
    with threads.for_rescoring():
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


class Entries:
    """The traceback entries of a search, which are also its hypotheses, as growing arrays:
    per entry its score, node, link (-1: the root), predecessor, the LM log-probability its
    link got, its network state's StateStore row (-1: the zero state), its last LM-scored
    word and its last dp_order LM-scored words (`history`, oldest first)."""

    FIELDS = {"score": numpy.float64, "node": numpy.int64, "link": numpy.int64, "predecessor": numpy.int64,
              "lm_log_prob": numpy.float64, "state": numpy.int64, "word": numpy.int64}

    def __init__(self, dp_order):
        self.size = 0
        self.arrays = {name: numpy.empty(1024, dtype=dtype) for name, dtype in self.FIELDS.items()}
        self.arrays["history"] = numpy.empty((1024, dp_order), dtype=numpy.int64)

    def __getitem__(self, name):
        return self.arrays[name][:self.size]

    def add(self, **values):
        """Appends entries (equal-length arrays per field); returns their ids."""
        count = len(values["score"])
        if self.size + count > len(self.arrays["score"]):
            self.arrays = {name: grown(array, self.size, self.size + count) for name, array in self.arrays.items()}
        for name, value in values.items():
            self.arrays[name][self.size:self.size + count] = value
        self.size += count
        return numpy.arange(self.size - count, self.size)


class Search:
    """One lattice's search, run by search_together: `steps` is a generator that yields a
    StepRequest whenever the search needs network steps, is sent back their answer
    (step_together), and returns the SearchResult. Hypotheses live in arrays (Entries); a
    frame is pruned and expanded with array operations."""

    def __init__(self, network, lattice, topology, link_words, options, initial_state=None):
        self.network, self.lattice, self.topology, self.options = network, lattice, topology, options
        scale = options.lm_scale if options.look_ahead_lm_scale is None else options.look_ahead_lm_scale
        self.look_ahead = look_ahead_scores(lattice, topology, options.look_ahead, scale, options.acoustic_scale)
        self.link_words = numpy.asarray(link_words, dtype=numpy.int64)
        self.link_start = numpy.array([link.start for link in lattice.links], dtype=numpy.int64)
        self.link_end = numpy.array([link.end for link in lattice.links], dtype=numpy.int64)
        self.link_lm = numpy.array([link.lm for link in lattice.links], dtype=numpy.float64) + 0.0  # -0 -> 0
        acoustic = numpy.array([link.acoustic for link in lattice.links], dtype=numpy.float64)
        # each link's cost but for its LM score, with the look-ahead moved from start to end
        self.costs_but_lm = (-options.acoustic_scale * acoustic - options.word_penalty * (self.link_words >= 0)
                             - self.look_ahead[self.link_start] + self.look_ahead[self.link_end])
        self.out_links = numpy.array([k for node in range(len(lattice.nodes)) for k in topology.outgoing[node]],
                                     dtype=numpy.int64)
        self.out_count = numpy.array([len(links) for links in topology.outgoing], dtype=numpy.int64)
        self.out_start = numpy.cumsum(self.out_count) - self.out_count
        self.frames = self._frames()
        self.frame_of = numpy.empty(len(lattice.nodes), dtype=numpy.int64)
        for index, nodes in enumerate(self.frames):
            self.frame_of[nodes] = index
        inner = self.frame_of[self.link_start] == self.frame_of[self.link_end]
        self.frames_with_inner_links = set(self.frame_of[self.link_start[inner]].tolist())
        self.entries = Entries(options.dp_order)
        # the entries made that no frame has taken yet (_take_arrived), in the order made, and their frames
        self.pending, self.pending_frames = numpy.empty(0, dtype=numpy.int64), numpy.empty(0, dtype=numpy.int64)
        self.made = []  # (ids, frames) of entries made since the last _take_arrived
        self.states = StateStore(len(lattice.nodes))  # about the histories a search steps: one a node
        self.pruning_lines = []
        self.network_steps = 0
        self.steps = self._run(initial_state)

    def _frames(self):
        """The node order cut into runs of equal time, as arrays; the final node is never expanded."""
        order, times = numpy.asarray(self.topology.order, dtype=numpy.int64), self.topology.centiseconds
        cuts = numpy.flatnonzero(numpy.diff(times[order])) + 1
        return numpy.split(order, cuts)

    def _run(self, initial_state):
        sb, dp_order = self.network.vocab.sb, self.options.dp_order
        root_state = -1 if initial_state is None else self.states.add(initial_state)
        root = self.entries.add(score=[self.look_ahead[0]], node=[0], link=[-1], predecessor=[-1], lm_log_prob=[0.0],
                                state=[root_state], word=[sb], history=numpy.full((1, dp_order), sb))
        place = self.place = numpy.empty(len(self.lattice.nodes), dtype=numpy.int64)  # a node's place in its frame
        for index, nodes in enumerate(self.frames):
            place[nodes] = numpy.arange(len(nodes))
            kept = self._prune(index, nodes, place) if index > 0 else root
            yield from self._expand_frame(index, nodes, place, kept)
        return self._result()

    # -- pruning ---------------------------------------------------------------------------

    def _prune(self, index, nodes, place):
        """The entries of the frame's nodes that survive its pruning, grouped by node in the
        frame's order, each node's best first (equal scores in the order they were made);
        adds the frame's pruning line."""
        options, entries = self.options, self.entries
        ids = self._take_arrived(index)  # in the order made
        rank = place[entries["node"][ids]]
        scores = entries["score"][ids]
        order = numpy.lexsort((scores, rank))  # stable: equal scores in the order made
        ids, scores, rank = ids[order], scores[order], rank[order]
        before = numpy.bincount(rank, minlength=len(nodes))
        if options.beam > 0 and len(ids):
            keep = _firsts_of_runs(rank) | (scores <= scores.min() + options.beam)
            ids, rank = ids[keep], rank[keep]
        firsts = _first_of_each(rank, entries["history"][ids])  # recombination: the best of a node and history
        ids, rank = ids[firsts], rank[firsts]
        if options.limit > 0:
            starts = numpy.flatnonzero(_firsts_of_runs(rank))
            within = numpy.arange(len(ids)) - numpy.repeat(starts, numpy.diff(numpy.append(starts, len(ids))))
            ids, rank = ids[within < options.limit], rank[within < options.limit]
        before, after = before.tolist(), numpy.bincount(rank, minlength=len(nodes)).tolist()
        time = self.topology.centiseconds[nodes[0]]
        self.pruning_lines.append(
            f"t={time} #hyps/#nodes: {sum(before)}/{len(nodes)} (min: {min(before)}, max: {max(before)}) -> "
            f"{sum(after)} (min: {min(after)}, max: {max(after)})")
        return ids

    def _take_arrived(self, index, first=0, last=None):
        """The entries made so far that reached the nodes of frame `index` at places first
        to last - 1 (all: last None), in the order made; they are taken out of the pending
        ones, and so are those of frames before `index` (none are left)."""
        if self.made:
            self.pending = numpy.concatenate([self.pending] + [ids for ids, _ in self.made])
            self.pending_frames = numpy.concatenate([self.pending_frames] + [frames for _, frames in self.made])
            self.made = []
        frames = self.pending_frames
        taken = frames == index
        if last is not None:
            rank = self.place[self.entries["node"][self.pending]]
            taken &= (rank >= first) & (rank < last)
        ids = self.pending[taken]
        left = ~taken & (frames >= index)
        self.pending, self.pending_frames = self.pending[left], frames[left]
        return ids

    # -- expansion -------------------------------------------------------------------------

    def _expand_frame(self, index, nodes, place, kept):
        """Extends the hypotheses of the frame's nodes over their outgoing links, node by
        node in the frame's order and each node's hypotheses in order: the kept ones, then
        those that reached it from an earlier node of the same frame. A node that a link
        from an earlier node of its segment reaches starts a new segment, which waits for
        the network steps of the one before."""
        if index not in self.frames_with_inner_links:  # one segment, the whole frame
            yield from self._extend(kept)
            return
        kept_rank = place[self.entries["node"][kept]]
        for first, last in self._segments(index, nodes, place):
            new = self._take_arrived(index, first, last)  # from earlier segments of this frame
            ids = numpy.concatenate([kept[(kept_rank >= first) & (kept_rank < last)], new])
            if len(new):  # by node; within a node the kept ones first, each part in its order
                ids = ids[numpy.argsort(place[self.entries["node"][ids]], kind="stable")]
            yield from self._extend(ids)

    def _segments(self, index, nodes, place):
        """The frame cut into (first, last + 1) runs of node places, before every node that a
        link from an earlier node of the same run reaches."""
        links = self.out_links[_ranges(self.out_start[nodes], self.out_count[nodes])]
        inside = links[self.frame_of[self.link_end[links]] == index]
        if not len(inside):
            return [(0, len(nodes))]
        starts = place[self.link_start[inside]]
        ends = place[self.link_end[inside]]
        cuts, first = [], 0
        for end in numpy.unique(ends).tolist():
            if starts[ends == end].max() >= first:
                cuts.append(end)
                first = end
        bounds = [0] + cuts + [len(nodes)]
        return list(zip(bounds[:-1], bounds[1:], strict=True))

    def _extend(self, ids):
        """Extends the hypotheses `ids` (in order) over every outgoing link (in link order),
        after the network steps that needs."""
        entries, options = self.entries, self.options
        nodes = entries["node"][ids]
        counts = self.out_count[nodes]
        hypothesis = numpy.repeat(ids, counts)
        link = self.out_links[_ranges(self.out_start[nodes], counts)]
        if not len(link):
            return
        words = self.link_words[link]
        scored = numpy.flatnonzero(words >= 0)
        lm_log_prob = self.link_lm[link]  # (a copy)
        state, last_word = entries["state"][hypothesis], entries["word"][hypothesis]
        history = entries["history"][hypothesis]
        if len(scored):
            span = len(self.network.vocab) + 1
            pair_key = (state[scored] + 1) * span + last_word[scored]
            keys, pair_keys = numpy.unique(pair_key, return_inverse=True)  # zero-state keys first
            request = StepRequest(self, keys // span - 1, keys % span, pair_keys.reshape(-1), words[scored])
            nn_log_probs, new_rows = yield request
            lm_log_prob[scored] = self._combine(nn_log_probs, self.link_lm[link[scored]])
            state[scored] = new_rows[pair_keys.reshape(-1)]
            last_word[scored] = words[scored]
            if options.dp_order > 0:
                history[scored, :-1] = history[scored, 1:]
                history[scored, -1] = words[scored]
        score = entries["score"][hypothesis] + self.costs_but_lm[link] - options.lm_scale * lm_log_prob
        end = self.link_end[link]
        made = entries.add(score=score, node=end, link=link, predecessor=hypothesis, lm_log_prob=lm_log_prob,
                           state=state, word=last_word, history=history)
        self.made.append((made, self.frame_of[end]))

    def _combine(self, nn_log_probs, lattice_lm):
        """The new LM log-probabilities of LM-scored links from the network's and the lattice's."""
        if self.options.combination == "loglinear":
            return lattice_lm + self.options.lam * nn_log_probs
        return interpolate_linear(nn_log_probs, lattice_lm, self.options.lam)

    # -- traceback -------------------------------------------------------------------------

    def _result(self):
        entries, lattice = self.entries, self.lattice
        traceback = Traceback(entries["link"].tolist(), entries["predecessor"].tolist(), entries["score"].tolist(),
                              entries["node"].tolist(), entries["lm_log_prob"].tolist())
        position = self.topology.position
        # by end node position descending, then score ascending (lexsort: last key first)
        order = numpy.lexsort((entries["score"], -position[entries["node"]])).tolist()
        final, best = self.topology.final, order[0]  # the final node is last in the order
        if traceback.node[best] != final:
            raise RuntimeError("no hypothesis reached the final node")  # every node reaches it
        link_lm = [None] * len(lattice.links)
        links, predecessors, lm_log_probs = traceback.link, traceback.predecessor, traceback.lm_log_prob
        best_links = []
        entry = best
        while entry > 0:  # the best path's links, which the first walk below reaches first
            best_links.append(links[entry])
            entry = predecessors[entry]
        best_links.reverse()
        for entry in order:  # each walks back to the first link reached before
            while entry > 0:
                link_id = links[entry]
                if link_lm[link_id] is not None:
                    break
                link_lm[link_id] = lm_log_probs[entry]
                entry = predecessors[entry]
        row = int(entries["state"][best])
        final_state = self.states.gather([row]) if row >= 0 else None
        return SearchResult(traceback.score[best], best_links, link_lm, final_state, int(entries["word"][best]),
                            traceback, self.pruning_lines, self.network_steps)


def _first_of_each(rank, history):
    """The places, ascending, of the first entry of each (rank, history row) that occurs."""
    keys = numpy.concatenate([history.T[::-1], rank[None]])  # lexsort's last key first
    grouped = numpy.lexsort(keys)  # stable: equal keys together, in order
    rows, ranks = history[grouped], rank[grouped]
    same = (ranks[1:] == ranks[:-1]) & (rows[1:] == rows[:-1]).all(axis=1)
    return numpy.sort(grouped[numpy.concatenate([[True], ~same])]) if len(rank) else grouped


def _firsts_of_runs(values):
    """True where a value differs from the one before (and at the start)."""
    return numpy.concatenate([[True], values[1:] != values[:-1]]) if len(values) else numpy.zeros(0, dtype=bool)


def _ranges(starts, counts):
    """The concatenated ranges starts[k] .. starts[k] + counts[k] - 1."""
    total = int(counts.sum())
    offsets = numpy.repeat(starts - (numpy.cumsum(counts) - counts), counts)
    return offsets + numpy.arange(total)
