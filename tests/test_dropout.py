"""Dropout masks (dropout.py): Bernoulli keeps scaled by 1/(1-p), one mask for all
time steps when variational, drawn from the key alone; training uses them, scoring never;
the self-test checks the gradients with them."""

import io

import numpy
import pytest

from rwthlm_py.commands import selftest_settings
from rwthlm_py.config import Options
from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.output.reporting import Console
from rwthlm_py.runtime.backend import get_backend
from rwthlm_py.text import data
from rwthlm_py.training.dropout import DropoutMasks
from rwthlm_py.training.optim import Sgd
from rwthlm_py.training.selftest import builtin_self_test, synthetic_corpus
from rwthlm_py.training.train import Schedule, train_batch

BACKEND = get_backend("numpy")


@pytest.mark.parametrize("probability", [0.2, 0.5, 0.65])
def test_masks_keep_one_minus_p_and_scale_by_its_inverse(probability):
    mask = DropoutMasks(probability, False, (1, 0, 1), BACKEND).mask(0, (50, 40, 100))
    assert mask.dtype == numpy.float32 and mask.shape == (50, 40, 100)
    values = set(numpy.unique(mask).tolist())
    assert values == {0.0, numpy.float32(1 / (1 - probability))}
    kept = (mask > 0).mean()
    assert abs(kept - (1 - probability)) < 4 * numpy.sqrt(probability * (1 - probability) / mask.size)
    assert abs(mask.mean() - 1.0) < 0.02  # inverted scaling keeps the expected output


def test_variational_masks_are_one_mask_for_every_time_step():
    mask = DropoutMasks(0.5, True, (1, 0, 1), BACKEND).mask(0, (35, 8, 20))
    assert mask.shape == (1, 8, 20)


def test_masks_depend_on_the_key_and_layer_alone():
    def mask(key, layer=0, probability=0.5):
        return DropoutMasks(probability, False, key, BACKEND).mask(layer, (5, 4, 6))

    assert numpy.array_equal(mask((7, 2, 3)), mask((7, 2, 3)))
    others = [mask((8, 2, 3)), mask((7, 3, 3)), mask((7, 2, 4)), mask((7, 2, 3), layer=1)]
    assert not any(numpy.array_equal(mask((7, 2, 3)), other) for other in others)
    sliced = DropoutMasks(0.5, False, (7, 2, 3), BACKEND).for_slice(4)
    assert sliced.key == (7, 2, 3, 4)


def test_a_probability_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError):
        DropoutMasks(1.0, False, (1,), BACKEND)


def test_schedule_draws_masks_by_seed_epoch_and_batch():
    schedule = Schedule(random_seed=9, dropout=0.25, variational_dropout=True)
    masks = schedule.dropout_masks(BACKEND, 3, 17)
    assert (masks.key, masks.probability, masks.variational) == ((9, 3, 17), 0.25, True)
    assert Schedule(dropout=0.0).dropout_masks(BACKEND, 3, 17) is None


def test_training_drops_with_the_masks_and_p_zero_is_no_dropout(class_vocab):
    corpus = synthetic_corpus(class_vocab, seed=3)
    batch = next(data.batches(corpus, data.wrap(corpus, "fixed", 4, 8), 4))

    def trained(dropout):
        network = Network.build(parse_network("t-i6-m5"), class_vocab, BACKEND, seed=2)
        loss, _ = train_batch(network, Sgd(network), batch, None, 0.1, dropout=dropout)
        return network, loss

    plain, plain_loss = trained(None)
    dropped, dropped_loss = trained(DropoutMasks(0.5, False, (1, 0, 1), BACKEND))
    assert plain_loss != dropped_loss
    assert not numpy.array_equal(plain.named_params()["layer1.E"], dropped.named_params()["layer1.E"])
    _, zero_loss = trained(DropoutMasks(0.0, False, (1, 0, 1), BACKEND))
    assert zero_loss == plain_loss


def run_builtin_self_test(network, **settings):
    out = io.StringIO()
    status = builtin_self_test(selftest_settings(Options(**settings)), network, Console(out=out, err=io.StringIO()))
    return status, out.getvalue()


@pytest.mark.parametrize("variational", [False, True])
def test_selftest_checks_the_gradients_with_dropout_masks(variational):
    status, out = run_builtin_self_test("t-i5-m4-m3", dropout=0.5, variational_dropout=variational)
    assert status == 0 and out.count("Testing gradient implementation with dropout 0.5 ...") == 2


def test_selftest_with_dropout_fails_when_the_masks_change_between_evaluations(monkeypatch):
    """Masks that differ from one forward pass to the next make the numerical derivative
    disagree with the analytic one, so the check does apply the masks it reports."""
    draws = iter(range(1, 10 ** 6))
    original = DropoutMasks.mask

    def changing_mask(self, layer_index, shape):
        self.key = self.key[:2] + (next(draws),)
        return original(self, layer_index, shape)

    monkeypatch.setattr(DropoutMasks, "mask", changing_mask)
    status, out = run_builtin_self_test("t-i5-m4", dropout=0.5)
    assert status == 1 and "Gradient test FAILED" in out
    status, out = run_builtin_self_test("t-i5-m4")
    assert status == 0 and "with dropout" not in out
