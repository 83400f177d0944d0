"""Whole runs on the strict cupy double (rwthlm_py/testing/strict_cupy.py), against numpy:
training with its schedule (momentum, clipping, rollback, model files, resuming), the
wrapping modes, perplexity and n-best rescoring. Any host array that reaches device
arithmetic, and any implicit conversion of a device array, fails these; the results must
equal numpy's."""

import io
import re

import numpy
import pytest

from rwthlm_py import commands, preparation
from rwthlm_py.config import Options
from rwthlm_py.output.reporting import Console
from rwthlm_py.runtime.backend import get_backend
from rwthlm_py.testing.strict_cupy import strict_backend

NUMBER = re.compile(r"[-+]?\d+\.\d+(?:e[-+]?\d+)?")


def run_on(backend, options, network_path):
    console = Console(out=io.StringIO(), err=io.StringIO())
    status = commands.run(options, str(network_path), backend, console)
    assert status == 0, console.err.getvalue()
    return console.out.getvalue()


def numbers(text):
    return [float(value) for value in NUMBER.findall(text)]


def assert_same_run(numpy_out, strict_out, rtol=1e-9):
    """The same printed lines (the runs' folders and times aside), every number equal to
    float64 rounding (the device adds an embedding's rows in another order)."""
    numpy_out, strict_out = (_without_times(out) for out in (numpy_out, strict_out))
    assert NUMBER.sub("#", numpy_out) == NUMBER.sub("#", strict_out.replace("/strict/", "/numpy/"))
    numpy.testing.assert_allclose(numbers(strict_out), numbers(numpy_out), rtol=rtol)


def _without_times(text):
    return "".join(line for line in text.splitlines(keepends=True) if " took " not in line)


def train_options(toy, **changes):
    values = dict(train=str(toy / "train.txt"), dev=str(toy / "dev.txt"), batch_size=8, sequence_length=12,
                  learning_rate=0.05, random_seed=5, max_epoch=2, dtype="float64")
    values.update(changes)
    return Options(**values)


@pytest.mark.parametrize("changes", [
    dict(momentum=0.9, gradient_clipping=0.5, learning_rate=0.05, max_epoch=3),
    dict(word_wrapping="stream"),
    dict(word_wrapping="verbatim", sequence_length=20),
    dict(feedforward=True),
], ids=["momentum-clipping", "stream", "verbatim", "feedforward"])
def test_training_and_perplexity_equal_numpys(toy, changes):
    spec = "toy-36-l16" if changes.get("feedforward") else "toy-i12-m10-m8"
    outputs = {}
    for name in ("numpy", "strict"):
        backend = get_backend("numpy", "float64") if name == "numpy" else strict_backend("float64")
        model = toy / name / spec
        model.parent.mkdir()
        out = run_on(backend, train_options(toy, **changes), model)
        resumed = run_on(backend, train_options(toy, **dict(changes, max_epoch=changes.get("max_epoch", 2) + 1)), model)
        ppl = run_on(backend, Options(ppl=str(toy / "test.txt"), batch_size=4, dtype="float64",
                                      word_wrapping=changes.get("word_wrapping", "fixed"),
                                      feedforward=changes.get("feedforward", False)), model)
        outputs[name] = (out, resumed, ppl)
    if "gradient_clipping" in changes:  # a rate high enough to be rolled back
        assert "rolled back" in outputs["numpy"][0] + outputs["numpy"][1]
    # momentum 0.9 over three epochs and a rollback carries rounding differences further
    rtol = 1e-6 if "momentum" in changes else 1e-9
    for numpy_out, strict_out in zip(outputs["numpy"], outputs["strict"], strict=True):
        assert_same_run(numpy_out, strict_out, rtol)


