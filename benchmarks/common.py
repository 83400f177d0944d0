"""What the benchmarks share: the cases, Zipf-distributed synthetic text and timing."""

import resource
import time

import numpy

MODELS = {"1x200": (200, 1), "2x650": (650, 2)}


def zipf_stream(vocab_size, length, seed=0):
    """Word ids drawn with p(k) proportional to 1/(k+1), like real text."""
    rng = numpy.random.default_rng(seed)
    weights = 1.0 / numpy.arange(1, vocab_size + 1)
    return rng.choice(vocab_size, size=length, p=weights / weights.sum()).astype(numpy.int32)


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
