"""What a GPU would be asked to do, counted by the strict cupy double: kernel launches per
time step of the LSTM, host-to-device copies inside the time loop, operand copies before
matrix products, waits for the device per batch, and the whole budget of a batch of a
2x650 LSTM (B=64, T=35, V=10,000, 100 classes) with the CUDA kernels run on the CPU."""

import copy

import numpy
import pytest

from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.output.reporting import read_numbers
from rwthlm_py.runtime.backend import get_backend
from rwthlm_py.testing import cuda_on_cpu
from rwthlm_py.testing.strict_cupy import strict_backend
from rwthlm_py.text import data
from rwthlm_py.text.vocabulary import remap
from rwthlm_py.training.dropout import DropoutMasks
from rwthlm_py.training.optim import Sgd
from rwthlm_py.training.train import train_batch

LAYERS = 2
B = 6


def batch_of(vocab, steps, seed=0, batch_size=B):
    rng = numpy.random.default_rng(seed)
    stream = rng.integers(0, len(vocab), size=(steps + 1) * batch_size * 2).astype(numpy.int32)
    context = numpy.concatenate([[vocab.sb], stream]).astype(numpy.int32)
    starts = numpy.arange(batch_size) * (steps + 1)
    return data.make_batch(stream, context, starts, starts + steps)


def counted(steps, mode, clipping=None, vocab_size=60, classes=7, size=8, batch_size=B, cuda_kernels=False,
            dropout=0.0):
    """The strict double's counts for one batch of `steps` steps (after one batch of warm-up)."""
    return two_batches(strict_backend(cuda_kernels=cuda_kernels), steps, mode, clipping, vocab_size, classes, size,
                       batch_size, dropout)["counts"]


def two_batches(backend, steps, mode, clipping=None, vocab_size=60, classes=7, size=8, batch_size=B, dropout=0.0):
    """Two batches trained on (momentum 0.5; with `dropout` P, with the masks of batches 1
    and 2 of epoch 1) or scored: the strict double's counts of the second ("counts", None
    on numpy), and what each gave: -sum ln p of each batch trained on and the change of
    the first LSTM's R and of W_word ("losses", "updates"), or log p of the second batch
    scored ("logp")."""
    vocab = remap([(f"w{k}", k % classes) for k in range(vocab_size)], "<sb>")
    network = Network.build(parse_network(f"b-i{size}" + f"-m{size}" * LAYERS), vocab, backend, seed=1)
    optimizer = Sgd(network, momentum=0.5)
    counts = None if backend.on_host else backend.xp.counts
    before = {name: backend.to_numpy(network.named_params()[name]).copy() for name in UPDATED}
    result = {"losses": []}
    for seed in (1, 2):
        if counts is not None:
            counts.clear()
        batch = batch_of(vocab, steps, seed, batch_size)
        if mode == "train":  # the losses read once both batches are counted, as the progress line does
            masks = DropoutMasks(dropout, False, (1, 1, seed), backend) if dropout else None
            result["losses"].append(train_batch(network, optimizer, batch, None, 0.01, clipping=clipping,
                                                dropout=masks, read_loss=False)[0])
        else:
            result["logp"] = backend.to_numpy(network.log_probs(batch)[0])
    result["counts"] = None if counts is None else copy.deepcopy(counts)
    result["losses"] = read_numbers(result["losses"])
    result["updates"] = {name: backend.to_numpy(network.named_params()[name]) - before[name] for name in UPDATED}
    return result


UPDATED = ("layer2.R", "output.W_word")


def lstm_sites(counter):
    return sum(number for site, number in counter.items() if site.startswith("lstm.py"))


def dropout_sites(counter):
    return sum(number for site, number in counter.items() if site.startswith("dropout.py"))


def added_at(sites, plain, dropped):
    """Launches that dropout added at call sites in the files `sites`."""
    return sum(number - plain.launches[site] for site, number in dropped.launches.items()
               if site.split(":")[0] in sites)


@pytest.mark.parametrize("mode, per_step", [("train", 4), ("score", 2)])
def test_the_lstm_launches_two_kernels_per_step_each_way(mode, per_step):
    """Forward one product and one fused kernel per step, backward the same."""
    short, long = counted(8, mode), counted(16, mode)
    added = lstm_sites(long.launches) - lstm_sites(short.launches)
    assert added <= per_step * 8 * LAYERS, long.launches
    assert lstm_sites(short.launches) <= per_step * 8 * LAYERS + 40 * LAYERS  # and what runs once


