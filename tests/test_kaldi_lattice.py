"""Kaldi lattices in and out of `rwthlm-py lattice --kaldi-words`: the text archives read
(both forms, and every malformed line one error naming file and line), the outputs against
golden files written by hand, and the rescoring against independent computations.

The golden files (tests/golden/kaldi_lattice/) come from tests/data/kaldi_lattice/, whose
first lattice is (graph cost, acoustic cost, transition ids; frames in brackets):

    0 -the(1,10,1_1)-> 1 [2] -cat(2,30,2_2_2)---> 2 [5] -<eps>(0.5,1,4)-> 3 [6] -sees(1.5,20,5_5)-> 4 [8]
                             -dog(2.5,29,3_3_3)->       -feeds(1,25,6_6_6) -------------------------->
    4 final (0.5,2,7): the utterance ends at frame 9

and the second `spk-b`: 0 -dog(3,7,1_2)-> 1, 1 final (1,0). plain.ark is the same as
lattice-copy --write-compact=false writes it (Kaldi's ConvertLattice: the word and the
weight on the first arc of a chain of one transition id each, the chain's states numbered
after the others).

compact.ark with --lambda 0 (new graph costs = old ones), acoustic scale 1, --dp-order 1,
no beam: path costs are acoustic + graph costs; the 1 at node 1; at 2 via cat 43, via dog
42.5 (two histories); at 3 44.5 and 44; at 4 via sees 66 (cat) and 65.5 (dog), which end in
the same word and recombine into the dog's, via feeds 69 and 68.5, recombined into the
dog's; the final weight adds 2.5: the dog sees (68), the cat sees (68.5: its hypothesis was
recombined, its expanded arc leads into the dog's state), the dog feeds (71), the cat
feeds (71.5). The expanded lattice has a state per surviving hypothesis (the dog's and the
cat's at 2 and 3, the two survivors at 4), numbered by time and topologically; its arcs
copy words, acoustic costs and transition ids and carry the graph costs, which with lambda
0 are the old ones; the final weights of both states at 4 are the old one. The n-best
costs are sums: the dog sees 62 acoustic, 6 graph; the cat sees 63, 5.5; the dog feeds 66,
5; the cat feeds 67, 4.5. spk-b: dog at 11 (7 + 3 + final 1).

plain.ark with --dp-order 0 (one hypothesis per state): the expanded lattice is the input
again, its states renumbered by time (and topologically within a time).
"""

import gzip
import math
import pathlib
import shutil

import numpy
import pytest
from conftest import LATTICE_MODEL, RWTHLM_PY, assert_one_line_error, run_cli, write_lattice_model

from rwthlm_py.errors import InputError
from rwthlm_py.model.checkpoint import build_network, read_model
from rwthlm_py.rescoring.kaldi_conversion import to_search_lattice
from rwthlm_py.rescoring.kaldi_lattice import format_cost, read_archive, read_symbols
from rwthlm_py.runtime.backend import get_backend
from rwthlm_py.text import data

DATA = pathlib.Path(__file__).parent / "data" / "kaldi_lattice"
GOLDEN = pathlib.Path(__file__).parent / "golden" / "kaldi_lattice"
WORD_IDS = {"<eps>": 0, "!SIL": 1, "the": 2, "cat": 3, "dog": 4, "feeds": 5, "sees": 6, "<unk>": 7, "#0": 8,
            "<s>": 9, "</s>": 10}
MODEL = LATTICE_MODEL


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_lattice_model(tmp_path_factory.mktemp("model"))


@pytest.fixture
def work(tmp_path, model):
    """A folder with the model, words.txt and the two archives."""
    shutil.copy(model, tmp_path / MODEL)
    for name in ("words.txt", "compact.ark", "plain.ark"):
        shutil.copy(DATA / name, tmp_path / name)
    return tmp_path


def rescore(cwd, *args, lam=0.0, beam=0, status=0):
    """Runs `rwthlm-py lattice --kaldi-words words.txt` (float64); returns stdout."""
    result = run_cli(RWTHLM_PY, "lattice", "--kaldi-words", "words.txt", "--lambda", lam, "--pruning-threshold", beam,
                     "--dtype", "float64", *args, MODEL, cwd=cwd)
    assert result[0] == status, result[2]
    return result[1]


