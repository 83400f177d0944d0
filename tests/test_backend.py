"""The backend: chosen once, numpy always there, cupy the same code where a GPU exists."""

import itertools

import numpy
import pytest
from conftest import BACKENDS, NEEDS_A_COMPILER, make_backend

from rwthlm_py.errors import InputError
from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.runtime.backend import cupy_device_count, get_backend
from rwthlm_py.text import data
from rwthlm_py.training.selftest import BUILTIN_NETWORKS, synthetic_corpus


def test_numpy_backend():
    backend = get_backend("numpy")
    assert backend.xp is numpy and backend.dtype == numpy.float32 and backend.threads >= 1
    assert get_backend("numpy", "float64").dtype == numpy.float64
    assert get_backend("auto").name in ("numpy", "cupy")


def test_bad_backend_requests():
    with pytest.raises(InputError, match="unknown backend"):
        get_backend("tpu")
    with pytest.raises(InputError, match="unknown float type"):
        get_backend("numpy", "float16")
    if cupy_device_count() == 0:
        with pytest.raises(InputError, match="cupy"):
            get_backend("cupy")


def test_row_blocks_cover_every_row_in_order():
    backend = get_backend("numpy")
    results = backend.for_row_blocks(lambda start, stop: (start, stop), 100_000, 4 * 10_000)
    assert results[0][0] == 0 and results[-1][1] == 100_000
    assert all(a[1] == b[0] for a, b in itertools.pairwise(results))


@pytest.mark.parametrize("shape", [(7,), (7, 3)])
def test_scatter_add_sums_repeated_indices(shape):
    backend = get_backend("numpy", "float64")
    rng = numpy.random.default_rng(0)
    target = rng.normal(size=shape)
    expected = target.copy()
    indices = numpy.array([4, 1, 4, 6, 1, 4, 0])
    values = rng.normal(size=(len(indices),) + shape[1:])
    numpy.add.at(expected, indices, values)
    backend.scatter_add(target, indices, values)
    numpy.testing.assert_allclose(target, expected, rtol=1e-14)
    backend.scatter_add(target, indices[:0], values[:0])
    numpy.testing.assert_allclose(target, expected, rtol=1e-14)


def test_only_the_backend_module_imports_cupy():
    import pathlib
    import re

    package = pathlib.Path(__file__).resolve().parents[1] / "rwthlm_py"
    statement = re.compile(r"^\s*(import cupy|from cupy)", re.MULTILINE)
    importers = [path.name for path in package.rglob("*.py") if statement.search(path.read_text())]
    assert importers == ["backend.py"]


@pytest.mark.gpu
@pytest.mark.skipif(cupy_device_count() == 0, reason="needs cupy and a CUDA device")
def test_cupy_matches_numpy(class_vocab):
    spec = parse_network("t-i8-m8-m8")
    cpu = Network.build(spec, class_vocab, get_backend("numpy"), seed=2)
    gpu = Network.build(spec, class_vocab, get_backend("cupy"), seed=2)
    for name, value in cpu.named_params().items():
        assert numpy.array_equal(value, gpu.backend.to_numpy(gpu.named_params()[name]))
    corpus = synthetic_corpus(class_vocab, seed=3)
    batch = next(data.batches(corpus, data.wrap(corpus, "verbatim", 4, 20), 4))
    for network in (cpu, gpu):
        network.zero_grads()
        network.accumulate_gradients(batch)
    cpu_logp = cpu.log_probs(batch)[0]
    gpu_logp = gpu.backend.to_numpy(gpu.log_probs(batch)[0])
    assert numpy.allclose(cpu_logp, gpu_logp, rtol=1e-4, atol=1e-5)
    for name in cpu.named_params():
        module, param = name.split(".")
        expected = cpu.modules[module].dense_grad(param)
        got = gpu.backend.to_numpy(gpu.modules[module].dense_grad(param))
        assert numpy.allclose(expected, got, rtol=1e-3, atol=1e-5), name


def trained_params(spec, vocab, backend, batches):
    """The float64 parameters after training on `batches` with momentum and clipping."""
    from rwthlm_py.training.optim import Sgd
    from rwthlm_py.training.train import train_batch

    network = Network.build(parse_network(spec), vocab, backend, seed=2)
    optimizer = Sgd(network, momentum=0.9)
    for batch in batches:
        train_batch(network, optimizer, batch, None, 0.05, clipping=0.5)
    return {key: network.backend.to_numpy(value) for key, value in network.named_params().items()}


def assert_same_params(got, expected):
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        numpy.testing.assert_allclose(got[key], value, rtol=1e-9, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("device", [BACKENDS[1], pytest.param("strict-cupy-cuda", marks=NEEDS_A_COMPILER),
                                    BACKENDS[2]])
def test_twenty_training_batches_on_the_device_equal_numpys(class_vocab, device):
    """Identical seeds, momentum and clipping: after 20 batches every float64 parameter on
    the device agrees with numpy's to 1e-9, with the numpy bodies through the cupy glue
    (strict-cupy), the CUDA kernels run on the CPU (strict-cupy-cuda) or on a GPU."""
    corpus = synthetic_corpus(class_vocab, seed=4, num_lines=120)
    batches = list(data.batches(corpus, data.wrap(corpus, "fixed", 4, 6), 4))[:20]
    assert len(batches) == 20
    assert_same_params(trained_params("t-i12-m10-m8", class_vocab, make_backend(device, "float64"), batches),
                       trained_params("t-i12-m10-m8", class_vocab, get_backend("numpy", "float64"), batches))


@pytest.mark.parametrize("spec", BUILTIN_NETWORKS)
@pytest.mark.parametrize("output", ["class", "full"])
def test_every_layer_trains_on_the_cuda_kernels_as_on_numpy(cuda_backend, class_vocab, full_vocab, spec, output):
    vocab = class_vocab if output == "class" else full_vocab
    corpus = synthetic_corpus(vocab, seed=5)
    batches = list(data.batches(corpus, data.wrap(corpus, "fixed", 3, 6), 3))[:3]
    assert_same_params(trained_params(spec, vocab, cuda_backend("float64"), batches),
                       trained_params(spec, vocab, get_backend("numpy", "float64"), batches))


def test_keep_freed_memory_sets_glibcs_malloc_thresholds():
    import platform

    from rwthlm_py.runtime.allocator import keep_freed_memory

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt thresholds are glibc's")
    assert keep_freed_memory() is True