@pytest.mark.parametrize("mode", ["train", "score"])
def test_nothing_crosses_from_the_host_inside_the_time_loop(mode):
    short, long = counted(8, mode), counted(16, mode)
    assert long.total("copies") == short.total("copies"), long.copies
    assert lstm_sites(long.waits) == 0
    assert lstm_sites(long.operand_copies) == 0, long.operand_copies


HIDDEN_LAYERS = 1 + LAYERS  # the projection and the LSTMs, each output dropped


@pytest.mark.parametrize("cuda_kernels", [False, pytest.param(True, marks=pytest.mark.skipif(
    cuda_on_cpu.compiler() is None, reason="needs a C++ compiler (g++) to run the CUDA kernels"))])
def test_dropout_draws_its_masks_on_the_device(cuda_kernels):
    """A launch per hidden layer draws its mask and drops the layer's output (the numpy
    body, launched from dropout.py, or the CUDA kernel, launched from cuda.py), and the
    backward pass applies the mask in one more: no copy from the host, no wait, at most
    two launches per layer added, however long the batch."""
    for steps in (8, 16):
        plain, dropped = counted(steps, "train", cuda_kernels=cuda_kernels), counted(
            steps, "train", cuda_kernels=cuda_kernels, dropout=0.5)
        assert added_at({"dropout.py", "cuda.py"}, plain, dropped) == HIDDEN_LAYERS, dropped.launches
        assert dropped.total("launches") - plain.total("launches") <= 2 * HIDDEN_LAYERS, dropped.summary()
        assert (dropped.total("copies"), dropped.total("waits")) == (plain.total("copies"), plain.total("waits"))
        assert dropout_sites(dropped.copies) == dropout_sites(dropped.waits) == 0


def test_a_training_batch_waits_for_nothing():
    """The gradient norm and the clipping factor stay on the device, and the loss is left
    there unread (the progress line reads it when it shows a figure): a training batch,
    with clipping or without, waits for the device nowhere."""
    plain, clipped = counted(8, "train"), counted(8, "train", clipping=0.1)
    assert clipped.total("waits") == plain.total("waits") == 0, (plain.waits, clipped.waits)


@pytest.mark.slow
@pytest.mark.skipif(cuda_on_cpu.compiler() is None, reason="needs a C++ compiler (g++) to run the CUDA kernels")
@pytest.mark.parametrize("mode, clipping, dropout, batch_size, against_numpy", [
    ("train", None, 0.5, 64, False), ("train", 1.0, 0.0, 64, True), ("train", 1.0, 0.5, 64, False),
    ("train", None, 0.5, 16, True),
    ("score", None, 0.0, 64, False), ("score", None, 0.0, 1, True)])
def test_a_2x650_batch_keeps_the_budget(mode, clipping, dropout, batch_size, against_numpy):
    """At most 400 launches per batch, no operand copies, no wait in training (the loss is
    read later) and one in scoring (the caller's reading of log p), also with clipping,
    with dropout (its masks drawn on the device: a launch per layer, no copy) and with
    both together, and finite
    results; in one case of each mode (the numpy run costs as much as the counted one)
    the CUDA kernels give what the numpy bodies give: the losses and the updates of two
    parameters (trained, with clipping; and with dropout, on 16 columns), or log p
    (scored)."""
    sizes = dict(vocab_size=10000, classes=100, size=650, batch_size=batch_size, dropout=dropout)
    on_kernels = two_batches(strict_backend(cuda_kernels=True), 35, mode, clipping, **sizes)
    counts = on_kernels["counts"]
    assert counts.total("launches") <= 400, counts.summary()
    assert counts.total("waits") == (0 if mode == "train" else 1), counts.waits
    assert counts.total("operand_copies") == 0, counts.operand_copies
    if dropout:
        assert dropout_sites(counts.copies) == 0, counts.copies  # a launch per layer: see the test above
    results = on_kernels["losses"] if mode == "train" else on_kernels["logp"]
    assert numpy.isfinite(results).all() and numpy.isfinite(on_kernels["updates"]["layer2.R"]).all(), results
    if not against_numpy:
        return
    on_numpy = two_batches(get_backend("numpy"), 35, mode, clipping, **sizes)
    if mode == "train":
        numpy.testing.assert_allclose(on_kernels["losses"], on_numpy["losses"], rtol=1e-5)
        for name, expected in on_numpy["updates"].items():
            assert numpy.abs(expected).max() > 0, name
            numpy.testing.assert_allclose(on_kernels["updates"][name], expected, rtol=0,
                                          atol=1e-3 * numpy.abs(expected).max(), err_msg=name)
    else:
        numpy.testing.assert_allclose(on_kernels["logp"], on_numpy["logp"], rtol=0, atol=1e-4)
