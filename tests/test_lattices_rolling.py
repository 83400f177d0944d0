"""Rolling groups (lattice_rolling.RollingSearch): over a run of many lattices of very
different lengths, a lattice joins the group's search as soon as another one ends. Each
still finds what it finds alone and comes back in input order (a failed one in its place);
the calls stay fuller than in fixed groups, the group full until the source ends; no more
than the window of lattices is held, nor searched at once; the group releases what ended
searches held once it is half of its entries; the lattice command and the Kaldi command
print and write what one lattice after the other does, the summary counting each second
in one part, and --dependent chains each lattice to the one before."""

import dataclasses
import io
import shutil
import types

import numpy
import pytest
import test_lattice_search
from conftest import write_lattice_model
from test_kaldi_lattice import DATA, compact_archive
from test_lattice_search import link_words, random_lattice
from test_lattices_together import CountingScorer, assert_same_result, rescore

from rwthlm_py.commands import lattice_rescoring
from rwthlm_py.config import Options
from rwthlm_py.model.checkpoint import build_network, read_model
from rwthlm_py.model.scoring_step import scoring_step
from rwthlm_py.output.reporting import Console
from rwthlm_py.rescoring import lattice_command, lattice_rolling
from rwthlm_py.rescoring.kaldi_lattice_command import rescore_kaldi_archives
from rwthlm_py.rescoring.lattice_command import rescore_lattices
from rwthlm_py.rescoring.lattice_rolling import RollingSearch
from rwthlm_py.rescoring.lattice_search import Search, SearchGroup, SearchOptions, search, search_together
from rwthlm_py.rescoring.lattice_topology import lattice_topology
from rwthlm_py.runtime.backend import get_backend

network = test_lattice_search.network  # the same network fixture, far from uniform
OPTIONS = SearchOptions(lam=0.7, beam=4.0, dp_order=2, lm_scale=2.5, look_ahead="tropical")
LONG = 5  # every fifth lattice is about five times as long as the others


def varied_lattices(tmp_path, vocab, count):
    """`count` prepared lattices (lattice, topology, words): 4 or 5 layers, every LONG-th
    (from the first) 20 to 25."""
    found = []
    for k in range(count):
        layers = 20 + k % 6 if k % LONG == 0 else 4 + k % 2
        lattice = random_lattice(tmp_path, vocab, 100 + k, layers=layers)
        found.append((lattice, lattice_topology(lattice), link_words(lattice, vocab)))
    return found


@dataclasses.dataclass
class Item:
    search: object  # None: its preparation failed
    result: object = None


class WatchedScorer(CountingScorer):
    """Counts the histories of each call and notes the group's entries and state rows then,
    its running searches, and whether the source had given its last item."""

    def __init__(self, network):
        super().__init__(network)
        self.rolling, self.sizes, self.running, self.source_done = None, [], [], None

    def next_word_log_probs(self, *args):
        group = self.rolling.group
        self.sizes.append((group.entries.size, group.states.size))
        self.running.append((len(group.running()), self.source_done is not None and self.source_done()))
        return super().next_word_log_probs(*args)


def watched_source(items, pulled):
    """The items, each appended to `pulled` as it is taken."""
    for item in items:
        pulled.append(item)
        yield item


def held_counts(rolling, items):
    """The items yielded by rolling.searched, and the number held (taken from the source,
    not yet yielded, the one yielded among them) as each is yielded."""
    pulled, yielded, held = [], [], []
    for item in rolling.searched(watched_source(items, pulled)):
        held.append(len(pulled) - len(yielded))
        yielded.append(item)
    return yielded, held


def test_a_rolling_group_finds_what_each_lattice_finds_alone_in_input_order(tmp_path, network):
    """40 lattices four at a time, a window of 8: the first lattice is long, so the window
    fills behind it; the group's entries and state rows stay a fraction of the run's."""
    prepared = varied_lattices(tmp_path, network.vocab, 40)
    alone = [search(network, *one, OPTIONS) for one in prepared]
    items = [Item(Search(network, *one, OPTIONS)) for one in prepared]
    items.insert(17, Item(None))  # a lattice whose preparation failed
    scorer = WatchedScorer(network)
    rolling = scorer.rolling = RollingSearch(scorer, None, together=4, window=8)
    yielded, held = held_counts(rolling, items)
    assert [id(item) for item in yielded] == [id(item) for item in items]
    assert yielded[17].result is None
    found = [item.result for item in yielded if item.search is not None]
    for expected, result in zip(alone, found, strict=True):
        assert_same_result(result, expected)
    # the first lattice is long: the window fills behind it, and is never exceeded; nor are the group's 4 searches
    assert max(held) == 8
    assert max(running for running, _ in scorer.running) == 4
    # what ended searches held was released: the group held at most twice what its four largest searches
    # need, and a fraction of what the run's searches made
    entries = sorted(len(result.traceback.link) for result in alone)
    rows = sorted(result.network_steps for result in alone)
    most_entries, most_rows = (max(sizes) for sizes in zip(*scorer.sizes, strict=True))
    assert most_entries <= 2 * sum(entries[-4:]) and most_entries < sum(entries) / 4
    assert most_rows <= 2 * sum(rows[-4:]) and most_rows < sum(rows) / 4


