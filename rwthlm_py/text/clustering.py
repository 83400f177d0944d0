"""Word classes from a training text: Mikolov's frequency binning and the exchange algorithm.

The exchange algorithm (Kneser & Ney 1993; Martin, Liermann & Ney 1998; what mkcls does)
maximises the likelihood of the text under the class bigram model
p(w | v) = p(c(w) | c(v)) p(w | c(w)). With N(g,h) the class bigram counts, P(g) and S(h)
their row and column sums (g as predecessor, h as successor) and f(x) = x ln x, the
log-likelihood is, up to a term that does not depend on the classes,

    J = sum_{g,h} f(N(g,h)) - sum_g f(P(g)) - sum_h f(S(h))

Each iteration visits every word and moves it to the class that raises J most. For word w
with successor class counts r, predecessor class counts l (both without the bigram w w,
which occurs s times) and n_p, n_s its counts as predecessor and successor, joining class b
changes J by

    sum_{h != b} [f(N(b,h) + r(h)) - f(N(b,h))] + sum_{g != b} [f(N(g,b) + l(g)) - f(N(g,b))]
    + f(N(b,b) + r(b) + l(b) + s) - f(N(b,b)) - [f(P(b) + n_p) - f(P(b))] - [f(S(b) + n_s) - f(S(b))]

computed for all b at once over the classes that w's neighbours belong to: O(C) work per
neighbouring class, and memory O(C^2 + bigrams), so that 100,000-word vocabularies fit.
The bigrams are those of the token stream the network sees: every line followed by <sb>.
Words are visited in an order drawn from the seed; a word alone in its class stays there,
so that no class empties. It stops when no word moves, or at the iteration or time limit.
"""

import dataclasses
import math
import time

import numpy

from rwthlm_py.errors import InputError
from rwthlm_py.output.reporting import format_duration
from rwthlm_py.text.data import read_corpus
from rwthlm_py.text.textio import DEFAULT_ENCODING
from rwthlm_py.text.vocabulary import count_words, vocabulary_from_counts

METHODS = ("frequency", "exchange")


def frequency_classes(counts, num_classes, sb="<sb>", sentences=0):
    """Mikolov's frequency binning: words by falling count share out the unigram mass.

    Class k receives the words whose cumulative relative frequency falls in
    (k/C, (k+1)/C]; frequent words end up alone in their class, rare words share one.
    `sentences` counts the `<sb>` tokens, one per training line.
    """
    if num_classes < 1:
        raise InputError("the number of classes must be at least 1")
    counts = dict(counts)
    counts[sb] = counts.get(sb, 0) + sentences
    ordered = sorted(counts, key=lambda word: -counts[word])  # stable: ties keep text order
    total = float(sum(counts.values())) or 1.0
    classes, cumulative, current = {}, 0.0, 0
    for word in ordered:
        cumulative += counts[word] / total
        classes[word] = current
        if cumulative > (current + 1) / num_classes and current < num_classes - 1:
            current += 1
    return classes


@dataclasses.dataclass
class Bigrams:
    """Bigram counts of a token stream, as successor and predecessor lists per word."""

    successors: list  # successors[w] = (word ids, counts), without the bigram (w, w)
    predecessors: list
    self_counts: numpy.ndarray  # N(w, w)
    as_predecessor: numpy.ndarray  # n_p(w) = sum_x N(w, x)
    as_successor: numpy.ndarray  # n_s(w) = sum_v N(v, w)


def count_bigrams(stream, vocab_size):
    """The bigrams (stream[i-1], stream[i]) of a token stream of ids."""
    stream = numpy.asarray(stream, dtype=numpy.int64)
    keys = stream[:-1] * vocab_size + stream[1:]
    unique, counts = numpy.unique(keys, return_counts=True)
    first, second = unique // vocab_size, unique % vocab_size
    self_counts = numpy.zeros(vocab_size, dtype=numpy.int64)
    loops = first == second
    self_counts[first[loops]] = counts[loops]
    first, second, counts = first[~loops], second[~loops], counts[~loops]
    return Bigrams(
        successors=_group(first, second, counts, vocab_size),
        predecessors=_group(second, first, counts, vocab_size),
        self_counts=self_counts,
        as_predecessor=numpy.bincount(stream[:-1], minlength=vocab_size),
        as_successor=numpy.bincount(stream[1:], minlength=vocab_size),
    )


