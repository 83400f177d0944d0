"""Dropout masks drawn where they are used, from a counter-based generator: Philox4x32-10
(Salmon, Moraes, Dror and Shaw 2011, "Parallel random numbers: as easy as 1, 2, 3", the
generator of Random123 and cuRAND).

Philox maps a 128-bit counter (c0, c1, c2, c3) and a 64-bit key (k0, k1) to four 32-bit
words by ten rounds of

    (c0, c1, c2, c3) <- (hi(M1 c2) ^ c1 ^ k0, lo(M1 c2), hi(M0 c0) ^ c3 ^ k1, lo(M0 c0))
    (k0, k1) <- (k0 + W0, k1 + W1)          (all mod 2^32)

with M0, M1 the multipliers and W0, W1 the key increments below. Nothing is carried from
one counter to the next, so any element of a mask can be drawn alone, in any order, by the
numpy body or by a CUDA thread, and both draw the same bits.

    dropout_mask(mask, first_column, key, threshold, scale, x=None, dropped=None)

fills mask [T, B, H]: element (t, b, u) is `scale` where word u % 4 of Philox((u // 4,
first_column + b, t, 0), key) is at least `threshold`, else 0; given x [T', B, H] it also
writes dropped = x * mask in the same pass (a variational mask [1, B, H] serving every
step of x), so that dropping a layer's output is one launch. The position is the counter,
so columns [s, s + B) of a wider batch are drawn alone (data-parallel ranks), and the words
are compared as integers, so that both backends keep exactly the same elements. With
threshold = `keep_threshold(p)` = ceil(p 2^32) (at most 2^32 - 1) an element is kept with
probability 1 - p (to within 2^-32).
"""

import math
import sys

import numpy

PHILOX_ROUNDS = 10
PHILOX_M0, PHILOX_M1 = 0xD2511F53, 0xCD9E8D57  # the round multipliers
PHILOX_W0, PHILOX_W1 = 0x9E3779B9, 0xBB67AE85  # the key increments (golden ratio, sqrt(3) - 1)
WORD = 0xFFFFFFFF
WORDS_PER_COUNTER = 4
CHUNK_COUNTERS = 1 << 16  # counters drawn at once by the numpy body


def philox4x32_10(counter, key):
    """The four uint32 words of Philox4x32-10 of `counter` (four integers or integer arrays
    that broadcast together, each below 2^32) under `key` (two integers below 2^32), element
    by element. The 32-bit by 32-bit products are taken in uint64, their halves read as the
    two uint32 words they are stored in; everything else is done in place in uint32."""
    shape = numpy.broadcast_shapes(*(numpy.shape(part) for part in counter))
    c = [numpy.empty(shape, dtype=numpy.uint32) for _ in range(WORDS_PER_COUNTER)]
    for word, part in zip(c, counter, strict=True):
        word[...] = part
    products = [numpy.empty(shape, dtype=numpy.uint64) for _ in range(2)]
    low, high = (0, 1) if sys.byteorder == "little" else (1, 0)
    halves = [product.reshape(-1).view(numpy.uint32).reshape(shape + (2,)) for product in products]
    k0, k1 = int(key[0]) & WORD, int(key[1]) & WORD
    for _ in range(PHILOX_ROUNDS):
        numpy.multiply(c[0], numpy.uint64(PHILOX_M0), out=products[0])
        numpy.multiply(c[2], numpy.uint64(PHILOX_M1), out=products[1])
        c[1] ^= halves[1][..., high]
        c[1] ^= numpy.uint32(k0)
        c[3] ^= halves[0][..., high]
        c[3] ^= numpy.uint32(k1)
        c[0][...] = halves[1][..., low]
        c[2][...] = halves[0][..., low]
        c = [c[1], c[0], c[3], c[2]]
        k0, k1 = (k0 + PHILOX_W0) & WORD, (k1 + PHILOX_W1) & WORD
    return tuple(c)


