"""The strict double without arithmetic (rwthlm_py/testing/host_time_cupy.py), on which
benchmarks/device_counts.py times the host's work of a batch: it runs the same batches as
the counting double, gives results of the same shapes and float types, and computes
nothing (a training batch leaves every parameter as it was)."""

import numpy
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



def test_its_operations_write_nothing_into_their_outputs():
    """Products (the array API's and cuBLAS's C binding on device addresses), ufuncs,
    in-place operators, item assignment and kernel launches leave a given output's bytes
    as they were: nothing is computed that the host-time figure would then include."""
    backend = shape_only_backend("float32")
    xp = backend.xp
    a, b = xp.asarray(numpy.ones((4, 3), numpy.float32)), xp.asarray(numpy.ones((3, 5), numpy.float32))
    out = xp.asarray(numpy.full((4, 5), 7.0, numpy.float32))
    sentinel = backend.to_numpy(out).tobytes()
    xp.matmul(a, b, out=out)
    xp.exp(out, out=out)
    xp.add(out, 1.0, out=out)
    out += 1.0
    out *= out
    out[...] = 0.0
    out[1] = 0.0
    cublas, handle = xp.cuda.cublas, xp.cuda.device.get_cublas_handle()
    scalars = numpy.array([1.0, 0.0], numpy.float32)
    cublas.sgemm(handle, cublas.CUBLAS_OP_N, cublas.CUBLAS_OP_N, 5, 4, 3, scalars.ctypes.data, b.data.ptr, 5,
                 a.data.ptr, 3, scalars.ctypes.data + 4, out.data.ptr, 5)
    xp.RawModule(code="").get_function("any")((1,), (256,), (out, numpy.int32(20)))
    assert backend.to_numpy(out).tobytes() == sentinel
