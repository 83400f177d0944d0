"""The fused kernels of the class-factored softmax and of the optimizer: numpy bodies against
the plain equations in float64, and the CUDA kernels (run on the CPU, launched by
rwthlm_py.kernels.cuda) against the numpy bodies, in float64 and float32. Softmaxes whose
logits would overflow exp without a shift are among the cases."""

import numpy
import pytest

from rwthlm_py.kernels import numpy_kernels
from rwthlm_py.kernels.cuda import SUM_THREADS
from rwthlm_py.kernels.softmax import WIDTH
from rwthlm_py.layers.word_groups import WordGroups
from rwthlm_py.text.vocabulary import remap

TOLERANCE = {"float32": 1e-5, "float64": 1e-12}
H = 4
# The launches of a case "within one block" fit in one block of 256 threads; those of the
# case "past one block" need several: 520 rows or positions, a class of 301 words (301
# stacked rows), 65,600 parameter elements (past the 65,536 threads of sum_of_squares).
SCALES = ["within one block", "past one block"]


def log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - numpy.log(numpy.exp(shifted).sum(axis=-1, keepdims=True))


def on_host_and_cuda(backend):
    """(name, kernel set, to the kernels' arrays, back to numpy) for the numpy bodies and
    for the CUDA kernels of `backend`."""
    xp = backend.xp
    return [("numpy", numpy_kernels(), lambda a: a.copy(), numpy.asarray),
            ("cuda", backend.kernels, lambda a: xp.asarray(a), lambda a: a.get())]


# -- the row softmax ---------------------------------------------------------------------------

def row_case(dtype, seed=1, rows=7):
    rng = numpy.random.default_rng(seed)
    logits = rng.normal(size=(rows, 6))
    logits[2] *= 1000  # exp would overflow: shifted
    logits[4] = logits[4] * 10 - 3000  # every exp would underflow: shifted
    bias = rng.normal(size=6)
    target = rng.integers(0, 6, size=rows).astype(numpy.int64)
    return logits.astype(dtype), bias.astype(dtype), target


def run_rows(kernels, to_device, to_host, logits, bias, target, dtype):
    rows = len(logits)
    logits, logp, totals = (to_device(logits), to_device(numpy.empty(rows, dtype)),
                            to_device(numpy.empty(rows, dtype)))
    prob_sums = kernels.softmax_pick(logits, to_device(bias), to_device(target), logp, totals, True)
    probabilities = to_host(logits) / to_host(totals)[:, None]
    return {"logp": to_host(logp), "probabilities": probabilities, "prob_sums": to_host(prob_sums)}


