"""The within-class word softmaxes of a class-factored output, for a whole batch at once.

Each scored position n whose target w is in a class c with more than one word needs

    log p(w | c, h_n) = log softmax(W_word[c] h_n + b_word[c])[w - start(c)]

Positions are sorted by class into groups (one per target class in the batch). The logits
of every group are written into one flat buffer, group after group, each as a [K_g, n_g]
block L = W_word[c] h^T (K_g = |c| words, n_g positions: column j is position j's
softmax), described by a table the fused kernels read (rwthlm_py.kernels.softmax), so
that each step of the forward and backward pass is one operation for all groups. With e
the exponentials, s their column sums and g_n = d(loss)/d(log p_n) (g = -1 in training),
the gradient of the logits is

    E = e * r + onehot(target) * g,    r = -g / s       (r, g per column)

and per group dW = E h, dh = E^T W, db = the row sums of E. dW is handed on as a gradient
that applies itself (RowGradient.add_computed): forming it would write a K x H matrix per
group, nearly all of W_word per batch, only to read it again for the update.

The blocks are [K_g, n_g] rather than [n_g, K_g] because every product then reads W_word
in its stored row order, which BLAS does at full speed for any n_g, and neighbouring
threads of a GPU kernel read neighbouring columns.
"""

import collections
import itertools

import numpy

from rwthlm_py.kernels.softmax import COUNT, FIRST, OFFSET, ROW, STACKED, TABLE_COLUMNS, WIDTH

OnDevice = collections.namedtuple("OnDevice", "positions target_index used_rows table")
WordCache = collections.namedtuple("WordCache", "groups on_device h_sorted weights bias buffer totals")


class WordGroups:
    """The groups of one batch (host arrays): which positions, which rows of W_word, where
    in the buffer.

    positions[M]: the clustered positions sorted by class, target_index[M]: where each
    target's logit is in the buffer, table[G, 6]: per group its block's offset in the
    buffer, its first position (index into `positions`), n_g, the class's first row of
    W_word, K_g and its first stacked row (rwthlm_py.kernels.softmax), used_rows[R]: the
    rows of W_word the groups use, in stacked order.
    """

    def __init__(self, classes, targets, class_start, class_size, shortlist):
        clustered = numpy.flatnonzero(classes >= shortlist)
        self.positions = clustered[numpy.argsort(classes[clustered], kind="stable")]
        sorted_classes = classes[self.positions]
        within = targets[self.positions] - class_start[sorted_classes]
        width = class_size[sorted_classes].astype(numpy.int64)  # K of each position's group
        block_starts = numpy.concatenate([[0], numpy.cumsum(width)])  # as if n_g were 1
        self.size = int(block_starts[-1])
        firsts = numpy.flatnonzero(numpy.diff(sorted_classes, prepend=-1))
        lasts = numpy.append(firsts[1:], len(self.positions))
        counts = lasts - firsts
        group_of = numpy.repeat(numpy.arange(len(firsts)), counts)
        first_of = firsts[group_of]
        # logit (k, j) of a group's block is at offset + k n_g + j
        self.target_index = (block_starts[first_of] + within * counts[group_of]
                             + numpy.arange(len(self.positions)) - first_of)
        self.table = numpy.empty((len(firsts), TABLE_COLUMNS), dtype=numpy.int64)
        self.table[:, OFFSET] = block_starts[firsts]
        self.table[:, FIRST] = firsts
        self.table[:, COUNT] = counts
        self.table[:, ROW] = class_start[sorted_classes[firsts]] - shortlist
        self.table[:, WIDTH] = width[firsts]
        self.table[:, STACKED] = numpy.cumsum(self.table[:, WIDTH]) - self.table[:, WIDTH]
        self.rows_used = int(self.table[:, WIDTH].sum())
        offsets = numpy.repeat(self.table[:, ROW] - self.table[:, STACKED], self.table[:, WIDTH])
        self.used_rows = offsets + numpy.arange(self.rows_used)

    def __len__(self):
        return len(self.positions)

    def to_device(self, backend):
        """positions, target_index, used_rows and table on the backend, in one copy."""
        parts = (self.positions, self.target_index, self.used_rows, self.table.reshape(-1))
        packed = backend.asarray(numpy.concatenate(parts).astype(numpy.int64), dtype=numpy.int64)
        bounds = numpy.cumsum([0] + [len(part) for part in parts]).tolist()
        views = [packed[start:stop] for start, stop in itertools.pairwise(bounds)]
        return OnDevice(*views[:3], views[3].reshape(self.table.shape))


def word_log_probs(backend, groups, h, weights, bias, train):
    """(log p(target | class, h) of every grouped position [M], the groups on the device,
    the cache for training). h[N,H] are all positions' inputs; weights = W_word, bias =
    b_word (or None)."""
    xp, kernels = backend.xp, backend.kernels
    on_device = groups.to_device(backend)
    h_sorted = h[on_device.positions]
    h_columns = xp.ascontiguousarray(h_sorted.T)  # [H, M]: each group's h^T is a column range
    buffer = xp.empty(groups.size, dtype=h.dtype)
    logp = xp.empty(len(groups), dtype=h.dtype)
    totals = xp.empty(len(groups), dtype=h.dtype)
    kernels.word_logits(weights, bias, h_columns, on_device.table, buffer)
    kernels.word_softmax_pick(buffer, on_device.table, on_device.target_index, logp, totals)
    cache = WordCache(groups, on_device, h_sorted, weights, bias, buffer, totals) if train else None
    return logp, on_device, cache


def word_gradients(backend, cache, d_logp):
    """(db[R] or None, dh_sorted[M,H]) from d(loss)/d(log p)[M] (None: the loss is
    -sum log p); the buffer's exponentials become E for word_weight_gradient. db stacks
    the groups' bias gradients in group order (the rows `used_rows`)."""
    xp, kernels = backend.xp, backend.kernels
    table = cache.on_device.table
    g = None if d_logp is None else xp.ascontiguousarray(d_logp, dtype=cache.totals.dtype)
    kernels.word_logit_gradient(cache.buffer, table, cache.on_device.target_index, cache.totals, g)
    dh_sorted = xp.empty_like(cache.h_sorted)
    kernels.word_input_gradient(cache.buffer, cache.weights, table, dh_sorted)
    db = None
    if cache.bias is not None:
        db = xp.empty(cache.groups.rows_used, dtype=cache.h_sorted.dtype)
        kernels.word_bias_gradient(cache.buffer, table, db)
    return db, dh_sorted


def word_weight_gradient(backend, cache):
    """The gradient of W_word's used rows, sum over groups of E h, as (apply(W, scale),
    squared_norm()) for RowGradient.add_computed; call after word_gradients."""
    kernels, table, rows_used = backend.kernels, cache.on_device.table, cache.groups.rows_used

    def apply(weights, scale):
        kernels.word_weight_update(weights, scale, cache.buffer, cache.h_sorted, table, rows_used)

    def squared_norm():
        return kernels.word_weight_squared_norm(cache.buffer, cache.h_sorted, table, rows_used)

    return apply, squared_norm
