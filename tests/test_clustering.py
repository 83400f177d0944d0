"""Word classes: the exchange algorithm's bookkeeping against brute force, and its result."""

import itertools

import numpy
import pytest

from rwthlm_py.text.clustering import (
    ExchangeState,
    class_vocabulary,
    count_bigrams,
    exchange_classes,
    frequency_classes,
)


def brute_objective(stream, classes, num_classes):
    """J = sum f(N(g,h)) - sum f(P(g)) - sum f(S(h)) counted directly from the stream."""
    f = lambda x: x * numpy.log(numpy.maximum(x, 1.0))  # noqa: E731
    N = numpy.zeros((num_classes, num_classes))
    for v, w in zip(stream[:-1], stream[1:], strict=True):
        N[classes[v], classes[w]] += 1
    return f(N).sum() - f(N.sum(axis=1)).sum() - f(N.sum(axis=0)).sum()


def random_case(seed, words=12, classes=4, length=300):
    rng = numpy.random.default_rng(seed)
    stream = rng.integers(0, words, size=length)
    stream[::7] = stream[1::7][: len(stream[::7])]  # some w w bigrams
    initial = numpy.arange(words) % classes
    return stream, initial, words, classes


def test_bigram_counts():
    bigrams = count_bigrams([0, 1, 1, 2, 0, 1], 3)
    assert bigrams.self_counts.tolist() == [0, 1, 0]
    successors = {w: dict(zip(*map(list, bigrams.successors[w]), strict=True)) for w in range(3)}
    assert successors == {0: {1: 2}, 1: {2: 1}, 2: {0: 1}}
    assert bigrams.as_predecessor.tolist() == [2, 2, 1]
    assert bigrams.as_successor.tolist() == [1, 3, 1]


@pytest.mark.parametrize("seed", range(4))
def test_gains_equal_brute_force_differences(seed):
    stream, classes, words, C = random_case(seed)
    state = ExchangeState(count_bigrams(stream, words), classes, C)
    assert state.objective() == pytest.approx(brute_objective(stream, classes, C))
    word = int(stream[5])
    r, l = state.neighbour_classes(word)
    state.move(word, r, l, -1)
    gains = state.gains(word, r, l)
    without = state.objective()
    for b in range(C):
        moved = classes.copy()
        moved[word] = b
        assert gains[b] == pytest.approx(brute_objective(stream, moved, C) - without, abs=1e-9)


def test_exchange_raises_the_likelihood_and_is_deterministic():
    stream, initial, words, C = random_case(7, words=30, classes=5, length=2000)
    reports = []
    found = exchange_classes(stream, words, C, initial, seed=3, max_iterations=10,
                             report=lambda *values: reports.append(values))
    perplexities = [report[2] for report in reports]
    assert all(a >= b - 1e-9 for a, b in itertools.pairwise(perplexities))
    assert perplexities[-1] < perplexities[0]
    assert brute_objective(stream, found, C) > brute_objective(stream, initial, C)
    assert numpy.bincount(found, minlength=C).min() >= 1
    again = exchange_classes(stream, words, C, initial, seed=3, max_iterations=10)
    assert numpy.array_equal(found, again)


def test_exchange_finds_words_that_share_their_contexts():
    # two families: a-words are followed by x-words, b-words by y-words, and vice versa
    rng = numpy.random.default_rng(0)
    a, b, x, y = [0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]
    stream = []
    for _ in range(3000):
        if rng.random() < 0.5:
            stream += [rng.choice(a), rng.choice(x)]
        else:
            stream += [rng.choice(b), rng.choice(y)]
    initial = numpy.arange(12) % 4
    found = exchange_classes(numpy.array(stream), 12, 4, initial, seed=1, max_iterations=20)
    groups = {tuple(sorted(numpy.flatnonzero(found == k))) for k in range(4)}
    assert groups == {tuple(a), tuple(b), tuple(x), tuple(y)}


def test_class_vocabulary_from_a_text(toy):
    vocab = class_vocabulary(toy / "train.txt", 5, "exchange", max_iterations=5)
    assert vocab.num_classes == 5
    frequency = class_vocabulary(toy / "train.txt", 5, "frequency")
    assert frequency.num_classes <= 5 and len(frequency) == len(vocab)
    assert frequency_classes({"a": 3, "b": 1}, 2)["a"] == 0


def test_frequency_classes_are_as_many_as_asked(tmp_path):
    # five equally frequent tokens (a b c d and <sb>): plain binning gives only four classes
    (tmp_path / "text").write_text("a b c d\n" * 10)
    assert len(set(frequency_classes({w: 10 for w in "abcd"}, 5, sentences=10).values())) == 4
    assert class_vocabulary(tmp_path / "text", 5, "frequency").num_classes == 5
    assert class_vocabulary(tmp_path / "text", 5, "exchange").num_classes == 5