def compact_archive(lattices):
    """Archive text of {key: (arcs [(src, dst, word, graph, acoustic, tids)], finals {state: (graph, acoustic,
    tids)})}, written here without the reader's help (state 0 first, as Kaldi)."""
    lines = []
    for key, (arcs, finals) in lattices.items():
        lines.append(f"{key} ")
        for state in sorted({arc[0] for arc in arcs} | set(finals)):
            lines += [f"{s}\t{d}\t{WORD_IDS[w]}\t{format_cost(g)},{format_cost(a)},{'_'.join(map(str, tids))}"
                      for s, d, w, g, a, tids in arcs if s == state]
            if state in finals:
                g, a, tids = finals[state]
                lines.append(f"{state}\t{format_cost(g)},{format_cost(a)},{'_'.join(map(str, tids))}")
        lines.append("")
    return "\n".join(lines) + "\n"


def complete_paths(arcs, finals, state=0):
    """Every path from `state` to a final weight: (arcs, final state)."""
    paths = [([], state)] if state in finals else []
    for arc in arcs:
        if arc[0] == state:
            paths += [([arc] + rest, end) for rest, end in complete_paths(arcs, finals, arc[1])]
    return paths


def words_of(path):
    return [arc[2] for arc in path if arc[2] != "<eps>"]


# -- golden files --------------------------------------------------------------------------------

def test_the_outputs_equal_the_golden_files(work):
    rescore(work, "--dp-order", 1, "--nbest", 10, "compact.ark")
    for name in ("rescored", "1best", "nbest", "nbest.ac_cost", "nbest.lm_cost"):
        assert (work / f"compact.ark.{name}").read_text() == (GOLDEN / f"compact.ark.{name}").read_text(), name
    out = rescore(work, "--dp-order", 0, "plain.ark").splitlines()
    assert (work / "plain.ark.rescored").read_text() == (GOLDEN / "plain.ark.rescored").read_text()
    assert (work / "plain.ark.1best").read_text() == (GOLDEN / "compact.ark.1best").read_text()
    start = out.index("Rescoring ...")
    assert out[start:start + 3] == ["Rescoring ...", "archive 'plain.ark' ...", "lattice 'utt1' ..."]
    assert "single best: 68" in out and "single best: 11" in out


def test_gzip_archives_give_gzip_outputs_under_out(work):
    with gzip.open(work / "lat.1.gz", "wt") as handle:
        handle.write((DATA / "compact.ark").read_text())
    rescore(work, "--dp-order", 1, "--out", "out", "lat.1.gz")
    assert sorted(path.name for path in (work / "out").iterdir()) == ["lat.1.1best.gz", "lat.1.rescored.gz"]
    with gzip.open(work / "out" / "lat.1.rescored.gz", "rt") as handle:
        assert handle.read() == (GOLDEN / "compact.ark.rescored").read_text()


# -- reading -------------------------------------------------------------------------------------

def search_paths(path):
    """(words, graph cost, acoustic cost, end time) of every path of each lattice of an archive,
    as the search sees it (the final link's word left out)."""
    symbols = read_symbols(DATA / "words.txt")
    paths = {}
    for kaldi in read_archive(path):
        lattice = to_search_lattice(kaldi, symbols, 0.01).lattice
        found, stack = [], [(0, [])]
        while stack:
            node, links = stack.pop()
            if node == len(lattice.nodes) - 1:
                words = tuple(lattice.links[k].word for k in links[:-1] if lattice.links[k].word != "<eps>")
                found.append((words, -sum(lattice.links[k].lm for k in links),
                              -sum(lattice.links[k].acoustic for k in links), round(lattice.nodes[node].time, 6)))
                continue
            stack += [(link.end, links + [link.id]) for link in lattice.links if link.start == node]
        paths[kaldi.key] = sorted(found)
    return paths


def test_both_forms_read_to_the_same_lattice(work):
    compact, plain = search_paths(DATA / "compact.ark"), search_paths(DATA / "plain.ark")
    assert compact == plain
    assert compact["utt1"] == [(("the", "cat", "feeds"), 4.5, 67.0, 0.09), (("the", "cat", "sees"), 5.5, 63.0, 0.09),
                               (("the", "dog", "feeds"), 5.0, 66.0, 0.09), (("the", "dog", "sees"), 6.0, 62.0, 0.09)]
    assert [kaldi.compact for name in ("compact", "plain") for kaldi in read_archive(DATA / f"{name}.ark")] == \
        [True, True, False, False]
    outputs = [rescore(work, "--dp-order", 0, "--acoustic-scale", 0.1, "--lambda", 0.6, name).splitlines()
               for name in ("compact.ark", "plain.ark")]
    assert [line for line in outputs[0] if line.startswith("single best")] == \
        [line for line in outputs[1] if line.startswith("single best")]
    assert (work / "compact.ark.1best").read_text() == (work / "plain.ark.1best").read_text()


