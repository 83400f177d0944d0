"""--tie-weights (Press and Wolf 2017): the word projection E is the output's W_class, one
array with one gradient (both uses summed), checked by finite differences; saved once and
read back tied; refused, saying why, where it cannot apply."""

import subprocess
import sys

import numpy
import pytest

from rwthlm_py.errors import InputError
from rwthlm_py.model.checkpoint import TrainingState, build_network, read_model, save_model
from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.runtime.backend import get_backend
from rwthlm_py.text import data
from rwthlm_py.training.optim import Sgd
from rwthlm_py.training.selftest import gradient_checks, synthetic_corpus

TOLERANCE = 1e-6


def batches(vocab, count=2):
    corpus = synthetic_corpus(vocab, seed=5)
    return list(data.batches(corpus, data.wrap(corpus, "fixed", 3, 7), 3))[:count]


@pytest.mark.parametrize("spec_text", ["t-i4-m4", "t-l5-m3-m5", "t-r4-L4"])
def test_the_shared_gradient_is_the_sum_of_both_uses(float64, full_vocab, spec_text):
    network = Network.build(parse_network(spec_text), full_vocab, float64, seed=3, tie_weights=True)
    for value in network.named_params().values():
        value *= 3.0
    assert network.output.params["W_class"] is network.layers[0].params["E"]
    assert "output.W_class" not in network.named_params()
    warm_up, batch = batches(full_vocab)
    _, state = network.log_probs(warm_up)
    checks = {check.name: check for check in gradient_checks(network, batch, state, max_elements=10 ** 6)}
    assert "layer1.E" in checks and "output.W_class" not in checks
    for check in checks.values():
        assert check.error <= TOLERANCE, check.describe()


def test_a_step_moves_the_one_array_by_the_summed_gradient(full_vocab):
    backend = get_backend("numpy", "float64")
    tied = Network.build(parse_network("t-i4-m4"), full_vocab, backend, seed=3, tie_weights=True)
    batch = batches(full_vocab, 1)[0]
    tied.zero_grads()
    tied.accumulate_gradients(batch)
    expected = tied.layers[0].params["E"] - 0.1 * tied.layers[0].dense_grad("E")
    Sgd(tied, momentum=0.9).step(0.1)
    assert numpy.allclose(tied.layers[0].params["E"], expected, rtol=0, atol=1e-14)
    assert "layer1.E" not in Sgd(tied, momentum=0.9).buffers  # the projection's rule: no momentum


def test_saved_once_and_read_back_tied(tmp_path, full_vocab):
    backend = get_backend("numpy", "float64")
    network = Network.build(parse_network("t-i4-m4"), full_vocab, backend, seed=3, tie_weights=True)
    save_model(tmp_path / "t-i4-m4", network, Sgd(network, 0.5), TrainingState())
    model_file = read_model(tmp_path / "t-i4-m4")
    assert model_file.meta["tie_weights"] is True and "output.W_class" not in model_file.params
    loaded = build_network(model_file, backend)
    assert loaded.output.params["W_class"] is loaded.layers[0].params["E"]
    batch = batches(full_vocab, 1)[0]
    assert numpy.array_equal(loaded.log_probs(batch)[0], network.log_probs(batch)[0])
    assert Network.parameter_count(parse_network("t-i4-m4"), full_vocab, True, True) == network.num_params()


@pytest.mark.parametrize("spec_text, vocab_name, message", [
    ("t-i4-m4", "class_vocab", "needs a full softmax (every word its own class); this vocabulary has 9 classes"),
    ("t-i6-m4", "full_vocab", "the projection's size (6) equal to the last hidden layer's (4), e.g. t-i4-...-m4"),
    ("t-24-m4", "full_vocab", "needs a word projection first (i, l, L, r or R), not '2'"),
])
def test_refused_where_it_cannot_apply(request, spec_text, vocab_name, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Network(parse_network(spec_text), request.getfixturevalue(vocab_name), get_backend("numpy"),
                tie_weights=True)


def test_the_command_line_trains_tied_and_refuses_tying_a_model_built_untied(toy):
    def train(*args):
        return subprocess.run([sys.executable, "-m", "rwthlm_py", "train", "--train", "train.txt", "--dev", "dev.txt",
                               "--vocab", "vocab", "--batch-size", "8", "--learning-rate", "0.05", "--max-epoch", "1",
                               *args], cwd=toy, capture_output=True, text=True, timeout=300)

    assert train("--tie-weights", "tied-i8-m8").returncode == 0
    assert read_model(toy / "tied-i8-m8").meta["tie_weights"] is True
    assert train("plain-i8-m8").returncode == 0
    refused = train("--tie-weights", "--max-epoch", "2", "plain-i8-m8")
    assert refused.returncode == 1 and "the model was built without tied weights" in refused.stderr
    mismatched = train("--tie-weights", "other-i8-m6")
    assert mismatched.returncode == 1
    assert "projection's size (8) equal to the last hidden layer's (6)" in mismatched.stderr
