"""The fused kernels: numpy bodies against the LSTM's equations, CUDA sources compiled by
NVRTC, and the CUDA kernels (run on the CPU, launched by rwthlm_py.kernels.cuda) against
the numpy bodies, alone and inside a whole network."""

import numpy
import nvrtc
import pytest

from rwthlm_py.kernels import lstm as kernels
from rwthlm_py.kernels.cuda import source_for
from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.runtime.backend import get_backend
from rwthlm_py.testing import cuda_on_cpu
from rwthlm_py.text import data
from rwthlm_py.training.selftest import synthetic_corpus

H, B = 5, 3


def sigmoid(x):
    return 1 / (1 + numpy.exp(-x))


def lstm_step(a_z, a_i, a_f, a_o, c_prev, p):
    """rwthlm's peephole LSTM step from the full pre-activations (works on complex numbers)."""
    z = numpy.tanh(a_z)
    i = sigmoid(a_i + p[0] * c_prev)
    f = sigmoid(a_f + p[1] * c_prev)
    c = i * z + f * c_prev
    o = sigmoid(a_o + p[2] * c)
    return z, i, f, o, c, o * numpy.tanh(c)


def random_step(seed, with_state=True):
    rng = numpy.random.default_rng(seed)
    pre = rng.normal(size=(4, H, B)) * 2
    c_prev = rng.normal(size=(H, B)) if with_state else numpy.zeros((H, B))
    p = rng.normal(size=(3, H, 1))
    return pre, c_prev, p


def body_forward(pre, c_prev, p, with_state):
    """The numpy body's forward step, given the full pre-activations."""
    a = numpy.empty_like(pre)
    c, tanh_c, h = (numpy.empty((H, B)) for _ in range(3))
    peepholes = kernels.lstm_peepholes(p.reshape(-1), B, 2)
    kernels.lstm_forward_step(a, pre.reshape(4 * H, B), c_prev if with_state else None, peepholes,
                              c, tanh_c, h, False)
    return a, c, tanh_c, h