def test_a_lattice_without_weights_spaces_for_tabs_and_no_last_empty_line(tmp_path):
    """Kaldi writes no weight where it is One (0,0, no transition ids) and a bare state for
    a final weight One; its reader splits at spaces too and reads a last lattice without
    its empty line."""
    (tmp_path / "a.ark").write_text("u1\n0 1 2\n1 2 3 0,0,\n2\n\n\nu2 \n5 6 0 0,0,1\n6 3 4 1.5,2,\n3  \n")
    first, second = read_archive(tmp_path / "a.ark")
    assert (first.key, first.start, first.compact) == ("u1", 0, True)
    assert [(a.source, a.target, a.word, a.graph, a.acoustic, a.frames) for a in first.arcs] == \
        [(0, 1, 2, 0.0, 0.0, 0), (1, 2, 3, 0.0, 0.0, 0)]
    assert [(f.state, f.graph, f.acoustic) for f in first.finals] == [(2, 0.0, 0.0)]
    assert (second.key, second.start, [f.state for f in second.finals]) == ("u2", 5, [3])
    assert [(a.transitions, a.frames) for a in second.arcs] == [("1", 1), ("", 0)]


def test_an_empty_lattice_and_infinite_final_weights(tmp_path):
    """An empty lattice is a key and the empty line; a final weight Infinity is no final
    weight (OpenFst prints it for a state without arcs)."""
    (tmp_path / "a.ark").write_text("empty \n\nu \n0\t1\t2\t1,2,3\n1\t0.5,1,\n2\tInfinity,Infinity,\n\n")
    empty, other = read_archive(tmp_path / "a.ark")
    assert empty.start is None and not empty.arcs and not empty.finals
    assert [f.state for f in other.finals] == [1]
    with pytest.raises(InputError, match=r"a.ark:1: the lattice of 'empty' is empty"):
        to_search_lattice(empty, {0: "<eps>"}, 0.01)


def test_states_off_every_complete_path_are_left_out(tmp_path):
    """Kaldi's Connect: a dead end (state 3) and a state the start does not reach (4)."""
    (tmp_path / "a.ark").write_text("u \n0\t1\t2\t1,2,1\n0\t3\t3\t1,2,1\n4\t1\t3\t1,1,1\n1\t0.5,0,\n\n")
    lattice = to_search_lattice(next(read_archive(tmp_path / "a.ark")), {2: "the", 3: "cat"}, 0.01).lattice
    assert [(link.start, link.end, link.word) for link in lattice.links] == [(0, 1, "the"), (1, 2, "</s>")]
    assert [node.time for node in lattice.nodes] == [0.0, 0.01, 0.01]


MALFORMED = [
    ("u extra\n0\t1\t2\t1,2,3\n", 1, "expected a key on a line of its own"),
    ("u\n0\t1\t2\t3\t4\t5\n", 2, "6 fields: a lattice line has at most 5"),
    ("u\nx\t1\t2\t1,2,3\n", 2, "state 'x' is not a whole number >= 0"),
    ("u\n0\t-1\t2\t1,2,3\n", 2, "state '-1' is not a whole number >= 0"),
    ("u\n0\t1\tw\t1,2,3\n", 2, "word id 'w' is not a whole number >= 0"),
    ("u\n0\t1\t2\t1,2\n1\n", 2, "weight '1,2' is not `graph,acoustic,tids`"),
    ("u\n0\t1\t2\t1;2,3\n", 2, "weight '1;2,3' is not `graph,acoustic,tids`"),
    ("u\n0\t1\t2\t1,2,3,4\n", 2, "weight '1,2,3,4' is not `graph,acoustic,tids`"),
    ("u\n0\t1\t2\tx,2,3\n", 2, "weight 'x,2,3': 'x' is not a number"),
    ("u\n0\t1\t2\t1,BadNumber,3\n", 2, "'BadNumber' is not a number"),
    ("u\n0\t1\t2\t1,nan,3\n", 2, "'nan' is not a number"),
    ("u\n0\t1\t2\t1,1_0,3\n", 2, "'1_0' is not a number"),
    ("u\n0\t1\t2\t1,2,3__4\n", 2, "transition ids '3__4' are not whole numbers joined by `_`"),
    ("u\n0\t1\t2\t1,2,3_x\n", 2, "transition ids '3_x' are not whole numbers"),
    ("u\n0\t1\t2\tInfinity,2,3\n", 2, "arc weight 'Infinity,2,3' has an infinite cost"),
    ("u\n0\t1\t2\t1,2,3\n1\t1,2,3,4\n", 3, "final weight '1,2,3,4' is not `graph,acoustic,tids`"),
    ("u\n0\t1\t2\t1,2,3\n1\tInfinity,0,\n", 3, "final weight 'Infinity,0,' has an infinite cost"),
    ("u\n0\t1\t2\t1,2,3\n1\n1\t0,0,\n", 4, "state 1 has a second final weight (the first is on line 3)"),
    ("u\n0\t1\t2\t1,2,3\n1\t1\t5\t2\t1,2\n", 3, "a Lattice (--write-compact=false) line in a CompactLattice (so read "
                                                "from line 2)"),
    ("u\n0\t1\t5\t2\t1,2\n1\t0.5,0,\n", 3, "a CompactLattice line in a Lattice"),
    ("u\n0\t1\t2\t1,2,3\n1\nv\n0\n", 4, "state 'v' is not a whole number >= 0"),
]


