"""What the benchmarks share: the cases, Zipf-distributed synthetic text, the vocabulary and
batches made from it, and timing."""

import resource
import time

import numpy

from rwthlm_py.text import data
from rwthlm_py.text.clustering import frequency_classes
from rwthlm_py.text.vocabulary import Vocabulary, vocabulary_from_counts

MODELS = {"1x200": (200, 1), "2x650": (650, 2)}


def zipf_stream(vocab_size, length, seed=0):
    """Word ids drawn with p(k) proportional to 1/(k+1), like real text."""
    rng = numpy.random.default_rng(seed)
    weights = 1.0 / numpy.arange(1, vocab_size + 1)
    return rng.choice(vocab_size, size=length, p=weights / weights.sum()).astype(numpy.int32)


def benchmark_vocabulary(size, num_classes):
    """w0 ... w{size-2} and <sb>: each word its own class (num_classes None), or num_classes
    frequency-binned classes of Zipf-distributed counts."""
    words = [f"w{k}" for k in range(size - 1)]
    if num_classes is None:
        return Vocabulary(words + ["<sb>"], range(size))
    counts = numpy.bincount(zipf_stream(size - 1, 2_000_000, seed=7), minlength=size - 1)
    ordered = {word: int(count) + 1 for word, count in zip(words, counts, strict=True)}
    return vocabulary_from_counts(ordered, classes=frequency_classes(ordered, num_classes, sentences=1))


def synthetic_batches(vocab, batch_size, steps, count):
    """`count` batches of batch_size sequences of `steps` Zipf-distributed words."""
    stream = zipf_stream(len(vocab), (steps + 1) * batch_size * count + 1, seed=3)
    context = numpy.concatenate([[vocab.sb], stream]).astype(numpy.int32)
    starts = numpy.arange(batch_size * count) * (steps + 1)
    return [data.make_batch(stream, context, starts[k::count], starts[k::count] + steps) for k in range(count)]


def best_time(function, repeats, warm_up=2):
    """The fastest of `repeats` calls after `warm_up` calls (the least disturbed one)."""
    for _ in range(warm_up):
        function()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def matmul_flops_per_word(hidden, layers, vocab_size, output_width):
    """Multiply-add FLOPs of the forward pass per word: LSTM gates and the output layer.

    output_width is V for a full softmax, C + the expected size of the target's class for
    a class-factored one. Training costs three times this (forward, and the two products
    of backpropagation).
    """
    lstm = layers * 2 * 4 * hidden * (hidden + hidden)
    return lstm + 2 * hidden * output_width


def peak_memory_mb():
    """The largest resident set this process has had, in MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