def test_the_row_softmax_body_follows_the_equations():
    logits, bias, target = row_case("float64")
    got = run_rows(numpy_kernels(), lambda a: a.copy(), numpy.asarray, logits, bias, target, "float64")
    expected = log_softmax(logits + bias)
    assert numpy.isfinite(got["logp"]).all()
    numpy.testing.assert_allclose(got["logp"], expected[numpy.arange(7), target], rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(got["probabilities"], numpy.exp(expected), rtol=1e-12, atol=1e-300)
    numpy.testing.assert_allclose(got["prob_sums"], numpy.exp(expected).sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("scale", SCALES)
def test_the_row_softmax_kernel_matches_the_body(cuda_backend, dtype, scale):
    logits, bias, target = row_case(dtype, rows=7 if scale == SCALES[0] else 520)
    results = {name: run_rows(kernels, to_device, to_host, logits, bias, target, dtype)
               for name, kernels, to_device, to_host in on_host_and_cuda(cuda_backend(dtype))}
    for key, expected in results["numpy"].items():
        numpy.testing.assert_allclose(results["cuda"][key], expected, rtol=TOLERANCE[dtype],
                                      atol=TOLERANCE[dtype], err_msg=key)


# -- the word groups ---------------------------------------------------------------------------

def word_case(dtype, seed=2, scale=SCALES[0]):
    """A vocabulary with single-word classes and classes of 2 to 6 words, a batch of 16
    positions, their inputs (one of them so large that exp overflows unshifted) and the
    word weights; past one block, a class of 301 words more and a batch of 520 positions."""
    words = [(f"w{k}", k % 5) for k in range(20)] + [(f"s{k}", 10 + k) for k in range(3)]
    positions = 16
    if scale != SCALES[0]:
        words += [(f"x{k}", 20) for k in range(301)]
        positions = 520
    vocab = remap(words, "<sb>")
    rng = numpy.random.default_rng(seed)
    targets = rng.integers(0, len(vocab), size=positions)
    classes = vocab.word_class[targets]
    groups = WordGroups(classes, targets, vocab.class_start, vocab.class_size, vocab.shortlist_size)
    clustered = len(vocab) - vocab.shortlist_size
    h = rng.normal(size=(positions, H))
    h[groups.positions[3]] *= 400
    weights, bias = rng.normal(size=(clustered, H)), rng.normal(size=clustered)
    g = rng.normal(size=len(groups))
    case = {"h": h, "weights": weights, "bias": bias, "g": g}
    return vocab, groups, targets, {name: value.astype(dtype) for name, value in case.items()}


def run_words(kernels, to_device, to_host, groups, case, dtype):
    """Every word-group kernel in the order the layer calls them; what each gives, on the host."""
    table, target_index = to_device(groups.table), to_device(groups.target_index)
    h_sorted = case["h"][groups.positions]
    weights, h_sorted_device = to_device(case["weights"]), to_device(h_sorted)
    buffer = to_device(numpy.empty(groups.size, dtype))
    logp, totals = to_device(numpy.empty(len(groups), dtype)), to_device(numpy.empty(len(groups), dtype))
    kernels.word_logits(weights, to_device(case["bias"]), to_device(numpy.ascontiguousarray(h_sorted.T)), table,
                        buffer)
    kernels.word_softmax_pick(buffer, table, target_index, logp, totals)
    columns = column_values(groups, to_host(buffer))
    probabilities = numpy.concatenate([column / total for column, total in zip(columns, to_host(totals), strict=True)])
    result = {"logp": to_host(logp), "probabilities": probabilities}
    kernels.word_logit_gradient(buffer, table, target_index, totals, to_device(case["g"]))
    result["E"] = numpy.concatenate(column_values(groups, to_host(buffer)))
    dh_sorted, db = to_device(numpy.empty_like(h_sorted)), to_device(numpy.empty(groups.rows_used, dtype))
    kernels.word_input_gradient(buffer, weights, table, dh_sorted)
    kernels.word_bias_gradient(buffer, table, db)
    result["dh"], result["db"] = to_host(dh_sorted), to_host(db)
    result["squared_norm"] = to_host(kernels.word_weight_squared_norm(buffer, h_sorted_device, table, groups.rows_used))
    kernels.word_weight_update(weights, dtype_scalar(dtype, -0.5), buffer, h_sorted_device, table, groups.rows_used)
    result["updated_weights"] = to_host(weights)
    return result


def dtype_scalar(dtype, value):
    return numpy.dtype(dtype).type(value)


def column_values(groups, buffer):
    """Each position's column of its group's block, as a list of arrays (in sorted order)."""
    columns = []
    for offset, _, count, _, width, _ in groups.table.tolist():
        block = buffer[offset:offset + count * width].reshape(width, count)
        columns += [block[:, j] for j in range(count)]
    return columns


def word_equations(vocab, groups, targets, case):
    """log p, p, E = g (onehot - p), dh, db, the updated W and |dW|^2, position by position."""
    weights, bias, h, g = case["weights"], case["bias"], case["h"], case["g"]
    S = vocab.shortlist_size
    logp, probabilities, E, dh = [], [], [], []
    db, dW = numpy.zeros_like(bias), numpy.zeros_like(weights)
    for m, n in enumerate(groups.positions):
        word_class = vocab.word_class[targets[n]]
        first = vocab.class_start[word_class] - S
        rows = slice(first, first + vocab.class_size[word_class])
        log_p = log_softmax(weights[rows] @ h[n] + bias[rows])
        within = targets[n] - vocab.class_start[word_class]
        error = -g[m] * numpy.exp(log_p)
        error[within] += g[m]
        logp.append(log_p[within])
        probabilities.append(numpy.exp(log_p))
        E.append(error)
        dh.append(error @ weights[rows])
        db[rows] += error
        dW[rows] += numpy.outer(error, h[n])
    return {"logp": numpy.array(logp), "probabilities": numpy.concatenate(probabilities), "E": numpy.concatenate(E),
            "dh": numpy.array(dh), "db": db[groups.used_rows], "squared_norm": (dW ** 2).sum(),
            "updated_weights": weights - 0.5 * dW}


def test_the_word_group_bodies_follow_the_equations():
    vocab, groups, targets, case = word_case("float64")
    assert len(groups.table) >= 3 and groups.table[:, 2].max() > 1  # several groups, some with several positions
    got = run_words(numpy_kernels(), lambda a: a.copy(), numpy.asarray, groups, case, "float64")
    expected = word_equations(vocab, groups, targets, case)
    assert numpy.isfinite(got["logp"]).all()
    for key, value in expected.items():
        numpy.testing.assert_allclose(got[key], value, rtol=1e-12, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("scale", SCALES)
def test_the_word_group_kernels_match_the_bodies(cuda_backend, dtype, scale):
    _, groups, _, case = word_case(dtype, scale=scale)
    if scale != SCALES[0]:
        assert len(groups) > 512 and groups.table[:, WIDTH].max() == 301 and groups.rows_used > 301
    results = {name: run_words(kernels, to_device, to_host, groups, case, dtype)
               for name, kernels, to_device, to_host in on_host_and_cuda(cuda_backend(dtype))}
    for key, expected in results["numpy"].items():
        numpy.testing.assert_allclose(results["cuda"][key], expected, rtol=TOLERANCE[dtype],
                                      atol=TOLERANCE[dtype] * max(1.0, float(numpy.abs(expected).max())), err_msg=key)


# -- the optimizer -----------------------------------------------------------------------------

def optimizer_case(dtype, seed=3, scale=SCALES[0]):
    rng = numpy.random.default_rng(seed)
    shapes = [(3, 4), (5,), (2, 3, 2)] if scale == SCALES[0] else [(300, 200), (5588,), (2, 3, 2)]
    params = [rng.normal(size=shape).astype(dtype) for shape in shapes]
    gradients = [rng.normal(size=shape).astype(dtype) for shape in shapes]
    buffers = [rng.normal(size=shapes[0]).astype(dtype), None, rng.normal(size=shapes[2]).astype(dtype)]
    return params, gradients, buffers


def run_optimizer(kernels, to_device, to_host, dtype, rate_on_device, scale=SCALES[0]):
    params, gradients, buffers = optimizer_case(dtype, scale=scale)
    params, gradients = [to_device(p) for p in params], [to_device(g) for g in gradients]
    buffers = [None if m is None else to_device(m) for m in buffers]
    squared = to_host(kernels.sum_of_squares(gradients))
    rate = to_device(numpy.array(0.25, dtype=dtype)) if rate_on_device else 0.25
    kernels.sgd_step(params, gradients, buffers, rate, 0.5)
    return [squared] + [to_host(p) for p in params] + [to_host(m) for m in buffers if m is not None]


def test_the_optimizer_bodies_follow_the_equations():
    params, gradients, buffers = optimizer_case("float64")
    velocities = [None if m is None else m - 0.25 * g for m, g in zip(buffers, gradients, strict=True)]
    expected = ([sum((g ** 2).sum() for g in gradients)]
                + [w - 0.25 * g if v is None else w + v for w, g, v in zip(params, gradients, velocities, strict=True)]
                + [0.5 * v for v in velocities if v is not None])
    got = run_optimizer(numpy_kernels(), lambda a: a.copy(), numpy.asarray, "float64", False)
    for value, want in zip(got, expected, strict=True):
        numpy.testing.assert_allclose(value, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rate_on_device", [False, True])
@pytest.mark.parametrize("scale", SCALES)
def test_the_optimizer_kernels_match_the_bodies(cuda_backend, dtype, rate_on_device, scale):
    if scale != SCALES[0]:
        assert sum(g.size for g in optimizer_case(dtype, scale=scale)[1]) == 65_600 > SUM_THREADS
    results = {name: run_optimizer(kernels, to_device, to_host, dtype, rate_on_device, scale)
               for name, kernels, to_device, to_host in on_host_and_cuda(cuda_backend(dtype))}
    assert len(results["cuda"]) == 6
    for value, expected in zip(results["cuda"], results["numpy"], strict=True):
        numpy.testing.assert_allclose(value, expected, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])