@pytest.mark.parametrize("text, line, message", MALFORMED)
def test_a_malformed_line_is_one_error_naming_file_and_line(tmp_path, text, line, message):
    (tmp_path / "bad.ark").write_text(text)
    with pytest.raises(InputError) as caught:
        list(read_archive(tmp_path / "bad.ark"))
    assert str(caught.value).startswith(f"{tmp_path / 'bad.ark'}:{line}: ")
    assert message in str(caught.value) and "\n" not in str(caught.value)


SHAPES = [
    ("u\n0\t1\t2\t1,2,1\n1\t0\t3\t1,2,1\n1\n", 3, "the arc from state 1 to state 0 closes a cycle"),
    ("u\n0\t1\t2\t1,2,1\n1\t1\t3\t1,2,\n1\n", 3, "the arc from state 1 to state 1 closes a cycle"),
    ("u\n0\t1\t2\t1,2,1\n0\t2\t2\t1,2,1_1\n1\t2\t3\t1,2,\n2\n", 4,
     "state 2 is reached after 1 frames over this arc and after 2 over another"),
    ("u\n0\t1\t2\t1,2,1\n", 1, "no final state can be reached from the start state 0 of 'u'"),
    ("u\n0\t1\t99\t1,2,1\n1\n", 2, "word id 99 is not in the symbol table"),
]


@pytest.mark.parametrize("text, line, message", SHAPES)
def test_a_lattice_the_search_cannot_take_is_one_error_in_kaldis_terms(tmp_path, text, line, message):
    (tmp_path / "bad.ark").write_text(text)
    symbols = read_symbols(DATA / "words.txt")
    with pytest.raises(InputError) as caught:
        to_search_lattice(next(read_archive(tmp_path / "bad.ark")), symbols, 0.01)
    assert str(caught.value).startswith(f"{tmp_path / 'bad.ark'}:{line}: ")
    assert message in str(caught.value)


def test_a_broken_archive_and_a_failing_utterance_are_one_line_each_and_the_others_go_on(work):
    """A malformed line fails its archive (no outputs); an utterance the search cannot take
    (or with an unknown word) is left out of its archive's outputs."""
    (work / "broken.ark").write_text((DATA / "compact.ark").read_text() + "u3 \n0\t1\t2\t1,2\n\n")
    result = run_cli(RWTHLM_PY, "lattice", "--kaldi-words", "words.txt", "--lambda", 0, "--pruning-threshold", 0,
                     "broken.ark", MODEL, cwd=work)
    assert_one_line_error(result, "rwthlm-py", "broken.ark:15: weight '1,2' is not `graph,acoustic,tids`",
                          "no outputs written for this archive")
    assert "Traceback" not in result[2] and "rwthlm-py: 1 of 1 archives could not be read" in result[2]
    assert not list(work.glob("broken.ark.*"))
    (work / "mixed.ark").write_text("cyc \n0\t1\t2\t1,2,1\n1\t0\t3\t1,2,1\n1\n\n"
                                    "unknown \n0\t1\t1\t1,2,1\n1\n\n" + (DATA / "compact.ark").read_text())
    result = run_cli(RWTHLM_PY, "lattice", "--kaldi-words", "words.txt", "--lambda", 0, "--pruning-threshold", 0,
                     "mixed.ark", MODEL, cwd=work)
    status, _, err = result
    errors = [line for line in err.splitlines() if line.startswith("rwthlm-py: error: ")]
    assert status == 1 and "Traceback" not in err
    assert errors == ["rwthlm-py: error: mixed.ark:3: the arc from state 1 to state 0 closes a cycle: the search "
                      "needs an acyclic lattice",
                      "rwthlm-py: error: mixed.ark:7: '!SIL' is not in the network's vocabulary (give --unk to map "
                      "unknown words to <unk>)"]
    assert "rwthlm-py: 2 lattices failed" in err
    assert (work / "mixed.ark.1best").read_text() == (GOLDEN / "compact.ark.1best").read_text()
    assert (work / "mixed.ark.rescored").read_text().startswith("utt1 \n")
    rescore(work, "--unk", "--dp-order", 1, "mixed.ark", status=1)  # !SIL now maps to <unk>
    assert "unknown !SIL" in (work / "mixed.ark.1best").read_text().splitlines()


