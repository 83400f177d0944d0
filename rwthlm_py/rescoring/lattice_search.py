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

Several lattices are searched side by side (search_together): each goes through its own
schedule of frame segments, and in each round every search extends segments until one
needs network steps (a StepRequest); the steps that all of them wait for then run together,
`batch_size` histories a call (None: all at once; 1: one at a time, as rwthlm), through a
scorer (model/scoring_step.py). The pruning and the extension of the segments of a round
are array operations over all the searches at once (a SearchGroup), whose hypotheses live
in one set of arrays (Entries), ordered by lattice where order matters: each search's
requests and result are those it makes alone. A hypothesis's network state is a row of the
group's StateStore. Searches may join a running group and leave it when they end, what
they held released (lattice_rolling keeps a group full over a run of many lattices).

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
import operator

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
    """The entries of a search, an array per field (not lists: a run holds the results of
    many lattices until they are written, and Python's garbage collector walks lists)."""

    link: numpy.ndarray  # the link that made each entry (-1: the root)
    predecessor: numpy.ndarray
    score: numpy.ndarray
    node: numpy.ndarray  # the node each entry ends in
    lm_log_prob: numpy.ndarray  # the LM log-probability its link got (0 without an LM score)


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
    """Runs the Searches in groups of equal SearchOptions, one group after another (the
    commands give every search the same options). Within a group (a SearchGroup) the
    searches are pruned and extended together and share their network steps: whenever
    every search waits for network steps, all those steps run together, `batch_size`
    histories a call (None: all at once). Returns their SearchResults, in order."""
    results = {}
    groups = {}
    for one in searches:
        groups.setdefault(dataclasses.astuple(one.options), []).append(one)
    with threads.for_rescoring():
        for members in groups.values():
            group = SearchGroup(members[0].options, members[0].network)
            group.add(members)
            while group.running():
                results.update((id(one), result) for one, result in group.advance(scorer, batch_size))
    return [results[id(one)] for one in searches]


class Entries:
    """The traceback entries of the searches of a SearchGroup, which are also their
    hypotheses, as growing arrays: per entry its score, node, link (-1: the root),
    predecessor, the LM log-probability its link got, its network state's row in the
    group's StateStore (-1: the zero state), its last LM-scored word and its last dp_order
    LM-scored words (`history`, oldest first). Nodes, links and predecessors are the
    group's numbers."""

    FIELDS = {"score": numpy.float64, "node": numpy.int64, "link": numpy.int64, "predecessor": numpy.int64,
              "lm_log_prob": numpy.float64, "state": numpy.int64, "word": numpy.int64}

    def __init__(self, dp_order, expected=1024):
        self.size = 0
        self.arrays = {name: numpy.empty(expected, dtype=dtype) for name, dtype in self.FIELDS.items()}
        self.arrays["history"] = numpy.empty((expected, dp_order), dtype=numpy.int64)

    def __getitem__(self, name):
        return self.arrays[name][:self.size]

    def add(self, **values):
        """Appends entries (equal-length arrays per field); returns their ids."""
        count = len(values["score"])
        self.reserve(count)
        for name, value in values.items():
            self.arrays[name][self.size:self.size + count] = value
        self.size += count
        return numpy.arange(self.size - count, self.size)

    def reserve(self, count):
        """Room for `count` more entries, made at once rather than grown by copying."""
        if self.size + count > len(self.arrays["score"]):
            self.arrays = {name: grown(array, self.size, self.size + count) for name, array in self.arrays.items()}

    def keep(self, ids):
        """Keeps only the entries `ids` (ascending), renumbered 0, 1, ... in that order (their
        fields as they were: the caller renumbers what refers to entries, nodes or rows)."""
        for array in self.arrays.values():
            array[:len(ids)] = array[ids]
        self.size = len(ids)


