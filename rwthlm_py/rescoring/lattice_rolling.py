"""The lattices of a run searched in a rolling group: a lattice joins the group's search as
soon as another one ends, so that the network calls stay full over the whole run, and the
lattices come back in their input order.

A run's items (the commands' lattices and utterances) each carry a `search` (a
lattice_search.Search, or None where its preparation failed: nothing to search) and get
its `result` (the SearchResult). RollingSearch.searched pulls them from their source one
at a time, keeps up to `together` searches running in one lattice_search.SearchGroup (which
releases what ended searches held), and yields each item once it and every item before it
are done: what a lattice prints and writes is then that of one lattice after the other,
since a search's steps and result do not depend on the searches beside it.

What is held is bounded by the window: the items pulled but not yet yielded span at most
`window` input positions, so a long lattice keeps at most window - 1 finished ones behind
it (the group then runs with fewer searches until it ends). The source is pulled lazily,
only when there is room: with a window of 1 (--dependent) an item is prepared only after
the one before was yielded and its consumer is done with it, so that it can start from
that one's state.
"""

import collections
import contextlib

from rwthlm_py.rescoring.lattice_search import SearchGroup
from rwthlm_py.runtime import threads

WINDOW_PER_SEARCH = 4  # the input positions held per search of the group, by default
_END = object()  # the source's end


class RollingSearch:
    """Searches a run's items in a rolling group of up to `together` searches, `batch_size`
    histories a network call (None: all that wait), `window` items held at most (default
    WINDOW_PER_SEARCH times `together`); `timed` is a context manager factory that times
    the search (the network's time inside it is the scorer's to count)."""

    def __init__(self, scorer, batch_size, together, window=None, timed=contextlib.nullcontext):
        self.scorer, self.batch_size, self.together = scorer, batch_size, together
        self.window = WINDOW_PER_SEARCH * together if window is None else window
        self.timed = timed
        self.group = None  # made with the first search's options (a run's searches have equal ones)

    def searched(self, items):
        """Yields the items in their order, each with its `result` set once its search has
        ended (items without a search as they are)."""
        source, held, searching = iter(items), collections.deque(), {}  # searching: id(search) -> item
        exhausted = False
        while True:
            while held and _done(held[0]):
                yield held.popleft()
            joining = []
            while not exhausted and len(held) < self.window and len(searching) < self.together:
                item = next(source, _END)
                if item is _END:
                    exhausted = True
                    break
                held.append(item)
                if item.search is not None:
                    searching[id(item.search)] = item
                    joining.append(item.search)
            if not held:
                return
            with self.timed(), threads.for_rescoring():
                if joining:
                    self._group(joining[0]).add(joining)
                if not _done(held[0]):  # else it is yielded first, and room made for the next items
                    for search, result in self.group.advance(self.scorer, self.batch_size):
                        searching.pop(id(search)).result = result

    def _group(self, search):
        if self.group is None:
            self.group = SearchGroup(search.options, search.network)
        return self.group


def _done(item):
    return item.search is None or item.result is not None