def test_a_binary_archive_and_options_for_htk_lattices_are_refused(work):
    (work / "binary.ark").write_bytes(b"utt1 \xd6\xfd\xb2\x7e\x00\x00\x00vector")
    status, _, err = run_cli(RWTHLM_PY, "lattice", "--kaldi-words", "words.txt", "--lambda", 0, "--pruning-threshold",
                             0, "binary.ark", MODEL, cwd=work)
    assert status == 1 and "binary.ark:1: a binary Kaldi archive" in err and "ark,t:" in err
    common = ["lattice", "--lambda", 0, "--pruning-threshold", 0]
    for extra, message in ((["--kaldi-words", "words.txt", "--output", "ctm"], "--output: only for HTK lattices"),
                           (["--kaldi-words", "words.txt", "--set-sb-last"], "--set-sb-last: only for HTK lattices"),
                           (["--frame-shift", 0.03], "--frame-shift: only with --kaldi-words"),
                           (["--kaldi-words", "words.txt", "--frame-shift", 0], "--frame-shift must be a positive")):
        assert_one_line_error(run_cli(RWTHLM_PY, *common, *extra, "compact.ark", MODEL, cwd=work), "rwthlm-py",
                              message)
    assert_one_line_error(run_cli(RWTHLM_PY, *common, "--kaldi-words", "compact.ark", "compact.ark", MODEL, cwd=work),
                          "rwthlm-py", "compact.ark:1: expected `word id`")


# -- writing -------------------------------------------------------------------------------------

def test_with_weight_0_and_one_hypothesis_per_state_the_archive_comes_back_as_it_was(work):
    """Costs of every size and sign, at Kaldi's 7 digits, come back to the digit."""
    arcs = [(0, 1, "the", -12.34567, 1234.567, [1, 1]), (0, 1, "dog", 0.0001234567, 123456700.0, [2, 2]),
            (1, 2, "<eps>", 1.5e-07, -2.5, [3]), (2, 3, "sees", 0.0, 0.0, []), (2, 4, "cat", 0.0, 0.0, [4])]
    text = compact_archive({"u": (arcs, {3: (9.999999, 0.0, [5, 5]), 4: (0.5, -1e-05, [])})})
    text = text.replace("\t0,0,\n", "\n")  # a weight One is written as none
    assert "1.234567e+08" in text and "-12.34567" in text and "1.5e-07" in text and "2\t3\t6\n" in text
    (work / "a.ark").write_text(text)
    rescore(work, "--dp-order", 0, "a.ark")
    assert (work / "a.ark.rescored").read_text() == text


# -- rescoring against independent computations ------------------------------------------------------

TINY = {"u1": ([(0, 1, "the", 1.2, 50.0, [1, 1]), (0, 1, "dog", 2.0, 45.0, [2, 2]),
                (1, 2, "cat", -0.7, 80.0, [3, 3, 3]), (1, 2, "sees", 1.1, 75.0, [4, 4, 4]),
                (1, 3, "<eps>", 0.3, 10.0, [5]), (3, 2, "feeds", 0.9, 60.0, [6, 6]),
                (2, 4, "the", 0.4, 30.0, [7]), (2, 4, "dog", 1.3, 25.0, [8])],
               {2: (0.8, 15.0, []), 4: (0.2, 5.0, [9])})}


def own_best_words(lattices, acoustic_scale):
    arcs, finals = lattices["u1"]
    costs = {}
    for path, end in complete_paths(arcs, finals):
        graph, acoustic, _ = finals[end]
        costs[tuple(words_of(path))] = sum(acoustic_scale * a + g for *_, g, a, _ in path) + acoustic_scale * acoustic \
            + graph
    return min(costs, key=costs.get)