def test_nbest_rescoring_equals_numpys(tmp_path, monkeypatch):
    from test_nbest import DATA

    from rwthlm_py.model.checkpoint import TrainingState, save_model
    from rwthlm_py.model.network import Network
    from rwthlm_py.model.network_spec import parse_network
    from rwthlm_py.text.vocabulary import remap
    from rwthlm_py.training.optim import Sgd

    words = ["the", "cat", "dog", "sees", "a", "big", "likes", "<unk>"]
    vocab = remap([(word, k % 3) for k, word in enumerate(words)], "<sb>")
    network = Network.build(parse_network("toy-i6-m6"), vocab, get_backend("numpy", "float64"), seed=3)
    save_model(tmp_path / "toy-i6-m6", network, Sgd(network, 0.0), TrainingState())
    written = {}
    for name in ("numpy", "strict"):
        backend = get_backend("numpy", "float64") if name == "numpy" else strict_backend("float64")
        options = Options(unk=True, batch_size=3, out=str(tmp_path / name), dtype="float64")
        console = Console(out=io.StringIO(), err=io.StringIO())
        monkeypatch.setattr(commands, "make_backend", lambda name, dtype, console, backend=backend: backend)
        status = commands.nbest_job(preparation.model_setup(options), commands.nbest_rescoring(options),
                                    str(tmp_path / "toy-i6-m6"), ([str(DATA / "nbest")], None, None), console)
        assert status == 0, console.err.getvalue()
        written[name] = {path.name: path.read_text() for path in sorted((tmp_path / name).iterdir())}
    assert written["numpy"].keys() == written["strict"].keys() and len(written["numpy"]) > 2
    for file_name, text in written["numpy"].items():
        assert_same_run(text, written["strict"][file_name])


def test_host_states_and_gradients_are_moved_to_the_device(class_vocab):
    """A caller's numpy state or gradient is taken as cupy would need it, and the result
    is the same as with device arrays."""
    from rwthlm_py.model.network import Network
    from rwthlm_py.model.network_spec import parse_network
    from rwthlm_py.text import data
    from rwthlm_py.training.selftest import synthetic_corpus

    backend = strict_backend("float64")
    network = Network.build(parse_network("t-36-m5"), class_vocab, backend, seed=2)
    corpus = synthetic_corpus(class_vocab, seed=3)
    warm_up, batch = list(data.batches(corpus, data.wrap(corpus, "fixed", 3, 6), 3))[:2]
    _, state = network.log_probs(warm_up)
    host_state = tuple(tuple(None if part is None else backend.to_numpy(part) for part in layer)
                       for layer in state)
    device_logp = backend.to_numpy(network.log_probs(batch, state)[0])
    host_logp = backend.to_numpy(network.log_probs(batch, host_state)[0])
    assert numpy.array_equal(device_logp, host_logp)
    d_logp = numpy.linspace(-1, 1, batch.num_targets)
    network.zero_grads()
    d_final = (None, tuple(numpy.ones_like(part) for part in host_state[1]))
    logp, _, d_initial = network.accumulate_gradients(batch, host_state, d_logp=d_logp, d_state=d_final)
    assert numpy.array_equal(backend.to_numpy(logp), device_logp)
    assert all(isinstance(part, backend.xp.ndarray) for part in d_initial[1])


def test_the_unknown_word_penalty_keeps_the_float_type(class_vocab):
    from rwthlm_py.model.network import Network
    from rwthlm_py.model.network_spec import parse_network
    from rwthlm_py.text import data
    from rwthlm_py.text.vocabulary import remap
    from rwthlm_py.training.selftest import synthetic_corpus

    vocab = remap([(word, k % 4) for k, word in enumerate(["a", "b", "c", "<unk>"])], "<sb>")
    network = Network.build(parse_network("t-i4-m4"), vocab, strict_backend("float32"), seed=2)
    corpus = synthetic_corpus(vocab, seed=3)
    batch = next(data.batches(corpus, data.wrap(corpus, "fixed", 3, 6), 3))
    assert network.log_probs(batch, unk_penalty=0.7)[0].dtype == numpy.float32


def self_test_lines(backend, network=None):
    from rwthlm_py.commands import selftest_settings
    from rwthlm_py.training.selftest import builtin_self_test

    console = Console(out=io.StringIO(), err=io.StringIO())
    status = builtin_self_test(selftest_settings(Options()), network, console, backend)
    out = console.out.getvalue()
    assert status == 0, out
    return out


@pytest.mark.slow
def test_the_self_test_passes_on_the_device():
    """The built-in gradient self-test (every layer type, class and full output) on the
    device in float64."""
    assert self_test_lines(strict_backend("float32")).count("Gradient test SUCCEEDED!") == 12


def test_the_self_test_passes_on_the_cuda_kernels(cuda_backend):
    """The same for an LSTM (the layer the kernels serve), with the CUDA kernels (their
    thread orders are checked by the kernel tests: here they would triple its time)."""
    lines = self_test_lines(cuda_backend("float32", check_thread_orders=False), "selftest-i6-m5")
    assert lines.count("Gradient test SUCCEEDED!") == 2
