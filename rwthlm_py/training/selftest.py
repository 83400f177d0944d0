"""Gradient self-test (rwthlm's --self-test, §6.8): analytic gradients against central
differences in float64, for every parameter array of every layer and for the initial state.

The loss is F = -sum ln p over a batch that starts from a non-zero recurrent state (the
state after another batch), or sum(weights * ln p) for given weights; with --dropout P, of
the network with fixed dropout masks (those of the first training batch). Each derivative is
the fourth-order central difference

    dF/dw ~ (F(w-2e) - 8 F(w-e) + 8 F(w+e) - F(w+2e)) / (12 e),   e = STEP

and is compared by |analytic - numeric| / max(|analytic| + |numeric|, FLOOR), where FLOOR
keeps derivatives at rounding level (|g| < 1e-4, judged by |error| < 1e-10) from counting as relative errors.
"""

import dataclasses

import numpy

from rwthlm_py.model.network import Network
from rwthlm_py.runtime.backend import get_backend
from rwthlm_py.text import data
from rwthlm_py.training.train import Schedule

STEP = 1e-3
FLOOR = 1e-4
TOLERANCE = 1e-6
MAX_ELEMENTS = 48


@dataclasses.dataclass(frozen=True)
class SelfTestSettings:
    """What the checks run with: the schedule's layout, --feedforward, seed and dropout; and,
    for the networks built here, their sentence-boundary word and whether they have biases."""

    schedule: Schedule
    map_sb: str = "<sb>"
    bias: bool = True


@dataclasses.dataclass
class Check:
    name: str
    error: float  # the largest relative error
    index: tuple
    analytic: float
    numeric: float
    checked: int
    total: int

    def describe(self):
        return (f"{self.name}{list(self.index)}: analytic {self.analytic:.10e}, "
                f"numerical {self.numeric:.10e}, relative error {self.error:.2e}")


def gradient_checks(network, batch, state, weights=None, max_elements=MAX_ELEMENTS, seed=0, dropout=None):
    """One Check per parameter array and per array of the initial state; with `dropout`
    (DropoutMasks), of the loss with those masks applied."""
    rng = numpy.random.default_rng(seed)
    xp = network.xp
    d_logp = None if weights is None else -xp.asarray(weights)

    def loss():
        logp, _ = network.log_probs(batch, state, dropout=dropout)
        return -float((logp if weights is None else logp * xp.asarray(weights)).sum())

    network.zero_grads()
    _, _, d_initial = network.accumulate_gradients(batch, state, d_logp=d_logp, dropout=dropout)
    checks = []
    for prefix, module in network.modules.items():
        for name, value in module.own_params().items():
            checks.append(_check_array(f"{prefix}.{name}", value, module.dense_grad(name), loss,
                                       rng, max_elements, network.backend))
    for name, value, gradient in _state_arrays(network, state, d_initial):
        checks.append(_check_array(name, value, gradient, loss, rng, max_elements, network.backend))
    return checks


def _state_arrays(network, state, d_initial):
    """(name, state array, its analytic gradient) for every float array of the state."""
    # modules name the hidden layers, then the output, which has no state: zip stops before it
    for layer_name, part, d_part in zip(network.modules, state or (), d_initial, strict=False):
        values = part if isinstance(part, tuple) else (part,)
        grads = d_part if isinstance(d_part, tuple) else (d_part,)
        # a zero state (None) stands for all of a layer's parts, and has no array to check
        for k, (value, gradient) in enumerate(zip(values, grads, strict=False)):
            if value is not None and value.dtype.kind == "f":
                yield f"{layer_name}.state{k}", value, gradient


def _check_array(name, value, gradient, loss, rng, max_elements, backend):
    analytic = backend.to_numpy(gradient).reshape(-1)
    indices = _pick(analytic, rng, max_elements)
    worst = Check(name, 0.0, (), 0.0, 0.0, len(indices), value.size)
    for index in indices.tolist():
        position = tuple(int(i) for i in numpy.unravel_index(index, value.shape))
        numeric = _numeric_derivative(value, position, loss)
        error = abs(analytic[index] - numeric) / max(abs(analytic[index]) + abs(numeric), FLOOR)
        if error >= worst.error:
            worst = Check(name, error, position, float(analytic[index]), numeric,
                          len(indices), value.size)
    return worst


def _pick(analytic, rng, max_elements):
    """Every element of a small array; else the largest gradient and a random sample."""
    if analytic.size <= max_elements:
        return numpy.arange(analytic.size)
    sample = rng.choice(analytic.size, size=max_elements - 1, replace=False)
    return numpy.unique(numpy.append(sample, numpy.argmax(numpy.abs(analytic))))


def _numeric_derivative(value, position, loss):
    """Perturbs value[position] in place (value may be a view of a larger parameter)."""
    original = value[position].item()
    values = []
    for offset in (-2, -1, 1, 2):
        value[position] = original + offset * STEP
        values.append(loss())
    value[position] = original
    return (values[0] - 8 * values[1] + 8 * values[2] - values[3]) / (12 * STEP)


def self_test_batches(corpus, sequences, batch_size, max_steps=6):
    """A short batch to check, and another whose final state starts it (non-zero state)."""
    first, end = sequences.first, numpy.minimum(sequences.end, sequences.first + max_steps)
    count = min(batch_size, len(first))
    context = numpy.concatenate([[corpus.sb], corpus.stream]).astype(numpy.int32)
    check = data.make_batch(corpus.stream, context, first[:count], end[:count])
    rest = slice(count, 2 * count) if len(first) >= 2 * count else slice(0, count)
    warm_up = data.make_batch(corpus.stream, context, first[rest], end[rest])
    return warm_up, check