@pytest.mark.parametrize("acoustic_scale", [1.0, 0.1])
def test_with_weight_0_the_1best_is_the_lattices_own_best_path(work, acoustic_scale):
    (work / "tiny.ark").write_text(compact_archive(TINY))
    rescore(work, "--acoustic-scale", acoustic_scale, "tiny.ark")
    best = own_best_words(TINY, acoustic_scale)
    assert (work / "tiny.ark.1best").read_text() == " ".join(("u1",) + best) + "\n"
    assert own_best_words(TINY, 1.0) != own_best_words(TINY, 0.1)  # the scale matters here


def sentence_log_probs(network, words):
    """ln p of each word (network ids) after <sb>, by Network.log_probs."""
    stream = numpy.array(words, dtype=numpy.int32)
    context = numpy.array([network.vocab.sb] + list(words[:-1]), dtype=numpy.int32)
    batch = data.make_batch(stream, context, numpy.array([0]), numpy.array([len(words)]))
    return network.backend.to_numpy(network.log_probs(batch)[0])


def exhaustive_costs(network, lattices, weight, acoustic_scale):
    """{word sequence: (cost, acoustic cost, graph cost)} of the best path of each, every
    path scored with the network: a word arc's new graph cost is graph + weight (-ln p_nn), the
    final weight's is graph + weight (-ln p_nn(<sb>))."""
    arcs, finals = lattices["u1"]
    best = {}
    for path, end in complete_paths(arcs, finals):
        words = words_of(path)
        log_probs = sentence_log_probs(network, [network.vocab.index[w] for w in words] + [network.vocab.sb])
        final_graph, final_acoustic, _ = finals[end]
        graph = sum(g for *_, g, _, _ in path) + final_graph - weight * log_probs.sum()
        acoustic = sum(a for *_, a, _ in path) + final_acoustic
        cost = acoustic_scale * acoustic + graph
        if cost < best.get(tuple(words), (math.inf,))[0]:
            best[tuple(words)] = (cost, acoustic, graph)
    return best


def test_the_rescored_paths_are_an_exhaustive_scoring_of_every_path(work, model):
    """An infinite beam and histories longer than any path: the 1-best and every n-best
    entry (the best path of its word sequence) carry the network's exact scores."""
    network = build_network(read_model(model), get_backend("numpy", "float64"))
    (work / "tiny.ark").write_text(compact_archive(TINY))
    out = rescore(work, "--acoustic-scale", 0.1, "--lambda", 0.7, "--dp-order", 10, "--nbest", 50, "tiny.ark")
    expected = sorted(exhaustive_costs(network, TINY, 0.7, 0.1).items(), key=lambda item: item[1][0])
    assert len(expected) >= 8 and expected[0][1][0] < expected[1][1][0] - 1e-3
    best_words, (best_cost, _, _) = expected[0]
    assert (work / "tiny.ark.1best").read_text() == " ".join(("u1",) + best_words) + "\n"
    assert float(out.split("single best: ")[1].split()[0]) == pytest.approx(best_cost, rel=1e-5)
    texts = (work / "tiny.ark.nbest").read_text().splitlines()
    acoustic = [float(line.split()[1]) for line in (work / "tiny.ark.nbest.ac_cost").read_text().splitlines()]
    graph = [float(line.split()[1]) for line in (work / "tiny.ark.nbest.lm_cost").read_text().splitlines()]
    assert [line.split()[0] for line in texts] == [f"u1-{n}" for n in range(1, len(expected) + 1)]
    assert [tuple(line.split()[1:]) for line in texts] == [words for words, _ in expected]
    assert acoustic == pytest.approx([a for _, (_, a, _) in expected], rel=1e-6)
    assert graph == pytest.approx([g for _, (_, _, g) in expected], rel=1e-6, abs=1e-5)


