"""Float64 finite-difference checks of every parameter of every layer type, with non-zero
initial states, and the equivalence of one step at a time with the whole sequence."""

import numpy
import pytest

from rwthlm_py.model.network import Network, select_state
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.text import data
from rwthlm_py.training.dropout import DropoutMasks
from rwthlm_py.training.selftest import gradient_checks, synthetic_corpus

TOLERANCE = 1e-6  # the largest relative error of a derivative (this test's own, not the code's)

NETWORKS = [
    "t-i5-m4",          # projection + LSTM
    "t-36-l5-R4-M4-L3",  # n-gram projection, tanh, recurrent sigmoid, LSTM, sigmoid
    "t-r6-m4-i3",        # recurrent tanh projection, LSTM, identity linear
    "t-l4-r4-m3-m3",     # tanh projection, recurrent tanh linear, two LSTMs
    "t-L4-24",           # sigmoid projection, identity linear (digit after the first)
    "t-R4-l3",           # recurrent sigmoid projection
]


def build(spec_text, vocab, backend, seed=3, bias=True, scale=3.0):
    network = Network.build(parse_network(spec_text), vocab, backend, seed=seed, bias=bias)
    for value in network.named_params().values():
        value *= scale  # larger weights than N(0, 0.01) make every term matter
    return network


def batches_of(corpus, count=2, batch_size=3, length=6, mode="verbatim"):
    sequences = data.wrap(corpus, mode, batch_size, 100 if mode == "verbatim" else length + 1)
    end = numpy.minimum(sequences.end, sequences.first + length)
    sequences = data.Sequences(sequences.first, end)
    return list(data.batches(corpus, sequences, batch_size))[:count]


@pytest.mark.parametrize("spec_text", NETWORKS)
@pytest.mark.parametrize("vocab_name", ["class_vocab", "full_vocab"])
def test_every_parameter_and_initial_state(request, float64, spec_text, vocab_name):
    vocab = request.getfixturevalue(vocab_name)
    network = build(spec_text, vocab, float64)
    warm_up, batch = batches_of(synthetic_corpus(vocab, seed=5))
    _, state = network.log_probs(warm_up)
    weights = numpy.random.default_rng(1).normal(size=batch.num_targets)
    checks = gradient_checks(network, batch, state, weights=weights, max_elements=10 ** 6)
    names = {check.name for check in checks}
    assert {f"output.{n}" for n in ("W_class", "b_class", "W_word", "b_word")} <= names
    for check in checks:
        assert check.error <= TOLERANCE, check.describe()
        assert check.checked == check.total


def test_every_layer_type_is_covered():
    letters = set("".join(s.split("-", 1)[1] for s in NETWORKS))
    assert set("ilLrRmM") <= letters and any(c.isdigit() for c in letters)


def test_no_bias_network(float64, class_vocab):
    network = build("t-36-r4-m3", class_vocab, float64, bias=False)
    assert not any(name.endswith((".b", ".b_class", ".b_word")) for name in network.named_params())
    warm_up, batch = batches_of(synthetic_corpus(class_vocab, seed=2))
    _, state = network.log_probs(warm_up)
    for check in gradient_checks(network, batch, state, max_elements=10 ** 6):
        assert check.error <= TOLERANCE, check.describe()


@pytest.mark.parametrize("spec_text", ["t-i5-m4", "t-36-l5-R4-M4-L3", "t-l4-r4-m3-m3"])
@pytest.mark.parametrize("variational", [False, True])
def test_every_parameter_with_dropout(float64, class_vocab, spec_text, variational):
    """The gradient of the loss with the masks of a training batch applied to every hidden
    layer's output."""
    network = build(spec_text, class_vocab, float64)
    warm_up, batch = batches_of(synthetic_corpus(class_vocab, seed=5))
    _, state = network.log_probs(warm_up)
    masks = DropoutMasks(0.4, variational, (1, 2, 3), float64)
    plain = network.log_probs(batch, state)[0]
    dropped = network.log_probs(batch, state, dropout=masks)[0]
    assert not numpy.allclose(plain, dropped)  # the masks change the loss being checked
    checks = gradient_checks(network, batch, state, max_elements=10 ** 6, dropout=masks)
    for check in checks:
        assert check.error <= TOLERANCE, check.describe()
        assert check.checked == check.total


