"""A lattice's oracle path (rwthlm_py.rescoring.lattice_oracle) against every path's edit
distance, and the word error rates of `rwthlm-py lattice --refs`."""

import numpy
import pytest
from conftest import HAND_LATTICE
from test_lattice_search import all_paths, random_lattice

from rwthlm_py.rescoring.htk_lattice import EPSILON, read_lattice
from rwthlm_py.rescoring.lattice_oracle import oracle_words, viterbi_links
from rwthlm_py.rescoring.lattice_topology import lattice_topology
from rwthlm_py.text.vocabulary import remap


def edit_distance(reference, words):
    row = list(range(len(words) + 1))
    for i, expected in enumerate(reference, start=1):
        previous, row[0] = row[0], i
        for j, word in enumerate(words, start=1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (word != expected))
    return row[-1]


def counted(link):
    return None if link.word in (EPSILON, "<sb>") or link.lm == 0 else link.word


@pytest.mark.parametrize("seed", range(8))
def test_the_oracle_has_the_fewest_errors_of_all_paths(tmp_path, seed):
    vocab = remap([(f"w{k}", k % 4) for k in range(9)], "<sb>")
    lattice = random_lattice(tmp_path, vocab, seed, layers=5, width=3)
    topology = lattice_topology(lattice)
    rng = numpy.random.default_rng(seed)
    reference = [f"w{k}" for k in rng.integers(0, 9, size=int(rng.integers(2, 7)))]
    words = oracle_words(lattice, topology, reference, counted)
    fewest = min(edit_distance(reference, [w for w in (counted(lattice.links[k]) for k in path) if w])
                 for path in all_paths(lattice, topology))
    assert edit_distance(reference, words) == fewest
    assert any([w for w in (counted(lattice.links[k]) for k in path) if w] == words
               for path in all_paths(lattice, topology))


def hand_lattice(tmp_path):
    (tmp_path / "hand.lat").write_text(HAND_LATTICE)
    lattice = read_lattice(tmp_path / "hand.lat")
    return lattice, lattice_topology(lattice)


def test_the_lattices_own_best_path_pays_the_word_penalty_only_on_lm_scored_links(tmp_path):
    """The hand lattice (tests/test_lattice_outputs.py): the dog !NULL sees </s> costs 65.5
    and the dog feeds </s> 69, both with four LM-scored links; a word penalty of -4 on the
    !NULL link too would make them 85.5 and 85."""
    lattice, topology = hand_lattice(tmp_path)
    best = viterbi_links(lattice, topology, word_penalty=-4.0)
    assert [lattice.links[k].word for k in best] == ["the", "dog", "!NULL", "sees", "</s>"]
    scaled = viterbi_links(lattice, topology, acoustic_scale=0.1)  # 0.1 a + l: the cat feeds 11.0 is the least
    assert [lattice.links[k].word for k in scaled] == ["the", "cat", "feeds", "</s>"]
