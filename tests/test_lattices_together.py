"""Lattices searched side by side, their network steps shared (lattice_search.search_together,
and the lattice command's groups of LATTICES_TOGETHER), find what each finds alone: the
same best paths, costs, new LM scores, pruning lines and histories stepped, whatever the
batch size and whether the lean step or the network's own step runs; the command prints
and writes the same as one run per lattice, and a broken lattice among them fails alone."""

import dataclasses
import io

import pytest
import test_lattice_search
from test_lattice_search import link_words, random_lattice

from rwthlm_py.commands import lattice_rescoring
from rwthlm_py.config import Options
from rwthlm_py.model.scoring_step import LeanStep
from rwthlm_py.output.reporting import Console
from rwthlm_py.rescoring import lattice_command
from rwthlm_py.rescoring.lattice_command import rescore_lattices
from rwthlm_py.rescoring.lattice_search import Search, SearchOptions, search, search_together
from rwthlm_py.rescoring.lattice_topology import lattice_topology

network = test_lattice_search.network  # the same network fixture, far from uniform


def lattices(tmp_path, network, count=6):
    found = []
    for seed in range(count):
        lattice = random_lattice(tmp_path, network.vocab, seed, layers=5 + seed % 3)
        found.append((lattice, lattice_topology(lattice), link_words(lattice, network.vocab)))
    return found