@pytest.mark.parametrize("with_state", [True, False])
def test_the_forward_body_follows_the_equations(with_state):
    pre, c_prev, p = random_step(1, with_state)
    a, c, tanh_c, h = body_forward(pre, c_prev, p, with_state)
    z, i, f, o, c_expected, h_expected = lstm_step(*pre, c_prev, p)
    numpy.testing.assert_allclose(a, numpy.stack([z, i, f, o]), rtol=1e-12, atol=1e-14)
    numpy.testing.assert_allclose(c, c_expected, rtol=1e-12, atol=1e-14)
    numpy.testing.assert_allclose(tanh_c, numpy.tanh(c_expected), rtol=1e-12, atol=1e-14)
    numpy.testing.assert_allclose(h, h_expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("with_state", [True, False])
def test_the_backward_bodies_give_the_derivatives(with_state):
    """For L = sum(e_h h + dc c), da and dc_out are dL/d(pre-activation) and dL/dc(t-1),
    here by complex steps (exact to rounding: every operation is analytic)."""
    pre, c_prev, p = random_step(2, with_state)
    rng = numpy.random.default_rng(3)
    e_h, dc = rng.normal(size=(H, B)), rng.normal(size=(H, B))
    a, c, tanh_c, _ = body_forward(pre, c_prev, p, with_state)
    factors = kernels.lstm_backward_factors(a[None], c[None], tanh_c[None], c_prev if with_state else None,
                                            p.reshape(-1))
    da, dc_out = numpy.empty((4, H, B)), numpy.empty((H, B))
    kernels.lstm_backward_step(e_h, dc, *(factor[0] for factor in factors), da, dc_out)

    def derivative(perturbed):
        *_, c_step, h_step = lstm_step(*perturbed[:4], perturbed[4], p)
        return (e_h * h_step + dc * c_step).imag / 1e-30

    inputs = [pre[0], pre[1], pre[2], pre[3], c_prev]
    for k in range(5 if with_state else 4):
        perturbed = [value.astype(complex) for value in inputs]
        perturbed[k] = perturbed[k] + 1e-30j
        expected = derivative(perturbed)
        got = da[k] if k < 4 else dc_out
        numpy.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14, err_msg=f"input {k}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_cuda_sources_compile_with_nvrtc(dtype):
    library = nvrtc.load()
    if library is None:
        pytest.skip("NVRTC is not installed: pip install -e '.[nvrtc]' (x86-64 Linux), or CUDA's libnvrtc on the "
                    "library path")
    ok, log, ptx = nvrtc.compile_to_ptx(library, source_for(dtype), "rwthlm_py.cu",
                                        ["--gpu-architecture=compute_90", "--std=c++14"])
    assert ok, log
    names = [name for name, _ in cuda_on_cpu.KERNEL.findall(source_for(dtype))]
    assert len(names) >= 12
    for name in names:
        assert f".entry {name}(" in ptx
    if dtype == "float32":
        assert ".f64" not in ptx, "a float kernel computes in double"


TOLERANCE = {"float32": 1e-5, "float64": 1e-12}
# (H, B): a step within one block of threads, and one of 520 cells (3 blocks of 256; the
# backward factors of two steps 5 blocks, the peephole terms 7 blocks of 3 H B)
SIZES = {"one block": (H, B), "several blocks": (130, 4)}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("with_state", [True, False])
@pytest.mark.parametrize("size", SIZES)
def test_the_cuda_kernels_match_the_numpy_bodies(cuda_backend, dtype, with_state, size):
    backend = cuda_backend(dtype)
    xp, cuda = backend.xp, backend.kernels
    H, B = SIZES[size]
    rng = numpy.random.default_rng(4)
    T = 3
    w_x = rng.normal(size=(4 * H, T * B)).astype(dtype)  # the layer's [4H, T*B] input part
    recurrent = rng.normal(size=(4, H, B)).astype(dtype)
    c_prev = rng.normal(size=(H, B)).astype(dtype) if with_state else None
    p = rng.normal(size=3 * H).astype(dtype)
    e_h, dc = (rng.normal(size=(H, B)).astype(dtype) for _ in range(2))
    step = slice(B, 2 * B)

    outputs = {}
    for name in ("numpy", "cuda"):
        module = kernels if name == "numpy" else cuda
        run = (lambda arrays: arrays) if name == "numpy" else (
            lambda arrays: [xp.asarray(a) if a is not None else None for a in arrays])
        stack = (lambda x: x[None].repeat(2, axis=0)) if name == "numpy" else (lambda x: xp.stack([x, x]))
        a, w, cp, pp, dh, dc_next = run([recurrent.copy(), w_x, c_prev, p, e_h, dc])
        c, tanh_c, h = run([numpy.empty((H, B), dtype) for _ in range(3)])
        module.lstm_forward_step(a, w[:, step], cp, module.lstm_peepholes(pp, B, T), c, tanh_c, h, with_state)
        A, C, tanh_C = (stack(x) for x in (a, c, tanh_c))
        factors = module.lstm_backward_factors(A, C, tanh_C, cp, pp)
        da, dc_out = run([numpy.empty((4, H, B), dtype), numpy.empty((H, B), dtype)])
        module.lstm_backward_step(dh, dc_next, *(factor[1] for factor in factors), da, dc_out)
        dp = module.lstm_peephole_gradient(stack(da), C, cp)
        outputs[name] = [a, c, tanh_c, h, *factors, da, dc_out, dp]
    for expected, got in zip(outputs["numpy"], outputs["cuda"], strict=True):
        assert got.shape == expected.shape
        scale = max(1.0, float(numpy.abs(expected).max()))  # dp sums 2 B terms per cell
        numpy.testing.assert_allclose(got.get(), expected, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype] * scale)


@pytest.mark.parametrize("spec_text", ["t-i6-m5", "t-i5-m4-m3"])
def test_a_network_on_the_cuda_kernels_equals_numpy(cuda_backend, class_vocab, spec_text):
    """log p, the gradient of every parameter and of the initial state, and the final state."""
    spec = parse_network(spec_text)
    cpu = Network.build(spec, class_vocab, get_backend("numpy", "float64"), seed=2)
    gpu = Network.build(spec, class_vocab, cuda_backend("float64"), seed=2)
    corpus = synthetic_corpus(class_vocab, seed=3)
    warm_up, batch = list(data.batches(corpus, data.wrap(corpus, "fixed", 3, 6), 3))[:2]
    results = {}
    for name, network in (("numpy", cpu), ("cuda", gpu)):
        _, state = network.log_probs(warm_up)
        network.zero_grads()
        logp, final, d_initial = network.accumulate_gradients(batch, state)
        to_numpy = network.backend.to_numpy
        results[name] = ([to_numpy(logp)]
                         + [to_numpy(part) for layer in final if layer for part in layer if part is not None]
                         + [to_numpy(part) for layer in d_initial if layer for part in layer if part is not None]
                         + [to_numpy(network.dense_grads()[n]) for n in sorted(network.named_params())])
    assert len(results["cuda"]) == len(results["numpy"])
    for expected, got in zip(results["numpy"], results["cuda"], strict=True):
        numpy.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