def test_the_rescored_lattice_is_the_expanded_search_space(work, model):
    """Every path of the rescored archive costs what the exhaustive scoring gives its word
    sequence, or more (a path through a recombined hypothesis); the best one of each
    sequence exactly that."""
    network = build_network(read_model(model), get_backend("numpy", "float64"))
    (work / "tiny.ark").write_text(compact_archive(TINY))
    rescore(work, "--acoustic-scale", 0.1, "--lambda", 0.7, "--dp-order", 10, "tiny.ark")
    expected = exhaustive_costs(network, TINY, 0.7, 0.1)
    lines = (work / "tiny.ark.rescored").read_text().splitlines()
    assert lines[0] == "u1 " and lines[-1] == ""
    names = {number: word for word, number in WORD_IDS.items()}
    arcs, finals = [], {}
    for line in lines[1:-1]:
        fields = line.split("\t")
        graph, acoustic, tids = fields[-1].split(",") if len(fields) in (2, 4) else (0, 0, "")  # else One
        if len(fields) < 3:
            finals[int(fields[0])] = (float(graph), float(acoustic), tids)
        else:
            arcs.append((int(fields[0]), int(fields[1]), names[int(fields[2])], float(graph), float(acoustic), tids))
    assert all(source < target for source, target, *_ in arcs)  # topologically numbered
    found = {}
    for path, end in complete_paths(arcs, finals):
        cost = sum(0.1 * a + g for *_, g, a, _ in path) + 0.1 * finals[end][1] + finals[end][0]
        words = tuple(words_of(path))
        assert cost >= expected[words][0] - 1e-4
        found[words] = min(found.get(words, math.inf), cost)
    assert found == pytest.approx({words: cost for words, (cost, _, _) in expected.items()}, abs=1e-4)