def test_a_wrong_gradient_is_caught(float64, class_vocab):
    network = build("t-i5-m4", class_vocab, float64)
    warm_up, batch = batches_of(synthetic_corpus(class_vocab, seed=2))
    _, state = network.log_probs(warm_up)
    lstm = network.layers[1]
    original = lstm._accumulate

    def broken(*args):
        original(*args)
        lstm.grads["p"] = lstm.grads["p"] * 1.001

    lstm._accumulate = broken
    checks = {check.name: check for check in gradient_checks(network, batch, state)}
    assert checks["layer2.p"].error > 1e-4
    assert checks["layer2.W"].error <= TOLERANCE


@pytest.mark.parametrize("spec_text", NETWORKS)
def test_one_step_at_a_time_equals_the_whole_sequence(float64, class_vocab, spec_text):
    network = build(spec_text, class_vocab, float64)
    corpus = synthetic_corpus(class_vocab, seed=9, num_lines=40)
    warm_up, batch = batches_of(corpus, length=7, mode="fixed")
    _, state = network.log_probs(warm_up)
    T, B = batch.inputs.shape
    d_final = _random_like(select_state(state, slice(None)), seed=4)

    network.zero_grads()
    whole_logp, whole_state, whole_d_initial = network.accumulate_gradients(batch, state, d_state=d_final)
    whole_grads = {name: network.modules[name.split(".")[0]].dense_grad(name.split(".")[1]).copy()
                   for name in network.named_params()}

    network.zero_grads()
    step_logp, carried = [], state
    for step, _ in data.time_slices(batch):
        logp, carried = network.log_probs(step, carried)
        step_logp.append(logp)
    assert numpy.allclose(numpy.concatenate(step_logp), whole_logp, rtol=1e-12, atol=1e-12)
    _assert_states_equal(carried, whole_state)

    # backward one step at a time: the gradient on each step's initial state is handed back
    states = [state]
    for step, _ in data.time_slices(batch):
        _, next_state = network.log_probs(step, states[-1])
        states.append(next_state)
    network.zero_grads()
    d_state = d_final
    for t in range(T - 1, -1, -1):
        step = _slice(batch, t)
        _, _, d_state = network.accumulate_gradients(step, states[t], d_state=d_state)
    for name, value in whole_grads.items():
        module, param = name.split(".")
        assert numpy.allclose(network.modules[module].dense_grad(param), value, rtol=1e-10, atol=1e-12), name
    _assert_states_equal(d_state, whole_d_initial)


def _slice(batch, t):
    return data.Batch(inputs=batch.inputs[t:t + 1], targets=batch.targets[t:t + 1],
                      lengths=numpy.ones(batch.batch_size, dtype=numpy.int64),
                      positions=batch.positions[t:t + 1], valid=numpy.arange(batch.batch_size))


def _random_like(state, seed):
    rng = numpy.random.default_rng(seed)
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(_random_like(part, seed + k) for k, part in enumerate(state))
    if state.dtype.kind != "f":
        return None
    return rng.normal(size=state.shape)