def as_float64(network):
    """A float64 copy of a network on its backend (the checks need double precision)."""
    copy = Network(network.spec, network.vocab, network.backend.with_dtype("float64"), network.bias)
    for name, value in copy.named_params().items():
        value[...] = network.named_params()[name].astype(value.dtype)
    return copy


def run_checks(network, corpus, sequences, batch_size, console, schedule):
    """Prints rwthlm's self-test lines; returns True when every check passes. The Schedule's
    --feedforward checks one time slice without recurrence; its --dropout (and
    --variational-dropout) applies the dropout masks of its epoch 1, batch 0 (the checks
    need masks that stay fixed)."""
    network = as_float64(network)
    warm_up, batch = self_test_batches(corpus, sequences, batch_size, max_steps=1 if schedule.feedforward else 6)
    _, state = network.log_probs(warm_up)
    if schedule.feedforward:
        state = network.without_recurrence(state)
    dropout = schedule.dropout_masks(network.backend, 1, 0)
    console.say("Testing gradient implementation" + (f" with dropout {schedule.dropout:g}" if dropout else "")
                + " ...")
    failures = []
    for check in gradient_checks(network, batch, state, dropout=dropout):
        console.say(f"  {check.name}: max relative error {check.error:.2e} "
                    f"({check.checked} of {check.total} elements)")
        if check.error > TOLERANCE:
            failures.append(check)
    if failures:
        worst = max(failures, key=lambda check: check.error)
        console.say(f"Gradient test FAILED: worst {worst.describe()}")
        return False
    console.say("Gradient test SUCCEEDED!")
    return True


def self_test_on_corpus(network, corpus, schedule, console):
    """rwthlm's --self-test: the checks on the text of --train in the Schedule's layout."""
    sequences = schedule.wrap(corpus)
    ok = run_checks(network, corpus, sequences, max(1, min(schedule.batch_size, 3)), console, schedule)
    return 0 if ok else 1


BUILTIN_NETWORKS = (
    "selftest-i6-m5",
    "selftest-36-l5-R4-M4-L3",
    "selftest-r5-m4-i3",
    "selftest-l4-r4-m3",
    "selftest-L4-M3-M3",
    "selftest-R4-24",
)


def synthetic_vocabulary(sb="<sb>"):
    """Fourteen words (six single-word classes, classes of 2, 3 and 3 words) and the boundary."""
    from rwthlm_py.text.vocabulary import remap

    classes = [0, 1, 2, 3, 4, 5, 6, 6, 7, 7, 7, 8, 8, 8]
    return remap([(f"w{k}", c) for k, c in enumerate(classes)], sb)


def synthetic_corpus(vocab, seed, num_lines=24, max_words=7):
    """Random sentences over the vocabulary (never the boundary word inside a line)."""
    rng = numpy.random.default_rng(seed)
    words = [k for k in range(len(vocab)) if k != vocab.sb]
    stream, starts = [], [0]
    for _ in range(num_lines):
        stream += rng.choice(words, size=int(rng.integers(0, max_words + 1))).tolist() + [vocab.sb]
        starts.append(len(stream))
    return data.Corpus("<generated>", numpy.asarray(stream, dtype=numpy.int32),
                       numpy.asarray(starts, dtype=numpy.int64), vocab.sb, 0)


def builtin_self_test(settings, network_path, console, backend=None):
    """Checks a given network (or a built-in set covering every layer type) on generated
    text, with the SelfTestSettings, on `backend` in float64 (default: numpy)."""
    import os

    from rwthlm_py.model.checkpoint import build_network, read_model
    from rwthlm_py.model.memory import require_memory, require_model_memory
    from rwthlm_py.model.network_spec import parse_network
    from rwthlm_py.text.vocabulary import Vocabulary

    schedule = settings.schedule
    backend = get_backend("numpy", "float64") if backend is None else backend.with_dtype("float64")
    if network_path is not None and os.path.exists(network_path):
        model_file = read_model(network_path)
        require_model_memory(model_file, backend, training=True)
        networks = [build_network(model_file, backend)]
    else:
        specs = [parse_network(network_path)] if network_path else [parse_network(s) for s in BUILTIN_NETWORKS]
        clustered = synthetic_vocabulary(settings.map_sb)
        full = Vocabulary(clustered.words, range(len(clustered)), clustered.sb_name)
        for spec in specs:
            require_memory(spec, full, settings.bias, backend, training=True)
        networks = (Network.build(spec, vocab, backend, seed=schedule.random_seed, bias=settings.bias)
                    for spec in specs for vocab in (clustered, full))
    # sequences for run_checks' batch of 3, short ones so that the many checks stay quick
    layout = dataclasses.replace(schedule, batch_size=max(schedule.batch_size, 3),
                                 sequence_length=min(schedule.sequence_length, 8))
    failed = 0
    for network in networks:
        vocab = network.vocab
        console.say(f"Network {network.spec.format()}, {len(vocab)} words in {vocab.num_classes} classes:")
        corpus = synthetic_corpus(vocab, schedule.random_seed)
        failed += not run_checks(network, corpus, layout.wrap(corpus), 3, console, schedule)
    return 1 if failed else 0