def htk_lattice(lattices, lm_of):
    """The Kaldi lattice TINY as an HTK lattice: nodes at the states' times, a final node at
    the utterance's end reached over <sb> links; `lm_of(graph cost, word)` gives l=."""
    arcs, finals = lattices["u1"]
    frames = {0: 0}
    for source, target, *_, tids in sorted(arcs):
        frames[target] = frames[source] + len(tids)
    end = max(frames[state] + len(tids) for state, (_, _, tids) in finals.items())
    lines = [f"N={len(frames) + 1} L={len(arcs) + len(finals)}"]
    lines += [f"I={state} t={frames[state] / 100:.2f}" for state in sorted(frames)] + [f"I={len(frames)} t={end / 100}"]
    links = [(s, d, "!NULL" if w == "<eps>" else w, -a, 0.0 if w == "<eps>" else lm_of(g, w))
             for s, d, w, g, a, _ in arcs]
    links += [(state, len(frames), "<sb>", -a, lm_of(g, "<sb>")) for state, (g, a, _) in finals.items()]
    lines += [f"J={k} S={s} E={d} W={w} a={a!r} l={lm!r}" for k, (s, d, w, a, lm) in enumerate(links)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_htk_and_kaldi_versions_of_a_lattice_agree(work, weight):
    """rwthlm's linear interpolation and Kaldi's log-linear weight agree where the lattice's
    LM drops out: weight 0 (both keep the lattice's scores; HTK's l = -graph cost, its
    epsilon links without LM score have graph cost 0 in Kaldi), and weight 1 on a Kaldi
    lattice whose old LM was removed (graph costs 0; HTK lambda 1 ignores l)."""
    if weight == 0.0:
        kaldi = {"u1": ([arc if arc[2] != "<eps>" else (*arc[:3], 0.0, *arc[4:]) for arc in TINY["u1"][0]],
                        TINY["u1"][1])}
        kaldi["u1"][0][2] = (1, 2, "cat", 0.7, 80.0, [3, 3, 3])  # HTK's l must be negative

        def lm_of(graph, word):
            return -graph
    else:
        kaldi = {"u1": ([(*arc[:3], 0.0, *arc[4:]) for arc in TINY["u1"][0]],
                        {state: (0.0, *rest) for state, (_, *rest) in TINY["u1"][1].items()})}

        def lm_of(graph, word):
            return -1.25  # any LM score: lambda 1 drops it
    (work / "tiny.ark").write_text(compact_archive(kaldi))
    (work / "tiny.lat").write_text(htk_lattice(kaldi, lm_of))
    options = ["--acoustic-scale", 0.1, "--dp-order", 10]
    kaldi_out = rescore(work, *options, "tiny.ark", lam=weight).splitlines()
    htk_out = run_cli(RWTHLM_PY, "lattice", "--lambda", weight, "--pruning-threshold", 0, "--dtype", "float64",
                      *options, "--output", "ctm", "tiny.lat", MODEL, cwd=work)
    assert htk_out[0] == 0, htk_out[2]
    costs = [[line for line in out if line.startswith("single best: ")] for out in (kaldi_out, htk_out[1].splitlines())]
    assert costs[0] == costs[1] and len(costs[0]) == 1
    htk_words = [line.split()[-1] for line in (work / "tiny.lat.ctm").read_text().splitlines()]
    assert (work / "tiny.ark.1best").read_text().split()[1:] == htk_words


def test_word_error_rates_against_references_by_key(work):
    """The lattice's own best path (the dog sees), the rescored one (with weight 0 the
    same) and the oracle (the cat feeds) against `the cat feeds` and spk-b's `dog`."""
    (work / "refs").write_text("utt1 the cat feeds\nspk-b dog\n")
    out = rescore(work, "--refs", "refs", "compact.ark").splitlines()
    assert out[-3:] == ["original 1-best:  WER 50.00% [ 2 / 4, 0 ins, 0 del, 2 sub ]",
                        "rescored 1-best:  WER 50.00% [ 2 / 4, 0 ins, 0 del, 2 sub ]",
                        "oracle:           WER 0.00% [ 0 / 4, 0 ins, 0 del, 0 sub ]"]


def test_the_frame_shift_gives_the_audio_seconds(work):
    """utt1 ends at frame 9, spk-b at frame 2: 11 frames of 30 ms."""
    result = run_cli(RWTHLM_PY, "lattice", "--kaldi-words", "words.txt", "--lambda", 0, "--pruning-threshold", 0,
                     "--frame-shift", 0.03, "compact.ark", MODEL, cwd=work)
    assert result[0] == 0 and "rescored 2 lattices (0.33 s of audio)" in result[2]


def test_dependent_utterances_start_where_the_last_best_path_ended(work, model):
    """--dependent: spk-b's cost is that of `dog </s>` after utt1's best words and </s>."""
    network = build_network(read_model(model), get_backend("numpy", "float64"))
    costs = [float(line.split()[-1]) for line in rescore(work, "--dependent", "--lambda", 1, "--dp-order", 10,
                                                          "compact.ark").splitlines()
             if line.startswith("single best: ")]
    first = dict(line.split(maxsplit=1) for line in (work / "compact.ark.1best").read_text().splitlines())["utt1"]
    ids = [network.vocab.index[word] for word in first.split() + ["<sb>", "dog", "<sb>"]]
    log_probs = sentence_log_probs(network, ids)
    assert costs[1] == pytest.approx(7 + 3 + 1 - log_probs[-2:].sum(), rel=1e-5)
    alone = sentence_log_probs(network, ids[-2:])
    assert costs[1] != pytest.approx(7 + 3 + 1 - alone.sum(), rel=1e-5)



def test_disambiguation_symbols_and_the_sentence_start_are_never_scored(work, model):
    """`#0` and `<s>` (no transition ids: same frame) keep their graph costs, take no network
    step and pay no word penalty: the network scores the, cat and </s> in a row."""
    network = build_network(read_model(model), get_backend("numpy", "float64"))
    arcs = [(0, 1, "the", 1.0, 10.0, [1, 1]), (1, 2, "#0", 0.5, 0.0, []), (2, 3, "<s>", 0.25, 0.0, []),
            (3, 4, "cat", 2.0, 10.0, [2, 2])]
    (work / "symbols.ark").write_text(compact_archive({"utt": (arcs, {4: (0.0, 0.0, [])})}))
    result = run_cli(RWTHLM_PY, "lattice", "--kaldi-words", "words.txt", "--lambda", 1, "--pruning-threshold", 0,
                     "--dtype", "float64", "--word-penalty", 0.5, "symbols.ark", MODEL, cwd=work)
    assert result[0] == 0, result[2]
    cost = float(next(line for line in result[1].splitlines() if line.startswith("single best: ")).split()[-1])
    ids = [network.vocab.index[word] for word in ("the", "cat", "<sb>")]
    expected = 20 + 1 + 0.5 + 0.25 + 2 - sentence_log_probs(network, ids).sum() - 3 * 0.5 * math.log(10)
    assert cost == pytest.approx(expected, rel=1e-5)
    assert " s for 3 histories in " in result[2].strip().splitlines()[-1]


def test_the_utterances_of_an_archive_share_network_calls(work):
    """Searched side by side, the two utterances of compact.ark take fewer network calls
    than one after the other (--dependent, which must wait for each best path)."""
    calls = {}
    for dependent in ((), ("--dependent",)):
        result = run_cli(RWTHLM_PY, "lattice", "--kaldi-words", "words.txt", "--lambda", 1, "--pruning-threshold", 0,
                         *dependent, "compact.ark", MODEL, cwd=work)
        assert result[0] == 0, result[2]
        summary = result[2].strip().splitlines()[-1]
        calls[dependent] = int(summary.split(" histories in ")[1].split()[0].replace(",", ""))
    assert calls[()] < calls[("--dependent",)]