def _assert_states_equal(a, b):
    if a is None or b is None:
        assert a is None and b is None or _all_none(a) and _all_none(b)
        return
    if isinstance(a, tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_states_equal(x, y)
        return
    assert numpy.allclose(a, b, rtol=1e-10, atol=1e-12)


def _all_none(state):
    if state is None:
        return True
    return isinstance(state, tuple) and all(_all_none(part) for part in state)


@pytest.mark.parametrize("shapes", [((1, 5), (5, 1)), ((4, 5), (5, 1)), ((1, 5), (5, 3)),
                                    ((4, 1), (1, 3)), ((4, 5), (5, 3))])
def test_blas_matmul_equals_matmul_for_every_thin_shape(shapes):
    from rwthlm_py.kernels.matmul import blas_matmul

    rng = numpy.random.default_rng(0)
    a, b = rng.normal(size=shapes[0]), rng.normal(size=shapes[1])
    out = numpy.empty((a.shape[0], b.shape[1]))
    assert blas_matmul(a, b, out) is out
    numpy.testing.assert_allclose(out, a @ b, rtol=1e-13)


def computed_piece(rows, values, norms_taken):
    """A Computed piece adding `values` to `rows`, counting the norms it is asked for."""
    def apply(parameter, scale):
        parameter[rows] += scale * values

    def squared_norm():
        norms_taken.append(rows)
        return (values ** 2).sum()

    return apply, squared_norm


@pytest.mark.parametrize("overlapping", [False, True])
def test_row_gradient_pieces_sum_and_norm(overlapping):
    from rwthlm_py.layers.row_gradient import RowGradient

    rng = numpy.random.default_rng(1)
    gradient, expected, norms_taken = RowGradient((9, 3)), numpy.zeros((9, 3)), []
    computed = rng.normal(size=(4, 3))
    gradient.add_computed(*computed_piece(slice(0, 4), computed, norms_taken))
    expected[0:4] += computed
    range_values, index_values = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    rows = slice(3, 5) if overlapping else slice(4, 6)
    gradient.add(rows, range_values)
    expected[rows] += range_values
    gradient.add(numpy.array([8, 6]), index_values)
    expected[[8, 6]] += index_values
    numpy.testing.assert_allclose(gradient.to_dense(numpy, numpy.float64), expected, rtol=1e-13)
    assert float(gradient.squared_norm(numpy, numpy.float64)) == pytest.approx(float((expected ** 2).sum()), rel=1e-12)
    assert norms_taken == []  # several pieces that may overlap: the norm of the dense sum
    parameter = numpy.ones((9, 3))
    gradient.apply(parameter, -0.5)
    numpy.testing.assert_allclose(parameter, 1 - 0.5 * expected, rtol=1e-13)


def test_a_lone_computed_piece_gives_its_own_norm():
    from rwthlm_py.layers.row_gradient import RowGradient

    values, norms_taken = numpy.arange(6.0).reshape(2, 3), []
    gradient = RowGradient((5, 3))
    gradient.add_computed(*computed_piece(slice(1, 3), values, norms_taken))
    assert float(gradient.squared_norm(numpy, numpy.float64)) == float((values ** 2).sum())
    assert norms_taken == [slice(1, 3)]


def test_row_gradient_scattered_rows_are_summed(float64):
    """An embedding's piece: word ids that repeat, added by the backend's scatter-add."""
    from rwthlm_py.layers.row_gradient import RowGradient

    rng = numpy.random.default_rng(2)
    ids = numpy.array([4, 1, 4, 6, 1, 4])
    values = rng.normal(size=(len(ids), 3))
    expected = numpy.zeros((9, 3))
    numpy.add.at(expected, ids, values)
    gradient = RowGradient((9, 3))
    gradient.add_scattered(ids, values, float64.scatter_add)
    gradient.add(slice(0, 2), numpy.ones((2, 3)))  # shares row 1 with the ids
    expected[0:2] += 1
    numpy.testing.assert_allclose(gradient.to_dense(numpy, numpy.float64), expected, rtol=1e-13)
    assert float(gradient.squared_norm(numpy, numpy.float64)) == pytest.approx(float((expected ** 2).sum()), rel=1e-12)
    parameter = numpy.ones((9, 3))
    gradient.apply(parameter, -0.5)
    numpy.testing.assert_allclose(parameter, 1 - 0.5 * expected, rtol=1e-13)
