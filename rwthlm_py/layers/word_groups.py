"""The within-class word softmaxes of a class-factored output, for a whole batch at once.

Each scored position n whose target w is in a class c with more than one word needs

    log p(w | c, h_n) = log softmax(W_word[c] h_n + b_word[c])[w - start(c)]

Positions are sorted by class into groups (one per target class in the batch). The logits
of every group are written into one flat buffer, group after group, each as a [K_g, n_g]
block L = W_word[c] h^T (K_g = |c| words, n_g positions: column j is position j's
softmax), so that the element-wise work (exp, picking the targets, the target corrections
of the gradient) is one call for the whole batch and only the matrix products remain per
group. With e the exponentials, s their column sums and g_n = d(loss)/d(log p_n) (g = -1 in
training), the gradient of the logits is

    E = e * r + onehot(target) * g,    r = -g / s       (r, g per column)

and per group dW = E h, dh = E^T W, db = the row sums of E. dW is handed on as that
product (RowGradient.add_product): forming it would write a K x H matrix per group, nearly
all of W_word per batch, only to read it again for the update.

The blocks are [K_g, n_g] rather than [n_g, K_g] because every product then reads W_word
in its stored row order, which BLAS does at full speed for any n_g (blas_matmul takes
care of n_g = 1). As in log_softmax_pick, no shift by the maximum is made unless a column
sum leaves SAFE_TOTALS; such columns are computed again, shifted.
"""

import numpy

from rwthlm_py.layers.functional import blas_matmul

# A row sum s of exponentials inside these bounds is exact enough without the shift: no
# term overflowed, and the terms that underflowed are below 1e-14 of the largest.
SAFE_TOTALS = {"float32": (1e-20, 1e30), "float64": (1e-200, 1e200)}


class WordGroups:
    """The groups of one batch: which positions, which rows of W_word, where in the buffer.

    positions[M]: the clustered positions sorted by class (host ints), within[M]: each
    target's index inside its class, target_index[M]: where its logit is in the buffer, and
    per group (rows, first, last, offset): its slice of W_word, its range in `positions`
    and the start of its block in the buffer.
    """

    def __init__(self, classes, targets, class_start, class_size, shortlist):
        clustered = numpy.flatnonzero(classes >= shortlist)
        self.positions = clustered[numpy.argsort(classes[clustered], kind="stable")]
        sorted_classes = classes[self.positions]
        self.within = targets[self.positions] - class_start[sorted_classes]
        width = class_size[sorted_classes].astype(numpy.int64)  # K of each position's group
        block_starts = numpy.concatenate([[0], numpy.cumsum(width)])  # as if n_g were 1
        self.size = int(block_starts[-1])
        firsts = numpy.flatnonzero(numpy.diff(sorted_classes, prepend=-1))
        lasts = numpy.append(firsts[1:], len(self.positions))
        group_of = numpy.repeat(numpy.arange(len(firsts)), lasts - firsts)
        first_of = firsts[group_of]
        # logit (k, j) of a group's block is at offset + k n_g + j
        self.target_index = (block_starts[first_of] + self.within * (lasts - firsts)[group_of]
                             + numpy.arange(len(self.positions)) - first_of)
        self.groups = []
        for first, last in zip(firsts.tolist(), lasts.tolist()):
            start = int(class_start[sorted_classes[first]]) - shortlist
            rows = slice(start, start + int(width[first]))
            self.groups.append((rows, first, last, int(block_starts[first])))

    def __len__(self):
        return len(self.positions)

    def row_runs(self):
        """The rows of W_word the groups use, as runs of adjacent classes: (rows of W_word,
        rows of the stacked gradient) slice pairs, in group order."""
        runs, stacked = [], 0
        for rows, *_ in self.groups:
            width = rows.stop - rows.start
            if runs and runs[-1][0].stop == rows.start:
                previous, previous_stacked = runs[-1]
                runs[-1] = (slice(previous.start, rows.stop), slice(previous_stacked.start, stacked + width))
            else:
                runs.append((rows, slice(stacked, stacked + width)))
            stacked += width
        return runs

    def rows_used(self):
        """How many rows of W_word the groups use."""
        return sum(rows.stop - rows.start for rows, *_ in self.groups)