def _group(keys, values, counts, size):
    """[(values, counts) of every key 0..size-1]."""
    order = numpy.argsort(keys, kind="stable")
    keys, values, counts = keys[order], values[order], counts[order]
    bounds = numpy.searchsorted(keys, numpy.arange(size + 1))
    return [(values[bounds[k]:bounds[k + 1]], counts[bounds[k]:bounds[k + 1]]) for k in range(size)]


def xlogx(x):
    """f(x) = x ln x for counts (f(0) = 0)."""
    return x * numpy.log(numpy.maximum(x, 1.0))


class ExchangeState:
    """Class bigram counts N, their sums P and S, and the class of every word."""

    def __init__(self, bigrams, classes, num_classes):
        self.bigrams, self.classes, self.C = bigrams, numpy.array(classes, dtype=numpy.int64), num_classes
        C = num_classes
        self.N = numpy.zeros((C, C))
        for word, (successors, counts) in enumerate(bigrams.successors):
            numpy.add.at(self.N[self.classes[word]], self.classes[successors], counts)
        numpy.add.at(self.N, (self.classes, self.classes), bigrams.self_counts)
        self.P = numpy.bincount(self.classes, weights=bigrams.as_predecessor, minlength=C)
        self.S = numpy.bincount(self.classes, weights=bigrams.as_successor, minlength=C)
        self.sizes = numpy.bincount(self.classes, minlength=C)

    def objective(self):
        return xlogx(self.N).sum() - xlogx(self.P).sum() - xlogx(self.S).sum()

    def neighbour_classes(self, word):
        """(r, l) of the word: successor and predecessor counts per class, without w w."""
        successors, s_counts = self.bigrams.successors[word]
        predecessors, p_counts = self.bigrams.predecessors[word]
        r = numpy.bincount(self.classes[successors], weights=s_counts, minlength=self.C)
        l = numpy.bincount(self.classes[predecessors], weights=p_counts, minlength=self.C)
        return r, l

    def move(self, word, r, l, sign):
        """Adds (sign = 1) or removes (sign = -1) the word's counts to or from its class."""
        b = self.classes[word]
        self.N[b, :] += sign * r
        self.N[:, b] += sign * l
        self.N[b, b] += sign * self.bigrams.self_counts[word]
        self.P[b] += sign * self.bigrams.as_predecessor[word]
        self.S[b] += sign * self.bigrams.as_successor[word]
        self.sizes[b] += sign

    def gains(self, word, r, l):
        """The change of J for joining each class b, with the word out of every class."""
        N = self.N
        rows, columns = numpy.flatnonzero(r), numpy.flatnonzero(l)
        # sum over h of [f(N(b,h) + r(h)) - f(N(b,h))], for every b; then drop h = b
        successor_terms = xlogx(N[:, rows] + r[rows]) - xlogx(N[:, rows])
        gain = successor_terms.sum(axis=1)
        gain[rows] -= successor_terms[rows, numpy.arange(len(rows))]
        predecessor_terms = xlogx(N[columns, :] + l[columns, None]) - xlogx(N[columns, :])
        gain += predecessor_terms.sum(axis=0)
        gain[columns] -= predecessor_terms[numpy.arange(len(columns)), columns]
        diagonal = numpy.diagonal(N)
        gain += xlogx(diagonal + r + l + self.bigrams.self_counts[word]) - xlogx(diagonal)
        gain -= xlogx(self.P + self.bigrams.as_predecessor[word]) - xlogx(self.P)
        gain -= xlogx(self.S + self.bigrams.as_successor[word]) - xlogx(self.S)
        return gain


