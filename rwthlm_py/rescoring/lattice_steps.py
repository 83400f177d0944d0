"""The network steps of lattice searches run side by side (lattice_search.search_together):
what a search asks for (a StepRequest), the shared calls that answer every waiting search
(step_together), and where a search keeps the network states of its histories (StateStore).

A call takes at most `batch_size` histories (None: all that wait; 1: one at a time, as
rwthlm); histories of the zero state run in calls of their own, because a call's state is
all given or all zero. Each search's keys come zero-state first, so that a call holds
consecutive key ranges of the requests. A history's new state is stored in its search's
StateStore (one for the searches of a group, lattice_search.SearchGroup) and answered as
its row there.
"""

import dataclasses

import numpy

from rwthlm_py.layers.functional import get_xp
from rwthlm_py.model.network import concatenate_states, select_state


@dataclasses.dataclass
class StepRequest:
    """The network steps a search waits for: per history (key) its state's StateStore row
    (-1: the zero state; those come first) and its last word, and the (key, target word)
    pairs to score, all host int arrays."""

    search: object  # the lattice_search.Search that asks
    key_states: numpy.ndarray
    key_words: numpy.ndarray
    pair_keys: numpy.ndarray
    pair_words: numpy.ndarray
    index: int = None


def step_together(scorer, requests, batch_size):
    """The StepRequests' network steps in shared calls, `batch_size` histories each (None:
    all at once); histories of the zero state run apart from the others (a call's state is
    all given or all zero). Returns per request (ln p_nn of each pair, the StateStore row
    of each key's new state)."""
    answers = [(numpy.empty(len(request.pair_keys)), numpy.empty(len(request.key_states), dtype=numpy.int64))
               for request in requests]
    zero_counts = [int(numpy.count_nonzero(request.key_states < 0)) for request in requests]
    # (request, first key, last key + 1) ranges: the zero-state keys of every request, then the others
    sizes = [len(request.key_states) for request in requests]
    ranges = [[(r, 0, zero) for r, zero in enumerate(zero_counts) if zero],
              [(r, zero, size) for r, (zero, size) in enumerate(zip(zero_counts, sizes, strict=True)) if zero < size]]
    unk_penalty = requests[0].search.options.unk_penalty
    for group in ranges:
        total = sum(stop - start for _, start, stop in group)
        size = batch_size or total or 1
        for call in _cut(group, size):
            _run_call(scorer, requests, call, answers, unk_penalty)
    return answers


def _cut(ranges, size):
    """The (request, start, stop) ranges cut into calls of at most `size` keys each."""
    call, room = [], size
    for r, start, stop in ranges:
        while start < stop:
            taken = min(room, stop - start)
            call.append((r, start, start + taken))
            start, room = start + taken, room - taken
            if room == 0:
                yield call
                call, room = [], size
    if call:
        yield call


def _run_call(scorer, requests, call, answers, unk_penalty):
    """One network call for the keys of the (request, start, stop) ranges `call`; fills in
    their answers. Requests whose searches share a StateStore (those of one group,
    lattice_search) have their states gathered and stored with one index each."""
    inputs, columns, words, pair_sets = [], [], [], []
    offset = 0
    for r, start, stop in call:
        request = requests[r]
        inputs.append(request.key_words[start:stop])
        if start == 0 and stop == len(request.key_states):
            pairs = slice(None)  # the whole request
            columns.append(request.pair_keys + offset)
            words.append(request.pair_words)
        else:
            pairs = numpy.flatnonzero((request.pair_keys >= start) & (request.pair_keys < stop))
            columns.append(request.pair_keys[pairs] - start + offset)
            words.append(request.pair_words[pairs])
        pair_sets.append(pairs)
        offset += stop - start
    runs = _store_runs(requests, call)
    state = None
    if requests[call[0][0]].key_states[call[0][1]] >= 0:  # (a call's states are all given or all zero)
        state = concatenate_states([store.gather(numpy.concatenate([requests[r].key_states[start:stop]
                                                                    for r, start, stop in ranges]))
                                    for store, ranges in runs])
    log_probs, new_state = scorer.next_word_log_probs(numpy.concatenate(inputs), state, numpy.concatenate(columns),
                                                      numpy.concatenate(words), unk_penalty)
    log_probs = requests[0].search.network.backend.to_numpy(log_probs)
    offset = 0
    for store, ranges in runs:
        size = sum(stop - start for _, start, stop in ranges)
        first_row = store.add(select_state(new_state, slice(offset, offset + size)) if len(runs) > 1 else new_state)
        for r, start, stop in ranges:
            answers[r][1][start:stop] = numpy.arange(first_row, first_row + stop - start)
            first_row += stop - start
            requests[r].search.network_steps += stop - start
        offset += size
    done = 0
    for (r, _, _), pairs, columns_of in zip(call, pair_sets, columns, strict=True):
        answers[r][0][pairs] = log_probs[done:done + len(columns_of)]
        done += len(columns_of)


def _store_runs(requests, call):
    """The ranges of `call` as runs of consecutive ones whose searches share a StateStore:
    [(store, [(request, start, stop), ...]), ...]."""
    runs = []
    for r, start, stop in call:
        store = requests[r].search.states
        if runs and runs[-1][0] is store:
            runs[-1][1].append((r, start, stop))
        else:
            runs.append((store, [(r, start, stop)]))
    return runs


class StateStore:
    """The network states of a search's histories, a row each: a state's reference is its
    row, and the states of any rows are gathered with one index per array. States are
    tuples as the network gives them (arrays [B, ...], tuples of them, or None), all of
    the same structure."""

    def __init__(self, expected_rows=64):
        self.structure, self.arrays, self.size = None, [], 0
        self.expected_rows = expected_rows  # the first arrays' rows (they double as needed)

    def add(self, state):
        """Stores the B histories of `state`; returns the first one's row (the rest follow)."""
        parts = []
        structure = _flatten(state, parts)
        if self.structure is None:
            self.structure = structure
            self.arrays = [get_xp(part).empty((max(self.expected_rows, 2 * len(part)),) + part.shape[1:],
                                              dtype=part.dtype)
                           for part in parts]
        rows = len(parts[0])
        self.reserve(rows)
        for array, part in zip(self.arrays, parts, strict=True):
            array[self.size:self.size + rows] = part
        self.size += rows
        return self.size - rows

    def gather(self, rows):
        """The state of the histories `rows` (row numbers), in that order."""
        index = numpy.asarray(rows, dtype=numpy.int64)
        parts = iter([array[index] for array in self.arrays])
        return _unflatten(self.structure, parts)

    def reserve(self, rows):
        """Room for `rows` more rows, made at once (memory never written costs nothing)."""
        needed = self.size + rows
        if self.structure is None:
            self.expected_rows = max(self.expected_rows, needed)
        elif needed > len(self.arrays[0]):
            self.arrays = [grown(array, self.size, needed) for array in self.arrays]

    def keep(self, rows):
        """Keeps only the rows `rows` (ascending), renumbered 0, 1, ... in that order, in the
        arrays' room as it is (a group's next searches fill it again)."""
        index = numpy.asarray(rows, dtype=numpy.int64)
        for array in self.arrays:
            array[:len(index)] = array[index]
        self.size = len(index)


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


def grown(array, used, needed):
    """`array` with room for at least `needed` rows (doubling), its first `used` rows kept."""
    grown = get_xp(array).empty((max(needed, 2 * len(array)),) + array.shape[1:], dtype=array.dtype)
    grown[:used] = array[:used]
    return grown
