"""What a GPU would be asked to do, counted by the strict cupy double: kernel launches per
time step of the LSTM, host-to-device copies inside the time loop, operand copies before
matrix products, waits for the device per batch, and the whole budget of a batch of a
2x650 LSTM (B=64, T=35, V=10,000, 100 classes) with the CUDA kernels run on the CPU."""

import copy

import numpy
import pytest

from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.runtime.backend import get_backend
from rwthlm_py.testing import cuda_on_cpu
from rwthlm_py.testing.strict_cupy import strict_backend
from rwthlm_py.text import data
from rwthlm_py.text.vocabulary import remap
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


def counted(steps, mode, clipping=None, vocab_size=60, classes=7, size=8, batch_size=B, cuda_kernels=False):
    """The strict double's counts for one batch of `steps` steps (after one batch of warm-up)."""
    return two_batches(strict_backend(cuda_kernels=cuda_kernels), steps, mode, clipping, vocab_size, classes, size,
                       batch_size)["counts"]


def two_batches(backend, steps, mode, clipping=None, vocab_size=60, classes=7, size=8, batch_size=B):
    """Two batches trained on (momentum 0.5) or scored: the strict double's counts of the
    second ("counts", None on numpy), and what each gave: -sum ln p of each batch trained
    on and the change of the first LSTM's R and of W_word ("losses", "updates"), or log p
    of the second batch scored ("logp")."""
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
        if mode == "train":
            result["losses"].append(train_batch(network, optimizer, batch, None, 0.01, clipping=clipping)[0])
        else:
            result["logp"] = backend.to_numpy(network.log_probs(batch)[0])
    result["counts"] = None if counts is None else copy.deepcopy(counts)
    result["updates"] = {name: backend.to_numpy(network.named_params()[name]) - before[name] for name in UPDATED}
    return result


UPDATED = ("layer2.R", "output.W_word")


def lstm_sites(counter):
    return sum(number for site, number in counter.items() if site.startswith("lstm.py"))


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


def test_clipping_adds_no_wait():
    """The gradient norm and the clipping factor stay on the device; the one wait left is
    the loss of the batch."""
    plain, clipped = counted(8, "train"), counted(8, "train", clipping=0.1)
    assert clipped.total("waits") == plain.total("waits") == 1
    assert [site.split(":")[0] for site in clipped.waits] == ["train.py"], clipped.waits


@pytest.mark.slow
@pytest.mark.skipif(cuda_on_cpu.compiler() is None, reason="needs a C++ compiler (g++) to run the CUDA kernels")
@pytest.mark.parametrize("mode, clipping, batch_size, against_numpy", [
    ("train", None, 64, False), ("train", 1.0, 64, True), ("score", None, 64, False), ("score", None, 1, True)])
def test_a_2x650_batch_keeps_the_budget(mode, clipping, batch_size, against_numpy):
    """At most 400 launches per batch, no operand copies, one wait (the loss, or the
    caller's reading of log p), also with clipping (the budget allows two), and
    finite results; in one case of each mode (the numpy run costs as much as the counted
    one) the CUDA kernels give what the numpy bodies give: the losses and the updates of
    two parameters (trained, with clipping), or log p (scored)."""
    sizes = dict(vocab_size=10000, classes=100, size=650, batch_size=batch_size)
    on_kernels = two_batches(strict_backend(cuda_kernels=True), 35, mode, clipping, **sizes)
    counts = on_kernels["counts"]
    assert counts.total("launches") <= 400, counts.summary()
    assert counts.total("waits") == 1, counts.waits
    assert counts.total("operand_copies") == 0, counts.operand_copies
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