def word_log_probs(backend, groups, h, weights, bias, train):
    """log p(target | class, h) of every grouped position [M], and the cache for training.

    h[N,H] are all positions' inputs; weights = W_word, bias = b_word (or None).
    """
    xp = backend.xp
    h_sorted = h[xp.asarray(groups.positions)]
    h_columns = xp.ascontiguousarray(h_sorted.T)  # [H, M]: each group's h^T is a column range
    buffer = xp.empty(groups.size, dtype=h.dtype)
    totals = xp.empty(len(groups), dtype=h.dtype)
    for rows, first, last, offset in groups.groups:
        logits = _block(buffer, rows, first, last, offset)
        blas_matmul(weights[rows], h_columns[:, first:last], out=logits)
        if bias is not None:
            logits += bias[rows, None]
    target_index = xp.asarray(groups.target_index)
    picked = buffer[target_index]
    with numpy.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        xp.exp(buffer, out=buffer)  # overflowed or underflowed columns are redone below
        for rows, first, last, offset in groups.groups:
            ones = xp.ones((1, rows.stop - rows.start), dtype=h.dtype)
            blas_matmul(ones, _block(buffer, rows, first, last, offset), out=totals[None, first:last])
        logp = picked - xp.log(totals)
    _redo_unsafe_columns(backend, groups, h_sorted, weights, bias, buffer, totals, logp)
    cache = (groups, h_sorted, weights, bias, buffer, totals) if train else None
    return logp, cache


def word_gradients(backend, cache, d_logp):
    """(dW pieces, db[R] or None, dh_sorted[M,H]) from d(loss)/d(log p)[M] (None: the loss
    is -sum log p). dW is left as one product per group, (rows, E^T, h) with dW[rows] = E h
    (see RowGradient.add_product); db stacks the groups' bias gradients in group order
    (groups.row_runs() says which rows they are)."""
    xp = backend.xp
    groups, h_sorted, weights, bias, buffer, totals = cache
    g = -xp.ones_like(totals) if d_logp is None else d_logp.astype(totals.dtype, copy=False)
    r = -g / totals
    for rows, first, last, offset in groups.groups:
        _block(buffer, rows, first, last, offset)[...] *= r[first:last]
    buffer[xp.asarray(groups.target_index)] += g  # one target per column: no repeated index
    db = xp.empty((groups.rows_used(), 1), dtype=h_sorted.dtype) if bias is not None else None
    dh_sorted = xp.empty_like(h_sorted)
    weight_pieces, row = [], 0
    for rows, first, last, offset in groups.groups:
        E = _block(buffer, rows, first, last, offset)
        width = rows.stop - rows.start
        weight_pieces.append((rows, E.T, h_sorted[first:last]))
        blas_matmul(E.T, weights[rows], out=dh_sorted[first:last])
        if db is not None:
            blas_matmul(E, xp.ones((last - first, 1), dtype=E.dtype), out=db[row:row + width])
        row += width
    return weight_pieces, None if db is None else db[:, 0], dh_sorted


def _block(buffer, rows, first, last, offset):
    """The [K_g, n_g] logits (or exponentials, or gradients) of one group in the buffer."""
    width = rows.stop - rows.start
    return buffer[offset:offset + (last - first) * width].reshape(width, last - first)


def _redo_unsafe_columns(backend, groups, h_sorted, weights, bias, buffer, totals, logp):
    """Columns whose sum of exponentials left SAFE_TOTALS, again with the maximum shifted
    out (rare: a column's own loop costs nothing in the usual case)."""
    xp = backend.xp
    lowest, highest = SAFE_TOTALS[numpy.dtype(buffer.dtype).name]
    unsafe = numpy.flatnonzero(backend.to_numpy(~((totals >= lowest) & (totals <= highest))))
    if not len(unsafe):
        return
    for rows, first, last, offset in groups.groups:
        for m in unsafe[(unsafe >= first) & (unsafe < last)].tolist():
            logits = weights[rows] @ h_sorted[m]
            if bias is not None:
                logits += bias[rows]
            logits -= logits.max()
            exps = xp.exp(logits)
            _block(buffer, rows, first, last, offset)[:, m - first] = exps
            totals[m] = exps.sum()
            logp[m] = logits[int(groups.within[m])] - xp.log(totals[m])
