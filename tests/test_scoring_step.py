"""The lean scoring step (model/scoring_step.py) equals the network's own step: the same
log-probabilities and states as Network.next_word_log_probs, at real sizes (hundreds of
histories, classes of hundreds of words, thousands of targets), over several steps, with
and without the per-word table of the first layer; networks it does not apply to keep
the network's own step."""

import numpy
import pytest

from rwthlm_py.model import scoring_step
from rwthlm_py.model.network import Network, select_state
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.model.scoring_step import LeanStep
from rwthlm_py.runtime.backend import get_backend
from rwthlm_py.text.vocabulary import remap


@pytest.fixture(scope="module")
def big_vocab():
    """1,199 words and <sb>: a shortlist of 20 single-word classes, then classes of 5 to 400 words."""
    sizes = [1] * 20 + [5, 15, 40, 120, 200, 400, 399]
    classes = numpy.repeat(numpy.arange(len(sizes)), sizes)
    entries = [(f"w{k}", int(word_class)) for k, word_class in enumerate(classes)]
    vocab = remap(entries, "<sb>")
    vocab.unk = vocab.index["w1100"]
    assert max(vocab.class_size) > 300 and len(vocab) == 1200
    return vocab


def network_of(spec, vocab, seed=2, bias=True):
    network = Network.build(parse_network(spec), vocab, get_backend("numpy", "float64"), seed=seed, bias=bias)
    for value in network.named_params().values():
        value *= 4  # far from uniform, so that a wrong weight or state shows
    return network


def assert_same_steps(network, lean, vocab, histories=400, steps=3, seed=0):
    """Both ways step `histories` histories `steps` times from the zero state, each column
    asking for 3 words (4,800 targets a step at the default sizes), and agree."""
    rng = numpy.random.default_rng(seed)
    state = lean_state = None
    for _ in range(steps):
        inputs = rng.integers(0, len(vocab), histories).tolist()
        columns = numpy.repeat(numpy.arange(histories), 3)
        targets = rng.integers(0, len(vocab), len(columns))
        expected, expected_state = network.next_word_log_probs(inputs, state, columns, targets, 0.7)
        found, found_state = lean.next_word_log_probs(inputs, lean_state, columns, targets, 0.7)
        assert numpy.asarray(found) == pytest.approx(numpy.asarray(expected), rel=1e-12, abs=1e-12)
        for expected_layer, found_layer in zip(expected_state, found_state, strict=True):
            if expected_layer is None:
                assert found_layer is None
                continue
            for expected_part, found_part in zip(expected_layer, found_layer, strict=True):
                assert numpy.asarray(found_part) == pytest.approx(expected_part, rel=1e-12, abs=1e-12)
        # carry on from a shuffled selection of the columns, as a search does
        order = rng.integers(0, histories, histories)
        state, lean_state = select_state(expected_state, order), select_state(found_state, order)


@pytest.mark.parametrize("spec, bias", [("t-i12-m10", True), ("t-i8-m9-m7", True), ("t-l10-m6", True),
                                        ("t-i8-m9-m7", False)])
def test_the_lean_step_equals_the_networks_step(big_vocab, spec, bias):
    network = network_of(spec, big_vocab, bias=bias)
    lean = scoring_step.scoring_step(network)
    assert isinstance(lean, LeanStep) and lean.table is not None  # the per-word table in use
    assert_same_steps(network, lean, big_vocab)


def test_without_the_first_layers_table_the_lean_step_is_the_same(big_vocab, monkeypatch):
    monkeypatch.setattr(scoring_step, "FIRST_LAYER_TABLE_BYTES", 0)
    network = network_of("t-i12-m10", big_vocab)
    lean = LeanStep(network)
    assert lean.table is None
    assert_same_steps(network, lean, big_vocab, histories=50)


def test_a_step_of_one_history_with_one_target_is_the_same(big_vocab):
    network = network_of("t-i12-m10", big_vocab)
    lean = LeanStep(network)
    for target in (3, 1100, 1199, big_vocab.sb):  # shortlist, <unk>, the largest class, <sb>
        expected, _ = network.next_word_log_probs([5], None, [0], [target], 0.7)
        found, _ = lean.next_word_log_probs([5], None, [0], [target], 0.7)
        assert found == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("spec", ["t-36-m5", "t-r6-m4", "t-i6-l5-m4", "t-i6-m5-l4"])
def test_networks_the_lean_step_does_not_cover_keep_their_own_step(big_vocab, spec):
    network = network_of(spec, big_vocab)
    assert scoring_step.scoring_step(network) is network