class StateCountingScorer(CountingScorer):
    """Counts the histories of each call, and the calls that continue given states."""

    def __init__(self, network):
        super().__init__(network)
        self.given = 0

    def next_word_log_probs(self, inputs, state, *rest):
        self.given += state is not None
        return super().next_word_log_probs(inputs, state, *rest)


def test_rolling_calls_are_fuller_than_fixed_groups(tmp_path, network):
    """The same histories in fewer calls than groups of four that each run until their
    longest lattice ends (most groups have one five times as long as the others): the
    calls of given states, a round's, are far fewer; a search's first steps, from the zero
    state, still take calls of their own (a call's state is all given or all zero)."""
    prepared = varied_lattices(tmp_path, network.vocab, 40)
    fixed = StateCountingScorer(network)
    for first in range(0, len(prepared), 4):
        search_together(fixed, [Search(network, *one, OPTIONS) for one in prepared[first:first + 4]], None)
    rolling = StateCountingScorer(network)
    done = list(RollingSearch(rolling, None, together=4).searched(Item(Search(network, *one, OPTIONS))
                                                                   for one in prepared))
    assert len(done) == 40
    assert sum(rolling.calls) == sum(fixed.calls)
    assert rolling.given < 0.6 * fixed.given and len(rolling.calls) < 0.8 * len(fixed.calls)
    capped = CountingScorer(network)
    list(RollingSearch(capped, 3, together=4).searched(Item(Search(network, *one, OPTIONS)) for one in prepared))
    assert max(capped.calls) == 3 and sum(capped.calls) == sum(fixed.calls)


def test_a_lattice_joins_as_soon_as_another_ends(tmp_path, network):
    """Until the source has given its last lattice, every network call serves the group's
    four searches: one that ended is replaced before the next round runs."""
    prepared = varied_lattices(tmp_path, network.vocab, 40)
    pulled = []
    scorer = WatchedScorer(network)
    scorer.source_done = lambda: len(pulled) == len(prepared)
    rolling = scorer.rolling = RollingSearch(scorer, None, together=4)
    items = [Item(Search(network, *one, OPTIONS)) for one in prepared]
    assert len(list(rolling.searched(watched_source(items, pulled)))) == 40
    before_the_last = [running for running, source_done in scorer.running if not source_done]
    assert len(before_the_last) > len(scorer.running) / 2 and set(before_the_last) == {4}


def test_by_default_a_long_lattice_keeps_window_per_search_lattices_a_search_behind_it(tmp_path, network):
    """A first lattice far longer than the rest: two searches, so the others finish behind
    it until 2 * WINDOW_PER_SEARCH lattices are held; the group then runs it alone."""
    first = random_lattice(tmp_path, network.vocab, 500, layers=60)
    prepared = [(first, lattice_topology(first), link_words(first, network.vocab))]
    for k in range(30):
        lattice = random_lattice(tmp_path, network.vocab, 501 + k, layers=3)
        prepared.append((lattice, lattice_topology(lattice), link_words(lattice, network.vocab)))
    alone = [search(network, *one, OPTIONS) for one in prepared]
    scorer = WatchedScorer(network)
    rolling = scorer.rolling = RollingSearch(scorer, None, together=2)
    yielded, held = held_counts(rolling, [Item(Search(network, *one, OPTIONS)) for one in prepared])
    assert max(held) == 2 * lattice_rolling.WINDOW_PER_SEARCH
    assert {running for running, _ in scorer.running} == {1, 2}
    for expected, item in zip(alone, yielded, strict=True):
        assert_same_result(item.result, expected)