class Search:
    """One lattice's search, run by search_together: the lattice's links and node order as
    arrays, its time frames cut into the segments it extends one after the other (its
    `schedule`), and what it gathers while it runs: its pruning lines and the histories
    it steps."""

    def __init__(self, network, lattice, topology, link_words, options, initial_state=None):
        self.network, self.lattice, self.topology, self.options = network, lattice, topology, options
        scale = options.lm_scale if options.look_ahead_lm_scale is None else options.look_ahead_lm_scale
        self.look_ahead = look_ahead_scores(lattice, topology, options.look_ahead, scale, options.acoustic_scale)
        self.link_words = numpy.asarray(link_words, dtype=numpy.int64)
        self.link_start, self.link_end = topology.link_start, topology.link_end
        self.link_lm = _link_values(lattice, "lm", numpy.float64) + 0.0  # -0 -> 0
        acoustic = _link_values(lattice, "acoustic", numpy.float64)
        # each link's cost but for its LM score, with the look-ahead moved from start to end
        self.costs_but_lm = (-options.acoustic_scale * acoustic - options.word_penalty * (self.link_words >= 0)
                             - self.look_ahead[self.link_start] + self.look_ahead[self.link_end])
        # the links leaving each node in link order (topology.outgoing), one node after the other
        self.out_links = numpy.argsort(self.link_start, kind="stable")
        self.out_count = numpy.bincount(self.link_start, minlength=len(lattice.nodes))
        self.out_start = numpy.cumsum(self.out_count) - self.out_count
        self.frames = self._frames()
        self.frame_of = numpy.empty(len(lattice.nodes), dtype=numpy.int64)
        self.place = numpy.empty(len(lattice.nodes), dtype=numpy.int64)  # a node's place in its frame
        for index, nodes in enumerate(self.frames):
            self.frame_of[nodes] = index
            self.place[nodes] = numpy.arange(len(nodes))
        self.schedule = self._schedule()
        self.initial_state = initial_state
        self.states = None  # the StateStore of its network states, its group's (SearchGroup)
        self.pruning_lines = []
        self.network_steps = 0

    def _frames(self):
        """The node order cut into runs of equal time, as arrays; the final node is never expanded."""
        order, times = numpy.asarray(self.topology.order, dtype=numpy.int64), self.topology.centiseconds
        cuts = numpy.flatnonzero(numpy.diff(times[order])) + 1
        return numpy.split(order, cuts)

    def _schedule(self):
        """The (frame, first place, last place + 1) segments extended one after the other:
        a frame without links between its own nodes is one segment, else it is cut before
        every node that a link from an earlier node of the same segment reaches."""
        inner = self.frame_of[self.link_start] == self.frame_of[self.link_end]
        with_inner_links = set(self.frame_of[self.link_start[inner]].tolist())
        schedule = []
        for index, nodes in enumerate(self.frames):
            if index in with_inner_links:
                schedule += [(index, first, last) for first, last in self._segments(index, nodes)]
            else:
                schedule.append((index, 0, len(nodes)))
        return schedule

    def _segments(self, index, nodes):
        """The frame cut into (first, last + 1) runs of node places, before every node that a
        link from an earlier node of the same run reaches."""
        links = self.out_links[_ranges(self.out_start[nodes], self.out_count[nodes])]
        inside = links[self.frame_of[self.link_end[links]] == index]
        starts = self.place[self.link_start[inside]]
        ends = self.place[self.link_end[inside]]
        cuts, first = [], 0
        for end in numpy.unique(ends).tolist():
            if starts[ends == end].max() >= first:
                cuts.append(end)
                first = end
        bounds = [0] + cuts + [len(nodes)]
        return list(zip(bounds[:-1], bounds[1:], strict=True))

    def result(self, entries):
        """The SearchResult from this search's traceback entries (numbered from 0, its root;
        arrays of their own)."""
        lattice = self.lattice
        traceback = Traceback(entries["link"], entries["predecessor"], entries["score"], entries["node"],
                              entries["lm_log_prob"])
        position = self.topology.position
        # by end node position descending, then score ascending (lexsort: last key first)
        order = numpy.lexsort((entries["score"], -position[entries["node"]])).tolist()
        final, best = self.topology.final, order[0]  # the final node is last in the order
        if traceback.node[best] != final:
            raise RuntimeError("no hypothesis reached the final node")  # every node reaches it
        link_lm = [None] * len(lattice.links)
        links, predecessors, lm_log_probs = (values.tolist() for values in (traceback.link, traceback.predecessor,
                                                                            traceback.lm_log_prob))
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
        return SearchResult(float(traceback.score[best]), best_links, link_lm, final_state,
                            int(entries["word"][best]), traceback, self.pruning_lines, self.network_steps)


