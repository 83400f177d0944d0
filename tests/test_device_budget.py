"""What a GPU would be asked to do, counted by the strict cupy double: kernel launches per
time step of the LSTM, host-to-device copies inside the time loop, operand copies before
matrix products, and waits for the device per batch."""

import numpy
import pytest

from rwthlm_py import data
from rwthlm_py.network import Network
from rwthlm_py.network_spec import parse_network
from rwthlm_py.optim import Sgd
from rwthlm_py.train import train_batch
from rwthlm_py.vocabulary import remap
from strict_cupy import strict_backend

LAYERS = 2
B = 6


def batch_of(vocab, steps, seed=0):
    rng = numpy.random.default_rng(seed)
    stream = rng.integers(0, len(vocab), size=(steps + 1) * B * 2).astype(numpy.int32)
    context = numpy.concatenate([[vocab.sb], stream]).astype(numpy.int32)
    starts = numpy.arange(B) * (steps + 1)
    return data.make_batch(stream, context, starts, starts + steps)


def counted(steps, mode, clipping=None):
    """The strict double's counts for one batch of `steps` steps (after one batch of warm-up)."""
    vocab = remap([(f"w{k}", k % 7) for k in range(60)], "<sb>")
    backend = strict_backend()
    network = Network.build(parse_network("b-i8" + "-m8" * LAYERS), vocab, backend, seed=1)
    optimizer = Sgd(network, momentum=0.5)
    counts = backend.xp.counts
    for seed in (1, 2):
        counts.clear()
        batch = batch_of(vocab, steps, seed)
        if mode == "train":
            train_batch(network, optimizer, batch, None, 0.01, clipping=clipping)
        else:
            backend.to_numpy(network.log_probs(batch)[0])
    return counts


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
    """The gradient norm and the clipping factor stay on the device."""
    plain, clipped = counted(8, "train"), counted(8, "train", clipping=0.1)
    assert clipped.total("waits") == plain.total("waits")
    waiting = {site.split(":")[0] for site in clipped.waits}
    # the loss of the batch, and the output layer's check for sums of exponentials that
    # overflowed (the one left to move onto the device)
    assert waiting <= {"train.py", "class_softmax.py", "word_groups.py"}, clipped.waits
    assert sum(number for site, number in clipped.waits.items() if site.startswith("train.py")) == 1
