"""The strict double without arithmetic (rwthlm_py/testing/host_time_cupy.py), on which
benchmarks/device_counts.py times the host's work of a batch: it runs the same batches as
the counting double, gives results of the same shapes and float types, and computes
nothing (a training batch leaves every parameter as it was)."""

import pytest
from test_device_budget import batch_of

from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.testing.host_time_cupy import shape_only_backend
from rwthlm_py.testing.strict_cupy import strict_backend
from rwthlm_py.text.vocabulary import remap
from rwthlm_py.training.dropout import DropoutMasks
from rwthlm_py.training.optim import Sgd
from rwthlm_py.training.train import train_batch


def one_batch(backend, clipping=None, dropout=0.0):
    """log p of a batch scored, and the parameters before and after a batch trained on."""
    vocab = remap([(f"w{k}", k % 7) for k in range(60)], "<sb>")
    network = Network.build(parse_network("b-i8-m8-m8"), vocab, backend, seed=1)
    optimizer = Sgd(network, momentum=0.5)
    batch = batch_of(vocab, 9, seed=1)
    logp = network.log_probs(batch)[0]
    before = {name: backend.to_numpy(value).copy() for name, value in network.named_params().items()}
    masks = DropoutMasks(dropout, False, (1, 1, 1), backend) if dropout else None
    train_batch(network, optimizer, batch, None, 0.5, clipping=clipping, dropout=masks)
    after = {name: backend.to_numpy(value) for name, value in network.named_params().items()}
    return logp, before, after


@pytest.mark.parametrize("clipping, dropout", [(None, 0.0), (1.0, 0.5)])
def test_a_batch_runs_without_arithmetic(clipping, dropout):
    logp, before, after = one_batch(shape_only_backend(), clipping, dropout)
    counted_logp, counted_before, counted_after = one_batch(strict_backend(), clipping, dropout)
    assert (logp.shape, logp.dtype) == (counted_logp.shape, counted_logp.dtype)
    assert any((counted_after[name] != counted_before[name]).any() for name in counted_before)
    for name, value in before.items():
        assert after[name].tobytes() == value.tobytes(), name

