"""The three outputs of lattice rescoring against golden files, on a lattice small enough
to check by hand (tests/golden/lattice/), and the same outputs batched and one at a time.

The lattice (a, l natural logs; lambda 0, so the new LM scores are the lattice's own, and
the network only runs; lm-scale 1; dp-order 1; no beam):

    0 -the(-10,-1)-> 1 -cat(-30,-2)--> 2 -!NULL(-1,0)-> 3 -sees(-20,-1.5)-> 4 -</s>(0,-0.5)-> 5
                       -dog(-29,-2.5)->  -feeds(-25,-1) ----------------->

Costs: the 11; at node 2 via cat 43, via dog 42.5 (different last words: both kept);
node 3 (!NULL, no LM score) 44 and 43.5; node 4 via sees 65.5 (cat) and 65 (dog), which
share the last word `sees` and recombine to 65, and via feeds 69 and 68.5, recombined to
68.5; node 5: 65.5 and 69. The single best is the dog sees </s> at 65.5; every link keeps
its l (written %f), the CTM has the, dog and sees, and the expanded lattice has a node per
surviving hypothesis, with the recombined ones (cat sees, cat feeds) led to the survivor.
"""

import io
import math
import pathlib

import numpy
import pytest
from conftest import HAND_LATTICE as LATTICE

from rwthlm_py.commands import lattice_rescoring
from rwthlm_py.config import Options
from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.output.reporting import Console
from rwthlm_py.rescoring.lattice_command import rescore_lattices
from rwthlm_py.runtime.backend import get_backend
from rwthlm_py.text.vocabulary import remap

GOLDEN = pathlib.Path(__file__).parent / "golden" / "lattice"
OUTPUTS = {"lattice": "hand.lat.rescored", "ctm": "hand.lat.ctm", "expanded-lattice": "hand.lat.rescored"}


def rescore(tmp_path, output, batch_size=None, lam=0.0):
    vocab = remap([(word, k) for k, word in enumerate(["the", "cat", "dog", "sees", "feeds"])], "<sb>")
    network = Network.build(parse_network("t-i5-m4"), vocab, get_backend("numpy", "float64"), seed=1)
    (tmp_path / "hand.lat").write_text(LATTICE)
    console = Console(out=io.StringIO(), err=io.StringIO())
    rescoring = lattice_rescoring(Options(lam=lam, pruning_threshold=0.0, dp_order=1, set_sb_last=True, output=output),
                                  batch_size)
    status = rescore_lattices(network, [str(tmp_path / "hand.lat")], rescoring, console)
    assert status == 0, console.err.getvalue()
    written = (tmp_path / OUTPUTS[output]).read_text()
    return console.out.getvalue().replace(str(tmp_path) + "/", ""), written.replace(str(tmp_path) + "/", "")


@pytest.mark.parametrize("output", OUTPUTS)
def test_the_outputs_equal_the_golden_files(tmp_path, output):
    printed, written = rescore(tmp_path, output)
    assert printed == (GOLDEN / "stdout.txt").read_text()
    assert written == (GOLDEN / output).read_text()


@pytest.mark.parametrize("output", OUTPUTS)
def test_batched_and_one_at_a_time_write_the_same_bytes(tmp_path, output):
    """With the network's weight in play (float64)."""
    for name in ("batched", "one-by-one"):
        (tmp_path / name).mkdir()
    assert rescore(tmp_path / "batched", output, None, lam=0.6) == rescore(tmp_path / "one-by-one", output, 1, lam=0.6)