def test_what_ended_searches_hold_is_released_when_a_search_joins_and_it_is_half_of_the_entries(tmp_path, network):
    """SearchGroup.add releases the ended searches (their entries, and the searches
    themselves) exactly when their entries are at least half of the group's; else they
    stay (a release passes over all entries): one long lattice and short ones joining as
    others end."""

    def one(seed, layers):
        lattice = random_lattice(tmp_path, network.vocab, seed, layers=layers)
        return Search(network, lattice, lattice_topology(lattice), link_words(lattice, network.vocab), OPTIONS)

    group, scorer = SearchGroup(OPTIONS, network), CountingScorer(network)
    group.add([one(600, 30), one(601, 4), one(602, 5)])
    ended, joins = 0, []  # ended: the entries of the searches that ended since the last release
    for seed in range(610, 640):
        ended += sum(len(result.traceback.link) for _, result in group.advance(scorer, None))
        size, running = group.entries.size, len(group.running())
        group.add([one(seed, 3 + seed % 3)])
        released = len(group.searches) == running + 1  # else the ended searches are still there
        assert released == (2 * ended >= size)
        assert group.entries.size == (size if not released else size - ended) + 1  # and the new search's root
        joins.append(released)
        ended = 0 if released else ended
    assert True in joins and False in joins


def test_searches_of_other_options_do_not_share_a_rolling_group(tmp_path, network):
    prepared = varied_lattices(tmp_path, network.vocab, 2)
    items = [Item(Search(network, *prepared[0], OPTIONS)),
             Item(Search(network, *prepared[1], dataclasses.replace(OPTIONS, beam=0.0)))]
    with pytest.raises(ValueError, match="equal options"):
        list(RollingSearch(network, None, together=4).searched(items))


def broken_lattice(tmp_path):
    path = tmp_path / "broken.lat"
    path.write_text("N=2 L=1\nI=0 t=0\nI=1 t=0.1\nJ=0 S=0 E=7 W=w1 a=-1 l=-1\n")
    return str(path)


def test_the_command_prints_and_writes_many_lattices_as_one_after_the_other(tmp_path, network, monkeypatch):
    """41 lattices (a broken one among them), 4 and 16 at a time, print and write what they
    do one at a time."""
    paths = [lattice.path for lattice, _, _ in varied_lattices(tmp_path, network.vocab, 40)]
    paths.insert(21, broken_lattice(tmp_path))
    runs = {}
    for together in (1, 4, 16):
        status, out, err = rescore(network, paths, together, monkeypatch)
        written = [(tmp_path / f"{path}.rescored").read_bytes() for path in paths if "broken" not in path]
        runs[together] = (out, written)
        assert status == 1 and err.count("error: ") == 1 and "broken.lat:4" in err
        assert err.strip().splitlines()[-1] == "rwthlm: 1 of 41 lattices failed"
    assert runs[4] == runs[1] and runs[16] == runs[1]
    printed = [line for line in runs[4][0].splitlines() if line.startswith("lattice '")]
    assert printed == [f"lattice '{path}' ..." for path in paths]
    assert runs[1][0].count("single best: ") == 40