def keep_threshold(probability):
    """The least word kept when dropping with `probability` in [0, 1): ceil(p 2^32), exact
    (p 2^32 is a float64 scaled by a power of two), below 2^32."""
    return min(math.ceil(probability * 2.0 ** 32), WORD)


def dropout_mask(mask, first_column, key, threshold, scale, x=None, dropped=None):
    """Fills `mask` [T, B, H] with `scale` where the element's Philox word is at least
    `threshold`, else 0 (the module docstring has the counter of each element), and given
    `x`, `dropped` with x * mask. Drawn a few time steps at a time, so that the generator's
    state stays in the cache."""
    steps, columns, units = mask.shape
    groups = -(-units // WORDS_PER_COUNTER)
    group_numbers = numpy.arange(groups, dtype=numpy.uint32)[None, None, :]
    column_numbers = numpy.arange(first_column, first_column + columns, dtype=numpy.uint32)[None, :, None]
    chunk = max(1, CHUNK_COUNTERS // (columns * groups))
    for start in range(0, steps, chunk):
        times = numpy.arange(start, min(start + chunk, steps), dtype=numpy.uint32)[:, None, None]
        words = philox4x32_10((group_numbers, column_numbers, times, 0), key)
        keep = numpy.empty((len(times), columns, groups, WORDS_PER_COUNTER), dtype=bool)
        for index, word in enumerate(words):
            numpy.greater_equal(word, numpy.uint32(threshold), out=keep[..., index])
        flat = keep.reshape(len(times), columns, groups * WORDS_PER_COUNTER)[:, :, :units]
        numpy.multiply(flat, scale, out=mask[start:start + len(times)])
    if x is not None:
        numpy.multiply(x, mask, out=dropped)


CUDA_SOURCE = r"""
extern "C" {

// Philox4x32-10 of the counter c under the key (k0, k1), in place (kernels/dropout.py).
__device__ __forceinline__ void philox4x32_10(unsigned int* c, unsigned int k0, unsigned int k1) {
    for (int round = 0; round < 10; ++round) {
        unsigned long long p0 = (unsigned long long)0xD2511F53u * c[0];
        unsigned long long p1 = (unsigned long long)0xCD9E8D57u * c[2];
        unsigned int next0 = (unsigned int)(p1 >> 32) ^ c[1] ^ k0;
        unsigned int next2 = (unsigned int)(p0 >> 32) ^ c[3] ^ k1;
        c[0] = next0;
        c[1] = (unsigned int)p1;
        c[2] = next2;
        c[3] = (unsigned int)p0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
}

// A thread per four units of one (time, column) of x's steps (of the mask's without x):
// the four words of the counter (unit / 4, first_column + column, time, 0), each kept
// (scale) where at least threshold, and x times them into dropped. A variational mask
// (one step) is drawn with time 0 by every step's threads, and written by step 0's.
__global__ void dropout_mask(real* mask, const real* x, real* dropped, int has_x, int steps, int columns,
                             int units, int variational, long long first_column, long long key0, long long key1,
                             long long threshold, real scale) {
    long long groups = (units + 3) / 4;
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= (long long)steps * columns * groups) return;
    long long group = k % groups, column = (k / groups) % columns, time = k / (groups * columns);
    long long mask_time = variational ? 0 : time;
    unsigned int c[4] = {(unsigned int)group, (unsigned int)(first_column + column), (unsigned int)mask_time, 0u};
    philox4x32_10(c, (unsigned int)key0, (unsigned int)key1);
    long long first = (time * columns + column) * units + group * 4;
    real* mask_out = mask + (mask_time * columns + column) * units + group * 4;
    for (int word = 0; word < 4 && group * 4 + word < units; ++word) {
        real m = (long long)c[word] >= threshold ? scale : (real)0;
        if (mask_time == time) mask_out[word] = m;
        if (has_x) dropped[first + word] = x[first + word] * m;
    }
}

}
"""