def linear_lattice(path, words):
    """A lattice spelling `words` (no acoustic scores, every LM score -1), then <sb>."""
    spelled = words + ["<sb>"]
    lines = [f"N={len(spelled) + 1} L={len(spelled)}"] + [f"I={k} t={k / 10:.2f}" for k in range(len(spelled) + 1)]
    lines += [f"J={k} S={k} E={k + 1} W={word} a=0 l=-1" for k, word in enumerate(spelled)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_dependent_lattices_carry_the_state_of_the_best_path(tmp_path):
    """--dependent: the second lattice starts where the first one's best path ended, so
    its cost is that of its words after the first lattice's words and <sb>."""
    from rwthlm_py.text import data

    vocab = remap([(word, k) for k, word in enumerate(["the", "cat", "dog", "sees", "feeds"])], "<sb>")
    network = Network.build(parse_network("t-i5-m4"), vocab, get_backend("numpy", "float64"), seed=1)
    first, second = ["the", "cat", "sees"], ["the", "dog"]
    paths = [linear_lattice(tmp_path / "a.lat", first), linear_lattice(tmp_path / "b.lat", second)]
    costs = {}
    for dependent in (False, True):
        console = Console(out=io.StringIO(), err=io.StringIO())
        rescoring = lattice_rescoring(Options(lam=1.0, pruning_threshold=0.0, dependent=dependent))
        assert rescore_lattices(network, paths, rescoring, console) == 0
        costs[dependent] = [float(line.split()[-1]) for line in console.out.getvalue().splitlines()
                            if line.startswith("single best: ")]
    ids = [vocab.index[word] for word in first] + [vocab.sb] + [vocab.index[word] for word in second] + [vocab.sb]
    stream = numpy.array(ids, dtype=numpy.int32)
    context = numpy.array([vocab.sb] + ids[:-1], dtype=numpy.int32)
    batch = data.make_batch(stream, context, numpy.array([0]), numpy.array([len(ids)]))
    log_probs = network.log_probs(batch)[0]
    assert costs[True][0] == costs[False][0] == pytest.approx(-log_probs[:len(first) + 1].sum(), rel=1e-5)
    assert costs[True][1] == pytest.approx(-log_probs[len(first) + 1:].sum(), rel=1e-5)
    assert costs[True][1] != pytest.approx(costs[False][1], rel=1e-5)


@pytest.mark.parametrize("dependent", [False, True])
def test_an_empty_utterances_lattice_is_the_empty_path(tmp_path, dependent):
    """A lattice of one node and no links (a decoder's empty utterance) has the empty path,
    of cost 0: its rescored lattice is itself, its ctm is empty, and a lattice after it
    (with --dependent too: it passes on the state it was given) is rescored as without it."""
    vocab = remap([(word, k) for k, word in enumerate(["the", "cat", "dog", "sees", "feeds"])], "<sb>")
    network = Network.build(parse_network("t-i5-m4"), vocab, get_backend("numpy", "float64"), seed=1)
    empty = "VERSION=1.0\nUTTERANCE=empty\nN=1 L=0\nI=0 t=0.00\n"
    (tmp_path / "empty.lat").write_text(empty)
    paths = [linear_lattice(tmp_path / "a.lat", ["the", "cat"]), str(tmp_path / "empty.lat"),
             linear_lattice(tmp_path / "b.lat", ["the", "dog"])]
    printed = {}
    for output in ("lattice", "ctm"):
        console = Console(out=io.StringIO(), err=io.StringIO())
        rescoring = lattice_rescoring(Options(lam=1.0, pruning_threshold=0.0, dependent=dependent, output=output))
        assert rescore_lattices(network, paths, rescoring, console) == 0, console.err.getvalue()
        printed[output] = console.out.getvalue().replace(str(tmp_path) + "/", "")
    assert (tmp_path / "empty.lat.rescored").read_text() == empty
    assert (tmp_path / "empty.lat.ctm").read_text() == ""
    assert "lattice 'empty.lat' ...\nsingle best: 0\nlattice 'b.lat'" in printed["lattice"]
    console = Console(out=io.StringIO(), err=io.StringIO())
    rescoring = lattice_rescoring(Options(lam=1.0, pruning_threshold=0.0, dependent=dependent))
    assert rescore_lattices(network, [paths[0], paths[2]], rescoring, console) == 0
    without = console.out.getvalue().replace(str(tmp_path) + "/", "")
    assert printed["lattice"].replace("lattice 'empty.lat' ...\nsingle best: 0\n", "") == without


def test_initial_links_cleared_and_the_links_before_the_last_relabelled(tmp_path):
    """RWTH ASR lattices: an initial epsilon link at t=0 with scores, the sentence end as an
    LM-scored unknown word before a last silence link without LM score."""
    text = ("N=5 L=4\nI=0 t=0.00\nI=1 t=0.00\nI=2 t=0.30\nI=3 t=0.50\nI=4 t=0.60\n"
            "J=0 S=0 E=1 W=[start] v=1 a=-3.0 l=-2.0\nJ=1 S=1 E=2 W=cat v=1 a=-10.0 l=-1.0\n"
            "J=2 S=2 E=3 W=[end] v=1 a=0 l=-0.5\nJ=3 S=3 E=4 W=[silence] v=1 a=-4.0 l=0\n")
    (tmp_path / "rwth.lat").write_text(text)
    vocab = remap([(word, k) for k, word in enumerate(["the", "cat"])], "<sb>")
    network = Network.build(parse_network("t-i5-m4"), vocab, get_backend("numpy", "float64"), seed=1)
    console = Console(out=io.StringIO(), err=io.StringIO())
    rescoring = lattice_rescoring(Options(lam=1.0, pruning_threshold=0.0, clear_initial_links=True,
                                          set_sb_next_to_last=True))
    assert rescore_lattices(network, [str(tmp_path / "rwth.lat")], rescoring, console) == 0, console.err.getvalue()
    out = console.out.getvalue().splitlines()
    assert "Setting score of initial epsilon link 0 to zero!" in out
    assert "Setting final epsilon link 2 to <sb>!" in out
    written = (tmp_path / "rwth.lat.rescored").read_text().splitlines()
    assert written[6] == "J=0 S=0 E=1 W=[start] v=1 a=0.0 l=0.000000"
    assert written[9].startswith("J=3 S=3 E=4 W=[silence] v=1 a=-4.0 l=0.000000")
    (tmp_path / "silence.lat").write_text("N=3 L=2\nI=0 t=0\nI=1 t=0.3\nI=2 t=0.5\n"
                                          "J=0 S=0 E=1 W=cat a=-1 l=-1\nJ=1 S=1 E=2 W=[silence] a=-4 l=0\n")
    console = Console(out=io.StringIO(), err=io.StringIO())
    rescoring = lattice_rescoring(Options(lam=1.0, pruning_threshold=0.0, set_sb_last=True))
    assert rescore_lattices(network, [str(tmp_path / "silence.lat")], rescoring, console) == 1
    assert "silence.lat:6: link 1 ('[silence]') cannot become the sentence boundary" in console.err.getvalue()


def test_the_n_best_distinct_word_sequences_as_an_srilm_list(tmp_path):
    """On the hand-checked lattice (docstring): the dog sees (65.5), the cat sees (66: its
    hypothesis was recombined, its expanded link leads on from the dog's), the dog feeds
    (69), the cat feeds (69.5); scores in log10, the sentence boundary's LM score counted."""
    from rwthlm_py.rescoring.nbest import read_srilm_list

    vocab = remap([(word, k) for k, word in enumerate(["the", "cat", "dog", "sees", "feeds"])], "<sb>")
    network = Network.build(parse_network("t-i5-m4"), vocab, get_backend("numpy", "float64"), seed=1)
    (tmp_path / "hand.lat").write_text(LATTICE)
    console = Console(out=io.StringIO(), err=io.StringIO())
    rescoring = lattice_rescoring(Options(lam=0.0, pruning_threshold=0.0, dp_order=1, set_sb_last=True, nbest_size=10))
    assert rescore_lattices(network, [str(tmp_path / "hand.lat")], rescoring, console) == 0, console.err.getvalue()
    lines = (tmp_path / "hand.lat.nbest").read_text().splitlines()
    ln10 = math.log(10)
    expected = [(-60.0, -5.5, "the dog sees"), (-61.0, -5.0, "the cat sees"), (-64.0, -5.0, "the dog feeds"),
                (-65.0, -4.5, "the cat feeds")]
    assert lines == [f"{a / ln10:.7g} {lm / ln10:.7g} 3 {words}" for a, lm, words in expected]
    assert [h.words for h in read_srilm_list(tmp_path / "hand.lat.nbest").hypotheses][0] == ["the", "dog", "sees"]


def test_the_n_best_paths_are_ranked_with_the_acoustic_scale(tmp_path):
    """With --acoustic-scale 0.1 the hand lattice's paths cost 0.1 a + l: the cat feeds 11.0,
    the cat sees 11.1, the dog feeds 11.4, the dog sees 11.5."""
    from rwthlm_py.rescoring.nbest import read_srilm_list

    vocab = remap([(word, k) for k, word in enumerate(["the", "cat", "dog", "sees", "feeds"])], "<sb>")
    network = Network.build(parse_network("t-i5-m4"), vocab, get_backend("numpy", "float64"), seed=1)
    (tmp_path / "hand.lat").write_text(LATTICE)
    console = Console(out=io.StringIO(), err=io.StringIO())
    rescoring = lattice_rescoring(Options(lam=0.0, pruning_threshold=0.0, dp_order=1, set_sb_last=True,
                                          nbest_size=10, acoustic_scale=0.1))
    assert rescore_lattices(network, [str(tmp_path / "hand.lat")], rescoring, console) == 0, console.err.getvalue()
    ranked = [" ".join(h.words) for h in read_srilm_list(tmp_path / "hand.lat.nbest").hypotheses]
    assert ranked == ["the cat feeds", "the cat sees", "the dog feeds", "the dog sees"]