def assert_same_result(found, expected):
    """The same search outcome, the numbers to float64 rounding (batches of other sizes)."""
    assert (found.best_links, found.pruning_lines, found.network_steps, found.final_word) == \
        (expected.best_links, expected.pruning_lines, expected.network_steps, expected.final_word)
    assert found.cost == pytest.approx(expected.cost, rel=1e-12)
    assert [lm is None for lm in found.link_lm] == [lm is None for lm in expected.link_lm]
    assert [lm for lm in found.link_lm if lm is not None] == \
        pytest.approx([lm for lm in expected.link_lm if lm is not None], rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("batch_size", [None, 1, 3])
@pytest.mark.parametrize("lean", [True, False])
def test_searched_together_each_lattice_finds_what_it_finds_alone(tmp_path, network, batch_size, lean):
    options = SearchOptions(lam=0.7, beam=4.0, dp_order=2, lm_scale=2.5, look_ahead="tropical", batch_size=batch_size)
    prepared = lattices(tmp_path, network)
    alone = [search(network, *one, options) for one in prepared]
    scorer = LeanStep(network) if lean else network
    together = search_together(scorer, [Search(network, *one, options) for one in prepared], batch_size)
    for expected, found in zip(alone, together, strict=True):
        assert_same_result(found, expected)
    assert len({result.cost for result in together}) == len(together)  # six different lattices


def test_searches_of_other_options_and_initial_states_find_what_they_find_alone(tmp_path, network):
    """Searches with other options run in groups of their own, and each starts from its own
    initial state (as --dependent gives it), whatever the searches beside it."""
    prepared = lattices(tmp_path, network, count=5)
    base = SearchOptions(lam=0.7, beam=4.0, dp_order=2, lm_scale=2.5)
    options = [base, dataclasses.replace(base, dp_order=1), base, dataclasses.replace(base, beam=0.0, limit=1), base,
               dataclasses.replace(base, lam=0.3), dataclasses.replace(base, lm_scale=9.0),
               dataclasses.replace(base, combination="loglinear")]
    prepared += prepared[:3]
    before = [search(network, *one, base) for one in prepared[:2]]
    initial = [None, before[0].final_state, before[1].final_state, None, before[0].final_state, None, None, None]
    cases = list(zip(prepared, options, initial, strict=True))
    alone = [search(network, *one, choice, state) for one, choice, state in cases]
    together = search_together(network, [Search(network, *one, choice, state) for one, choice, state in cases], None)
    for expected, found in zip(alone, together, strict=True):
        assert_same_result(found, expected)
    assert search(network, *prepared[2], base).cost != pytest.approx(alone[2].cost, rel=1e-9)  # the state matters


class CountingScorer:
    """The network's own step, counting the histories of each call."""

    def __init__(self, network):
        self.network, self.calls = network, []

    def next_word_log_probs(self, inputs, *rest):
        self.calls.append(len(inputs))
        return self.network.next_word_log_probs(inputs, *rest)


def test_the_calls_hold_the_histories_of_several_lattices(tmp_path, network):
    options = SearchOptions(lam=0.7, dp_order=2, lm_scale=2.5)
    prepared = lattices(tmp_path, network)
    alone = CountingScorer(network)
    for one in prepared:
        search(network, *one, options, scorer=alone)
    together = CountingScorer(network)
    search_together(together, [Search(network, *one, options) for one in prepared], None)
    assert sum(together.calls) == sum(alone.calls)
    assert len(together.calls) < len(alone.calls) / 3
    capped = CountingScorer(network)
    search_together(capped, [Search(network, *one, options) for one in prepared], 4)
    assert max(capped.calls) == 4 and sum(capped.calls) == sum(alone.calls)


def rescore(network, paths, together, monkeypatch):
    console = Console(out=io.StringIO(), err=io.StringIO())
    rescoring = lattice_rescoring(Options(lam=0.6, pruning_threshold=5.0, dp_order=2))
    monkeypatch.setattr(lattice_command, "LATTICES_TOGETHER", together)
    status = rescore_lattices(network, paths, rescoring, console)
    return status, console.out.getvalue(), console.err.getvalue()


def test_the_command_prints_and_writes_as_one_lattice_after_the_other(tmp_path, network, monkeypatch):
    prepared = lattices(tmp_path, network, count=7)
    paths = [lattice.path for lattice, _, _ in prepared]
    (tmp_path / "broken.lat").write_text("N=2 L=1\nI=0 t=0\nI=1 t=0.1\nJ=0 S=0 E=7 W=w1 a=-1 l=-1\n")
    paths.insert(2, str(tmp_path / "broken.lat"))
    status, out, err = rescore(network, paths, 4, monkeypatch)
    written = {path: (tmp_path / f"{path}.rescored").read_bytes() for path in paths if "broken" not in path}
    assert status == 1 and "1 of 8 lattices failed" in err
    assert err.count("error: ") == 1 and "broken.lat:4" in err
    assert err.index("broken.lat") < err.index("rescored 7 lattices")
    one_by_one = []
    for path in paths:
        status, single_out, _ = rescore(network, [path], 1, monkeypatch)
        assert status == (1 if "broken" in path else 0)
        one_by_one.append(single_out.removeprefix("Rescoring ...\n"))
        if "broken" not in path:
            assert (tmp_path / f"{path}.rescored").read_bytes() == written[path]
    assert out == "Rescoring ...\n" + "".join(one_by_one)
    assert [line for line in out.splitlines() if line.startswith("lattice '")] == [f"lattice '{p}' ..." for p in paths]


def test_the_summary_line_says_where_the_time_went(tmp_path, network, monkeypatch):
    prepared = lattices(tmp_path, network, count=3)
    steps = sum(search(network, *one, lattice_rescoring(Options(lam=0.6, pruning_threshold=5.0, dp_order=2)).search)
                .network_steps for one in prepared)
    calls = {}
    for together in (1, 16):
        status, _, err = rescore(network, [lattice.path for lattice, _, _ in prepared], together, monkeypatch)
        assert status == 0
        summary = err.strip().splitlines()[-1]
        assert summary.startswith("rescored 3 lattices (")
        for part in ("(reading ", " s, network ", f" s for {steps:,} histories in ", " calls, search ", " s, writing "):
            assert part in summary, summary
        calls[together] = int(summary.split(" histories in ")[1].split()[0].replace(",", ""))
    assert calls[16] < calls[1] < steps  # searched together, the three lattices' steps share calls