def exchange_classes(stream, vocab_size, num_classes, initial, seed=1, max_iterations=20,
                     time_limit=None, report=None):
    """Exchange-algorithm classes (an array over word ids) starting from `initial`.

    report(iteration, moved, perplexity, seconds) is called after every iteration, with the
    class bigram perplexity of the stream.
    """
    if not 1 <= num_classes <= vocab_size:
        raise InputError(f"the number of classes must lie between 1 and the vocabulary size {vocab_size}")
    started = time.perf_counter()
    bigrams = count_bigrams(stream, vocab_size)
    state = ExchangeState(bigrams, initial, num_classes)
    constant = xlogx(bigrams.as_successor.astype(numpy.float64)).sum()
    tokens = len(stream) - 1
    rng = numpy.random.default_rng(seed)
    if report is not None:
        report(0, 0, math.exp(-(state.objective() + constant) / tokens), time.perf_counter() - started)
    for iteration in range(1, max_iterations + 1):
        moved = sum(_visit(state, int(word)) for word in rng.permutation(vocab_size))
        if report is not None:
            perplexity = math.exp(-(state.objective() + constant) / tokens)
            report(iteration, moved, perplexity, time.perf_counter() - started)
        if moved == 0 or (time_limit is not None and time.perf_counter() - started > time_limit):
            break
    return state.classes


def _visit(state, word):
    """Moves the word to its best class; returns whether it moved."""
    current = state.classes[word]
    if state.sizes[current] == 1 or (state.bigrams.as_successor[word] == 0
                                     and state.bigrams.as_predecessor[word] == 0):
        return False
    r, l = state.neighbour_classes(word)
    state.move(word, r, l, -1)
    gain = state.gains(word, r, l)
    best = int(numpy.argmax(gain))
    if gain[best] <= gain[current] + 1e-9 * abs(gain[current]):
        best = current
    state.classes[word] = best
    state.move(word, r, l, +1)
    return best != current


def class_vocabulary(path, num_classes, method="exchange", sb="<sb>", seed=1, max_iterations=20,
                     time_limit=None, console=None, encoding=DEFAULT_ENCODING):
    """A vocabulary of the words of a training text (in `encoding`) in exactly `num_classes` classes."""
    if method not in METHODS:
        raise InputError(f"unknown class method '{method}' (choose from {', '.join(METHODS)})")
    counts, lines = count_words(path, encoding)
    plain = vocabulary_from_counts(counts, sb)
    if num_classes > len(plain):
        raise InputError(f"--classes {num_classes} is more than the {len(plain)} words of the text", path)
    binned = frequency_classes(counts, num_classes, sb, sentences=lines)
    classes = _spread_over(numpy.array([binned[word] for word in plain.words]), num_classes)
    if method == "exchange":
        if console is not None:
            console.say(f"Clustering {len(plain)} words into {num_classes} classes (exchange algorithm) ...")
        stream = read_corpus(path, plain, encoding=encoding).stream
        classes = exchange_classes(stream, len(plain), num_classes, classes, seed, max_iterations,
                                   time_limit, _reporter(console, len(plain), max_iterations))
    return vocabulary_from_counts(counts, sb, dict(zip(plain.words, classes.tolist(), strict=True)))


def _spread_over(classes, num_classes):
    """The classes with every empty class given a word of the largest class.

    Frequency binning leaves classes empty when a word holds more than 1/C of the mass;
    moving the last word of the largest class into each empty one gives exactly C classes,
    which the exchange algorithm, keeping every class it starts with, then keeps.
    """
    classes = classes.copy()
    sizes = numpy.bincount(classes, minlength=num_classes)
    for empty in numpy.flatnonzero(sizes == 0):
        largest = int(numpy.argmax(sizes))
        word = numpy.flatnonzero(classes == largest)[-1]
        classes[word] = empty
        sizes[largest] -= 1
        sizes[empty] += 1
    return classes


def _reporter(console, vocab_size, max_iterations):
    """Progress lines: each iteration's result, speed and the most time that remains
    (the algorithm may stop earlier, when no word moves)."""
    if console is None:
        return None
    previous = [0.0]

    def report(iteration, moved, perplexity, seconds):
        line = (f"iteration {iteration}/{max_iterations}: {moved} words moved, class bigram perplexity "
                f"{perplexity:.2f}, {seconds:.1f} s")
        took = seconds - previous[0]
        if iteration > 0 and took > 0:
            remaining = (max_iterations - iteration) * took
            line += f" ({vocab_size / took:,.0f} words/s; at most {format_duration(remaining)} more)"
        previous[0] = seconds
        console.say(line)

    return report

