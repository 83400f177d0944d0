"""Dropout masks (dropout.py): Bernoulli keeps scaled by 1/(1-p), one mask for all
time steps when variational, drawn from the key alone by Philox4x32-10 (kernels/dropout.py,
checked against Random123's known answers), the same on the numpy body and on the CUDA
kernel; training uses them, scoring never; the self-test checks the gradients with them."""

import io

import numpy
import pytest

from rwthlm_py.commands import selftest_settings
from rwthlm_py.config import Options
from rwthlm_py.kernels.dropout import keep_threshold, philox4x32_10
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
    assert abs(kept - (1 - probability)) < 6 * numpy.sqrt(probability * (1 - probability) / mask.size)
    assert abs(mask.mean() - 1.0) < 0.02  # inverted scaling keeps the expected output


# Random123's kat_vectors, "philox4x32 10": counter (4 words), key (2 words), the 4 words out.
PHILOX_KNOWN_ANSWERS = [
    ((0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000),
     (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF),
     (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter, key, expected", PHILOX_KNOWN_ANSWERS)
def test_philox_gives_random123s_known_answers(counter, key, expected):
    assert [int(word) for word in philox4x32_10(counter, key)] == list(expected)


def test_philox_on_arrays_gives_each_counters_own_words():
    counters = [numpy.array([0, 0xFFFFFFFF, 0x243F6A88, 7], dtype=numpy.uint32)[:, None],
                numpy.array([0, 0xFFFFFFFF, 0x85A308D3, 1], dtype=numpy.uint32)[None, :], 0x13198A2E, 3]
    words = philox4x32_10(counters, (0xA4093822, 0x299F31D0))
    assert all(word.shape == (4, 4) and word.dtype == numpy.uint32 for word in words)
    for i in range(4):
        for j in range(4):
            alone = philox4x32_10((counters[0][i, 0], counters[1][0, j], 0x13198A2E, 3), (0xA4093822, 0x299F31D0))
            assert [int(word[i, j]) for word in words] == [int(word) for word in alone]


def test_each_element_is_kept_by_the_philox_word_of_its_position():
    """Element (t, b, u) of columns [2, 7) of a batch of 9: word u % 4 of the counter
    (u // 4, 2 + b, t, 0), under the layer's key, against ceil(p 2^32)."""
    masks = DropoutMasks(0.3, False, (5, 1, 8), get_backend("numpy", "float64")).for_columns(2, 7, 3, 9)
    mask = masks.mask(1, (3, 5, 7))
    key, threshold = masks.generator_key(1), keep_threshold(0.3)
    assert threshold == 1288490189  # ceil(0.3 * 2^32)
    for (t, b, u), value in numpy.ndenumerate(mask):
        word = int(philox4x32_10((u // 4, 2 + b, t, 0), key)[u % 4])
        assert value == (1 / 0.7 if word >= threshold else 0.0), (t, b, u)


def test_the_key_holds_the_seeds_64_bits_epoch_batch_slice_and_layer():
    def key(parts, layer=0):
        return DropoutMasks(0.5, False, parts, BACKEND).generator_key(layer)

    keys = [key((7, 2, 3)), key((7 + 2 ** 32, 2, 3)), key((7, 3, 3)), key((7, 2, 4)), key((7, 2, 3, 0)),
            key((7, 2, 3, 1)), key((7, 2, 3), layer=1), key((8, 2, 3))]
    assert len(set(keys)) == len(keys) and key((7, 2, 3)) == key((7, 2, 3))
    for parts in [(7, -1, 3), (7, 2, 2 ** 32), (7,), (7, 2, 3, 4, 5)]:
        with pytest.raises(ValueError, match="dropout key"):
            key(parts)


@pytest.mark.parametrize("variational", [False, True])
def test_applying_a_mask_multiplies_by_the_mask_drawn_alone(variational):
    masks = DropoutMasks(0.4, variational, (3, 1, 6), BACKEND)
    x = numpy.random.default_rng(0).standard_normal((7, 5, 10)).astype(numpy.float32)
    before = x.copy()
    dropped, mask = masks.apply(1, x)
    assert numpy.array_equal(mask, masks.mask(1, x.shape)) and numpy.array_equal(x, before)
    assert numpy.array_equal(dropped, x * mask) and 0 < (dropped == 0).mean() < 1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("variational", [False, True])
def test_the_cuda_kernel_draws_the_numpy_bodys_masks_without_a_copy(cuda_backend, dtype, variational):
    """Bit for bit, in every thread order, past one block of threads (11 x 9 x 4 threads of
    four units), for a whole batch and a block of its columns, drawn alone or applied to a
    layer's output; a launch each, nothing copied to the device."""
    device, host = cuda_backend(dtype), get_backend("numpy", dtype)
    x = numpy.random.default_rng(1).standard_normal((11, 9, 13)).astype(dtype)
    on_device_x = device.asarray(x)
    for backend_masks in (lambda b: DropoutMasks(0.4, variational, (3, 1, 6), b),
                          lambda b: DropoutMasks(0.4, variational, (3, 1, 6), b).for_columns(4, 13, 11, 13)):
        counts = getattr(device.xp, "counts", None)
        if counts is not None:
            counts.clear()
        on_device = backend_masks(device).mask(2, x.shape)
        dropped, applied = backend_masks(device).apply(2, on_device_x)
        if counts is not None:
            assert (counts.total("launches"), counts.total("copies"), counts.total("waits")) == (2, 0, 0)
        expected = backend_masks(host).mask(2, x.shape)
        assert expected.shape == ((1 if variational else 11), 9, 13) and expected.dtype == numpy.dtype(dtype)
        assert 0 < (expected > 0).mean() < 1
        assert numpy.array_equal(device.to_numpy(on_device), expected)
        assert numpy.array_equal(device.to_numpy(applied), expected)
        assert numpy.array_equal(device.to_numpy(dropped), x * expected)


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
    original = DropoutMasks.generator_key

    def changing_key(self, layer_index):
        self.key = self.key[:2] + (next(draws),)
        return original(self, layer_index)

    monkeypatch.setattr(DropoutMasks, "generator_key", changing_key)
    status, out = run_builtin_self_test("t-i5-m4", dropout=0.5)
    assert status == 1 and "Gradient test FAILED" in out
    status, out = run_builtin_self_test("t-i5-m4")
    assert status == 0 and "with dropout" not in out