def test_the_summary_counts_each_second_in_one_part(tmp_path, network, monkeypatch):
    """On a clock that only the parts advance (reading a lattice 1000 s, a network call
    10 s, a round of the search 1 s, writing a lattice 100 s): each part's seconds are its
    own, the search's apart from the reading of the lattices that join it and from its
    network calls, and together they are the run's."""
    paths = [lattice.path for lattice, _, _ in varied_lattices(tmp_path, network.vocab, 12)]
    clock = [0.0]

    def taking(seconds, function):
        def timed(*args, **kwargs):
            clock[0] += seconds
            return function(*args, **kwargs)
        return timed

    class SlowScorer:
        def __init__(self, scorer):
            self.next_word_log_probs = taking(10, scorer.next_word_log_probs)

    monkeypatch.setattr(lattice_command, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    monkeypatch.setattr(lattice_command, "prepare_lattice", taking(1000, lattice_command.prepare_lattice))
    monkeypatch.setattr(lattice_command, "report_and_write", taking(100, lattice_command.report_and_write))
    monkeypatch.setattr(lattice_command, "scoring_step", lambda network: SlowScorer(scoring_step(network)))
    monkeypatch.setattr(SearchGroup, "advance", taking(1, SearchGroup.advance))
    status, _, err = rescore(network, paths, 4, monkeypatch)
    assert status == 0
    summary = err.strip().splitlines()[-1]
    total = float(summary.split(" s of audio) in ")[1].split()[0])
    parts = {part: float(summary.split(f"{part} ")[1].split()[0])
             for part in ("reading", "network", "search", "writing")}
    calls = int(summary.split(" histories in ")[1].split()[0].replace(",", ""))
    assert (parts["reading"], parts["network"], parts["writing"]) == (12 * 1000, 10 * calls, 12 * 100)
    assert 1 <= parts["search"] < 1000 and total == sum(parts.values())


def test_dependent_lattices_chain_in_order_whatever_the_group_size(tmp_path, network, monkeypatch):
    """--dependent: each lattice starts from the state of the best path of the one before
    that did not fail, one lattice at a time."""
    prepared = varied_lattices(tmp_path, network.vocab, 8)
    paths = [lattice.path for lattice, _, _ in prepared]
    paths.insert(3, broken_lattice(tmp_path))
    options = Options(lam=0.6, pruning_threshold=5.0, dp_order=2, dependent=True)
    console = Console(out=io.StringIO(), err=io.StringIO())
    assert rescore_lattices(network, paths, lattice_rescoring(options), console) == 1
    costs = [line for line in console.out.getvalue().splitlines() if line.startswith("single best: ")]
    state, chained, independent = None, [], []
    for one in prepared:
        result = search(network, *one, lattice_rescoring(options).search, state)
        chained.append(f"single best: {result.cost:g}")
        independent.append(f"single best: {search(network, *one, lattice_rescoring(options).search).cost:g}")
        state = result.final_state
    assert costs == chained
    assert chained[1:] != independent[1:]  # the state matters


def random_kaldi_lattice(rng, layers):
    """(arcs, finals) of a layered Kaldi lattice, layers of 1 to 3 states three frames apart,
    words of the network and some epsilon arcs."""
    words = ["the", "cat", "dog", "sees", "feeds"]
    sizes = [1] + [int(rng.integers(1, 4)) for _ in range(layers)]
    firsts = numpy.cumsum([0] + sizes).tolist()
    arcs = []
    for layer in range(layers):
        sources, targets = range(firsts[layer], firsts[layer + 1]), range(firsts[layer + 1], firsts[layer + 2])
        pairs = {(int(rng.choice(sources)), target) for target in targets}  # every state reached
        pairs |= {(source, int(rng.choice(targets))) for source in sources}  # every state left
        for source, target in sorted(pairs):
            word = "<eps>" if rng.uniform() < 0.1 else str(rng.choice(words))
            graph, acoustic = round(float(rng.uniform(0.5, 4)), 2), round(float(rng.uniform(5, 30)), 2)
            arcs.append((source, target, word, graph, acoustic, [int(rng.integers(1, 9))] * 3))
    finals = {state: (round(float(rng.uniform(0, 1)), 2), 0.0, []) for state in range(firsts[-2], firsts[-1])}
    return arcs, finals


def test_the_kaldi_command_rolls_utterances_and_writes_them_as_one_after_the_other(tmp_path, monkeypatch):
    """An archive of 31 utterances of very different lengths (one with a word the network
    does not know) is printed and written, 4 at a time, as one at a time, in fewer calls."""
    rng = numpy.random.default_rng(5)
    utterances = {f"utt{k:02d}": random_kaldi_lattice(rng, 15 + k % 4 if k % LONG == 0 else 3 + k % 2)
                  for k in range(30)}
    keys = list(utterances)
    unknown = ([(0, 1, "!SIL", 1.0, 5.0, [1, 1, 1])], {1: (0.0, 0.0, [])})  # !SIL: not in the network's words
    utterances = {**{key: utterances[key] for key in keys[:13]}, "silence": unknown,
                  **{key: utterances[key] for key in keys[13:]}}
    (tmp_path / "many.ark").write_text(compact_archive(utterances))
    shutil.copy(DATA / "words.txt", tmp_path / "words.txt")
    network = build_network(read_model(write_lattice_model(tmp_path)), get_backend("numpy", "float64"))
    kaldi = lattice_rescoring(Options(lam=0.6, pruning_threshold=5.0, dp_order=2,
                                      kaldi_words=str(tmp_path / "words.txt")))
    runs, calls = {}, {}
    for together in (1, 4):
        monkeypatch.setattr(lattice_command, "LATTICES_TOGETHER", together)
        console = Console(out=io.StringIO(), err=io.StringIO())
        assert rescore_kaldi_archives(network, [str(tmp_path / "many.ark")], kaldi, console) == 1
        err = console.err.getvalue().strip().splitlines()
        assert err[0].endswith("'!SIL' is not in the network's vocabulary (give --unk to map unknown words to <unk>)")
        assert err[-1].endswith("1 lattice failed")
        calls[together] = int(err[-2].split(" histories in ")[1].split()[0].replace(",", ""))
        runs[together] = (console.out.getvalue(), (tmp_path / "many.ark.rescored").read_bytes(),
                          (tmp_path / "many.ark.1best").read_bytes())
    assert runs[4] == runs[1]
    printed = [line for line in runs[4][0].splitlines() if line.startswith("lattice '")]
    assert printed == [f"lattice '{key}' ..." for key in utterances]
    assert [line.split()[0] for line in runs[4][2].decode().splitlines()] == sorted(keys)
    assert calls[4] < calls[1] / 2