class SearchGroup:
    """Searches with equal options run side by side, their hypotheses in one Entries and
    their links, nodes and frames numbered one lattice after the other. Each search goes
    through its own schedule of segments: in a round, every search extends segments until
    one needs network steps (or it is done), and then the steps of all that wait run
    together (step_together), each search's request as it would make it alone. Pruning
    and extension take the segments of all searches at once; sorted by the group's node
    places they fall apart into the searches in order, each search's entries in the order
    it would make them alone, so that its result does not depend on the others.

    Searches join at any time (`add`: next round they begin their first segment) and leave
    when they end (`advance` returns their results), so that a group can be kept full over
    a run of many lattices (lattice_rolling). The group lets go of an ended Search at once;
    what it leaves behind (its entries, their network states, its lattice's joined arrays,
    by their numbers in the group) stays until searches join
    while the ended ones hold half of the group's entries: then `_release` first keeps
    only what the running searches hold, renumbered in their order (entries, StateStore
    rows, nodes, links and frame keys), and the arrays' room is filled again by the
    searches that join. Renumbering keeps every order a search's steps and result depend
    on (its entries, its state rows, its nodes among the group's), and a group holds about
    twice the entries and states of its running searches at most, however long the run.
    (Where no search joins any more, nothing is released: the group ends with the run.)"""

    JOINED_FLOATS = ("link_lm", "costs_but_lm")  # the joined arrays (_join_lattices) of floats, the others ints
    JOINED = JOINED_FLOATS + ("link_words", "link_end", "out_links", "out_count", "out_start", "search_of", "rank",
                              "place", "frame_key", "frame_first", "frame_size", "frame_time")

    def __init__(self, options, network):
        self.options, self.network = options, network
        self._empty()

    def _empty(self):
        """No searches: empty entries and states, no lattices."""
        self.searches, self.cursor, self.ended = [], [], []  # each search's next segment; whether it ended
        self.ended_entries = 0  # the entries of ended searches that the group still holds
        self.states = StateStore()  # the searches' network states: a history's row numbers it in the group
        self.entries = Entries(self.options.dp_order)
        self.kept = numpy.empty(0, dtype=numpy.int64)  # the pruned entries of current frames not yet extended
        # the entries made that no segment has taken yet, in the order made, and their frame keys
        self.pending, self.pending_frames = numpy.empty(0, dtype=numpy.int64), numpy.empty(0, dtype=numpy.int64)
        self.made = []  # (ids, frame keys) of entries made since they were last joined to the pending ones
        self._no_lattices()

    def _no_lattices(self):
        """The joined arrays of no lattice (see _join_lattices)."""
        self.node_base = self.link_base = numpy.zeros(1, dtype=numpy.int64)
        self.frame_base = [0]
        for name in self.JOINED:
            setattr(self, name, numpy.empty(0, dtype=numpy.float64 if name in self.JOINED_FLOATS else numpy.int64))

    def add(self, searches):
        """The Searches join the group, after those in it; each begins with its root entry."""
        if any(one.options != self.options for one in searches):
            raise ValueError("the searches of a group have equal options")
        if self.ended_entries and 2 * self.ended_entries >= self.entries.size:
            self._release()
        first = len(self.searches)
        self.searches = self.searches + list(searches)
        self.cursor += [0] * len(searches)
        self.ended += [False] * len(searches)
        for one in searches:
            one.states = self.states
        self._join_lattices(searches)
        # a search steps about one history a node, and an entry is made per link and hypothesis at its start:
        # room for twice that is made at once
        self.states.reserve(2 * int(self.node_base[-1] - self.node_base[first]))
        self.entries.reserve(2 * int(self.link_base[-1] - self.link_base[first]) + len(searches))
        self.kept = numpy.concatenate([self.kept, self._roots(first)])

    def running(self):
        """The searches that have not ended, in the group's order."""
        return [k for k, ended in enumerate(self.ended) if not ended]

    def _join_lattices(self, searches):
        """The arrays of the Searches joined after the group's (a search's nodes, links and
        frames, `frame keys`, are numbered on from those of the search before it): per
        link its word, LM and other costs, end node; per node its links (out_links from
        out_start, out_count of them), search, place in the group (`rank`: the searches'
        node orders one after the other), place in its frame and frame key; per frame key
        the rank of its first node, its nodes and its time."""
        first = len(self.node_base) - 1  # the first one's place in the group
        nodes = [len(one.lattice.nodes) for one in searches]
        links = [len(one.lattice.links) for one in searches]
        frames = [len(one.frames) for one in searches]
        node_base = self.node_base[-1] + numpy.cumsum([0] + nodes)
        link_base = self.link_base[-1] + numpy.cumsum([0] + links)
        frame_base = self.frame_base[-1] + numpy.cumsum([0] + frames)
        node_shift = numpy.repeat(node_base[:-1], nodes)  # per node, per link: its lattice's first node

        def joined(name):
            return numpy.concatenate([getattr(one, name) for one in searches])

        rank = numpy.concatenate([one.topology.position for one in searches]) + node_shift
        # each frame's first node among the new nodes
        first_nodes = numpy.array([frame[0] for one in searches for frame in one.frames], dtype=numpy.int64) \
            + numpy.repeat(numpy.cumsum([0] + nodes[:-1]), frames)
        parts = {
            "link_words": joined("link_words"), "link_lm": joined("link_lm"), "costs_but_lm": joined("costs_but_lm"),
            "link_end": joined("link_end") + numpy.repeat(node_base[:-1], links),
            "out_links": joined("out_links") + numpy.repeat(link_base[:-1], links),
            "out_count": joined("out_count"), "out_start": joined("out_start") + numpy.repeat(link_base[:-1], nodes),
            "search_of": numpy.repeat(numpy.arange(first, first + len(searches)), nodes), "rank": rank,
            "place": joined("place"), "frame_key": joined("frame_of") + numpy.repeat(frame_base[:-1], nodes),
            "frame_first": rank[first_nodes],
            "frame_size": numpy.array([len(frame) for one in searches for frame in one.frames], dtype=numpy.int64),
            "frame_time": numpy.concatenate([one.topology.centiseconds for one in searches])[first_nodes]}
        for name, part in parts.items():
            setattr(self, name, numpy.concatenate([getattr(self, name), part]))
        self.node_base = numpy.concatenate([self.node_base, node_base[1:]])
        self.link_base = numpy.concatenate([self.link_base, link_base[1:]])
        self.frame_base = self.frame_base + frame_base[1:].tolist()

    def _roots(self, first):
        """The root entry of each search from `first` on (its node 0, its initial state and
        <sb>); their ids."""
        searches, sb = self.searches[first:], self.network.vocab.sb
        count = len(searches)
        states = [-1 if one.initial_state is None else self.states.add(one.initial_state) for one in searches]
        return self.entries.add(
            score=[one.look_ahead[0] for one in searches], node=self.node_base[first:-1], link=numpy.full(count, -1),
            predecessor=numpy.full(count, -1), lm_log_prob=numpy.zeros(count), state=states,
            word=numpy.full(count, sb), history=numpy.full((count, self.options.dp_order), sb))

    def advance(self, scorer, batch_size):
        """Runs rounds until searches end (at once for those without segments); returns
        [(Search, SearchResult)] of those, in the group's order ([] where none is left)."""
        while True:
            running = self.running()
            ending = [k for k in running if self.cursor[k] == len(self.searches[k].schedule)]
            if ending or not running:
                return self._end(ending)
            self._round(scorer, batch_size, running)

    def _round(self, scorer, batch_size, active):
        """Every search of `active` (none of them at its end) extends segments until it
        waits for network steps or ends; then the steps of all that wait run together."""
        working, waiting, extensions = active, [], []
        while working:
            ready, asking, extension = self._extend_segments(working)
            if asking:
                waiting += asking
                extensions.append(extension)
            working = [k for k in ready if self.cursor[k] < len(self.searches[k].schedule)]
        if waiting:
            self._answer(scorer, batch_size, sorted(waiting, key=lambda item: item[0]), extensions)

    def _end(self, ending):
        """The results of the searches `ending`, which leave the group."""
        if not ending:
            return []
        owner = self.search_of[self.entries["node"]]  # each entry's search
        found = []
        for k in ending:
            ids = numpy.flatnonzero(owner == k)
            found.append((self.searches[k], self._result(k, ids)))
            self.searches[k] = None  # its place stays until _release, its lattice goes now
            self.ended[k] = True
            self.ended_entries += len(ids)
        return found

    def _release(self):
        """Keeps only the running searches: their lattices joined again (their nodes, links
        and frame keys shift down over the ended searches'), their entries and their states'
        rows, each in its order, numbered anew."""
        running = self.running()
        if not running:
            self._empty()
            return
        self._join_made()
        owner = self.search_of[self.entries["node"]]  # each entry's search
        before = (self.node_base, self.link_base, numpy.array(self.frame_base))
        self.searches = [self.searches[k] for k in running]
        self.cursor = [self.cursor[k] for k in running]
        self.ended = [False] * len(running)
        self.ended_entries = 0
        self._no_lattices()
        self._join_lattices(self.searches)
        after = (self.node_base, self.link_base, numpy.array(self.frame_base))
        # per search before: how far its nodes, links and frame keys move (0 for the ended ones, whose entries go)
        node_shift, link_shift, frame_shift = numpy.zeros((3, len(before[0]) - 1), dtype=numpy.int64)
        for shift, new, old in zip((node_shift, link_shift, frame_shift), after, before, strict=True):
            shift[running] = new[:-1] - old[running]
        still = numpy.zeros(len(node_shift), dtype=bool)
        still[running] = True
        ids = numpy.flatnonzero(still[owner])
        pending_owner = owner[self.pending]
        left = still[pending_owner]
        self.pending_frames = self.pending_frames[left] + frame_shift[pending_owner[left]]
        owner = owner[ids]
        number = self._keep_entries(ids)
        self.pending = number[self.pending[left]]
        self.kept = number[self.kept]
        self.kept = self.kept[self.kept >= 0]
        entries = self.entries
        entries["node"][:] += node_shift[owner]
        link = entries["link"]
        link[:] = numpy.where(link >= 0, link + link_shift[owner], -1)

    def _keep_entries(self, ids):
        """Keeps only the entries `ids` (ascending) and the StateStore rows they refer to, both
        numbered anew in their order; returns each entry's new number (-1: gone, also at
        [-1])."""
        entries = self.entries
        number = numpy.full(entries.size + 1, -1, dtype=numpy.int64)
        number[ids] = numpy.arange(len(ids))
        state = entries["state"][ids]
        rows = numpy.unique(state[state >= 0])
        row_number = numpy.full(self.states.size + 1, -1, dtype=numpy.int64)  # [-1] stays -1: the zero state
        row_number[rows] = numpy.arange(len(rows))
        self.states.keep(rows)
        entries.keep(ids)
        entries["predecessor"][:] = number[entries["predecessor"]]  # a root's -1 stays -1
        entries["state"][:] = row_number[entries["state"]]
        return number

    # -- one segment of each search ------------------------------------------------------

    def _extend_segments(self, working):
        """Prunes and extends the current segment of each search of `working` (ascending).
        Returns the searches that went on to their next segment (their extensions needed
        no network steps), the (search, StepRequest) of the others and their extension."""
        segments = [self.searches[k].schedule[self.cursor[k]] for k in working]
        starting = [k for k, (frame, first, _) in zip(working, segments, strict=True) if first == 0 and frame > 0]
        if starting:
            self._prune(starting)
        ids = self._take_segments(working, segments)
        nodes = self.entries["node"][ids]
        counts = self.out_count[nodes]
        hypothesis = numpy.repeat(ids, counts)
        link = self.out_links[_ranges(self.out_start[nodes], counts)]
        owner = self.search_of[self.link_end[link]]
        asks = numpy.bincount(owner[self.link_words[link] >= 0], minlength=len(self.searches)) > 0
        asking = numpy.flatnonzero(asks).tolist()
        if not asking:
            self._make(hypothesis, link)
            self._advance(working)
            return working, [], None
        ready = [k for k in working if not asks[k]]
        if ready:
            now = ~asks[owner]
            if now.any():
                self._make(hypothesis[now], link[now])
                hypothesis, link, owner = hypothesis[~now], link[~now], owner[~now]
            self._advance(ready)
        asked, extension = self._requests(hypothesis, link, owner, asking)
        return ready, asked, extension

    def _advance(self, searches):
        for k in searches:
            self.cursor[k] += 1

    def _take_segments(self, working, segments):
        """The entries of the current segments of `working`, sorted by node (the group's
        places): in each node the kept ones first, then those that reached it from an
        earlier segment of its frame, each part in the order made."""
        count = len(self.searches)
        within, first, last = numpy.zeros(count, dtype=bool), numpy.zeros(count, dtype=numpy.int64), \
            numpy.zeros(count, dtype=numpy.int64)
        frame = numpy.full(count, -1, dtype=numpy.int64)
        within[working] = True
        later = False
        for k, (index, start, stop) in zip(working, segments, strict=True):
            first[k], last[k], frame[k] = start, stop, self.frame_base[k] + index
            later = later or start > 0
        parts = [self._taken(self.kept, within, first, last)]
        if later:  # entries from earlier segments of a frame with links inside it
            self._join_made()
            parts.append(self._taken(self.pending, within, first, last, frame=frame))
        ids = numpy.concatenate(parts) if len(parts) > 1 else parts[0]
        return ids[numpy.argsort(self.rank[self.entries["node"][ids]], kind="stable")]

    def _taken(self, pool, within, first, last, frame=None):
        """The entries of `pool` at the places first..last - 1 of their search's frame (and of
        frame key `frame`), for the searches `within`; they leave the pool."""
        nodes = self.entries["node"][pool]
        owner, place = self.search_of[nodes], self.place[nodes]
        taken = within[owner] & (place >= first[owner]) & (place < last[owner])
        if frame is not None:
            taken &= self.pending_frames == frame[owner]
            self.pending, self.pending_frames = pool[~taken], self.pending_frames[~taken]
        else:
            self.kept = pool[~taken]
        return pool[taken]

    def _join_made(self):
        if self.made:
            self.pending = numpy.concatenate([self.pending] + [ids for ids, _ in self.made])
            self.pending_frames = numpy.concatenate([self.pending_frames] + [frames for _, frames in self.made])
            self.made = []

    # -- pruning -------------------------------------------------------------------------

    def _prune(self, starting):
        """Prunes the frames that the searches `starting` (ascending) begin: the entries that
        reached them are kept, grouped by node in each frame's order, each node's best first
        (equal scores in the order made); adds each search's pruning line."""
        options, entries = self.options, self.entries
        self._join_made()
        keys = numpy.array([self.frame_base[k] + self.searches[k].schedule[self.cursor[k]][0] for k in starting],
                           dtype=numpy.int64)  # the frames' keys, ascending
        slot = numpy.full(self.frame_base[-1], -1, dtype=numpy.int64)  # each frame key's place in `keys`
        slot[keys] = numpy.arange(len(keys))
        taken = slot[self.pending_frames] >= 0
        ids = self.pending[taken]  # in the order made
        self.pending, self.pending_frames = self.pending[~taken], self.pending_frames[~taken]
        sizes = self.frame_size[keys]
        # a node's place among the nodes of all the frames: its group place, less its frame's first one, plus
        # the nodes of the frames before
        shift = numpy.cumsum(sizes) - sizes - self.frame_first[keys]
        nodes = entries["node"][ids]
        rank, scores = self.rank[nodes], entries["score"][ids]
        order = numpy.lexsort((scores, rank))  # stable: equal scores in the order made
        ids, scores, rank, frame = ids[order], scores[order], rank[order], slot[self.frame_key[nodes[order]]]
        before = numpy.bincount(rank + shift[frame], minlength=int(sizes.sum()))
        if options.beam > 0 and len(ids):
            lowest = numpy.full(len(keys), numpy.inf)
            runs = numpy.flatnonzero(_firsts_of_runs(frame))
            lowest[frame[runs]] = numpy.minimum.reduceat(scores, runs)  # the best of each frame
            keep = _firsts_of_runs(rank) | (scores <= (lowest + options.beam)[frame])
            ids, rank, frame = ids[keep], rank[keep], frame[keep]
        kept = _first_of_each(rank, entries["history"][ids])  # recombination: the best of a node and history
        ids, rank, frame = ids[kept], rank[kept], frame[kept]
        if options.limit > 0:
            starts = numpy.flatnonzero(_firsts_of_runs(rank))
            within = numpy.arange(len(ids)) - numpy.repeat(starts, numpy.diff(numpy.append(starts, len(ids))))
            ids, rank, frame = ids[within < options.limit], rank[within < options.limit], frame[within < options.limit]
        after = numpy.bincount(rank + shift[frame], minlength=int(sizes.sum()))
        self._pruning_lines(starting, keys, sizes, numpy.stack([before, after]))
        self.kept = numpy.concatenate([self.kept, ids])

    def _pruning_lines(self, starting, keys, sizes, counts):
        """rwthlm's pruning line of each frame: its hypotheses per node (counts[0]) and what
        pruning left of them (counts[1])."""
        offsets = numpy.cumsum(sizes) - sizes
        totals, lowest, highest = (function.reduceat(counts, offsets, axis=1).T.tolist()
                                   for function in (numpy.add, numpy.minimum, numpy.maximum))
        nodes, times = sizes.tolist(), self.frame_time[keys].tolist()
        for j, k in enumerate(starting):
            (total, kept), (least, kept_least), (most, kept_most) = totals[j], lowest[j], highest[j]
            self.searches[k].pruning_lines.append(
                f"t={times[j]} #hyps/#nodes: {total}/{nodes[j]} (min: {least}, max: {most}) -> {kept} "
                f"(min: {kept_least}, max: {kept_most})")

    # -- extension -----------------------------------------------------------------------

    def _requests(self, hypothesis, link, owner, asking):
        """The StepRequests of the searches `asking` (ascending) for their LM-scored links
        among `link` (hypothesis x link, grouped by search), each as the search alone
        would make it: its distinct (state, last word) pairs, zero state first. Returns
        [(search, StepRequest)] and the extension for _answer: (hypothesis, link, the
        LM-scored links' places among them, each one's pair among all the requests' pairs,
        the searches `asking`)."""
        entries, searches = self.entries, self.searches
        words = self.link_words[link]
        scored = numpy.flatnonzero(words >= 0)
        state, last_word = entries["state"][hypothesis[scored]], entries["word"][hypothesis[scored]]
        span = len(self.network.vocab) + 1
        rows = self.states.size + 2
        if len(searches) * rows * span >= 2**62:
            raise OverflowError("too many network states to number their histories")
        pair_key = (owner[scored] * rows + state + 1) * span + last_word
        keys, pair_keys = numpy.unique(pair_key, return_inverse=True)  # by search, zero-state keys first
        pair_keys = pair_keys.reshape(-1)
        key_search = keys // (rows * span)
        key_bounds = numpy.searchsorted(key_search, asking + [asking[-1] + 1]).tolist()
        pair_bounds = numpy.searchsorted(owner[scored], asking + [asking[-1] + 1]).tolist()
        key_states, key_words = (keys // span) % rows - 1, keys % span
        asked = []
        for j, k in enumerate(asking):
            keys_from, keys_to = key_bounds[j], key_bounds[j + 1]
            pairs_from, pairs_to = pair_bounds[j], pair_bounds[j + 1]
            request = StepRequest(searches[k], key_states[keys_from:keys_to], key_words[keys_from:keys_to],
                                  pair_keys[pairs_from:pairs_to] - keys_from, words[scored[pairs_from:pairs_to]])
            asked.append((k, request))
        return asked, (hypothesis, link, scored, pair_keys, asking)

    def _answer(self, scorer, batch_size, waiting, extensions):
        """Runs the network steps that the searches wait for ((search, StepRequest) in the
        searches' order) and makes the entries of their extensions (_requests)."""
        answers = step_together(scorer, [request for _, request in waiting], batch_size)
        answered = {k: answer for (k, _), answer in zip(waiting, answers, strict=True)}
        for hypothesis, link, scored, pair_keys, asking in extensions:
            parts = [answered[k] for k in asking]
            nn_log_probs = numpy.concatenate([part[0] for part in parts])
            new_rows = numpy.concatenate([part[1] for part in parts])
            self._make(hypothesis, link, scored, nn_log_probs, new_rows[pair_keys])
            self._advance(asking)

    def _make(self, hypothesis, link, scored=None, nn_log_probs=None, new_states=None):
        """The entries of hypotheses extended over links (in order); `scored` are the LM-scored
        ones among them, with the network's log-probabilities and the new states."""
        entries, options = self.entries, self.options
        lm_log_prob = self.link_lm[link]  # (a copy)
        state, last_word = entries["state"][hypothesis], entries["word"][hypothesis]
        history = entries["history"][hypothesis]
        if scored is not None:
            words = self.link_words[link[scored]]
            lm_log_prob[scored] = self._combine(nn_log_probs, self.link_lm[link[scored]])
            state[scored] = new_states
            last_word[scored] = words
            if options.dp_order > 0:
                history[scored, :-1] = history[scored, 1:]
                history[scored, -1] = words
        score = entries["score"][hypothesis] + self.costs_but_lm[link] - options.lm_scale * lm_log_prob
        end = self.link_end[link]
        made = entries.add(score=score, node=end, link=link, predecessor=hypothesis, lm_log_prob=lm_log_prob,
                           state=state, word=last_word, history=history)
        self.made.append((made, self.frame_key[end]))

    def _combine(self, nn_log_probs, lattice_lm):
        """The new LM log-probabilities of LM-scored links from the network's and the lattice's."""
        if self.options.combination == "loglinear":
            return lattice_lm + self.options.lam * nn_log_probs
        return interpolate_linear(nn_log_probs, lattice_lm, self.options.lam)

    # -- traceback -----------------------------------------------------------------------

    def _result(self, k, ids):
        """Search k's SearchResult, from its entries (`ids`, ascending) renumbered as its own."""
        entries = self.entries
        number = numpy.full(entries.size + 1, -1, dtype=numpy.int64)  # [-1] stays -1: a root's predecessor
        number[ids] = numpy.arange(len(ids))
        link = entries["link"][ids]
        own = {name: entries[name][ids] for name in ("score", "lm_log_prob", "state", "word")}
        own["node"] = entries["node"][ids] - self.node_base[k]
        own["link"] = numpy.where(link >= 0, link - self.link_base[k], -1)
        own["predecessor"] = number[entries["predecessor"][ids]]
        return self.searches[k].result(own)


def _link_values(lattice, name, dtype):
    """The attribute `name` of every link of the lattice, as an array."""
    return numpy.fromiter(map(operator.attrgetter(name), lattice.links), dtype=dtype, count=len(lattice.links))


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
