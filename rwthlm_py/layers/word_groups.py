"""The within-class word softmaxes of a class-factored output, for a whole batch at once.

Each scored position n whose target w is in a class c with more than one word needs

    log p(w | c, h_n) = log softmax(W_word[c] h_n + b_word[c])[w - start(c)]

Positions are sorted by class into groups (one per target class in the batch). The logits
of every group are written into one flat buffer, row after row (group g holds n_g rows of
K_g = |c| logits), so that the element-wise work (exp, picking the targets, the target
corrections of the gradient) is one call for the whole batch and only the matrix products
and row sums remain per group. With e the exponentials, s their row sums and g_n =
d(loss)/d(log p_n) (g = -1 in training), the gradient of the logits is

    E = e * r + onehot(target) * g,    r = -g / s

and per group dW = E^T h, dh = E W, db = sum of the rows of E.

As in log_softmax_pick, no shift by the row maximum is made unless a row sum leaves
SAFE_TOTALS; such rows are computed again, shifted.
"""

import numpy

# A row sum s of exponentials inside these bounds is exact enough without the shift: no
# term overflowed, and the terms that underflowed are below 1e-14 of the largest.
SAFE_TOTALS = {"float32": (1e-20, 1e30), "float64": (1e-200, 1e200)}


class WordGroups:
    """The groups of one batch: which positions, which rows of W_word, where in the buffer.

    positions[M]: the clustered positions sorted by class (host ints), within[M]: each
    target's index inside its class, and per group (rows, first, last, offset): its slice of
    W_word, its range in `positions` and the start of its logits in the flat buffer.
    """

    def __init__(self, classes, targets, class_start, class_size, shortlist):
        clustered = numpy.flatnonzero(classes >= shortlist)
        self.positions = clustered[numpy.argsort(classes[clustered], kind="stable")]
        sorted_classes = classes[self.positions]
        self.within = targets[self.positions] - class_start[sorted_classes]
        row_width = class_size[sorted_classes].astype(numpy.int64)
        row_offsets = numpy.concatenate([[0], numpy.cumsum(row_width)])
        self.size = int(row_offsets[-1])
        self.target_index = row_offsets[:-1] + self.within  # each target's logit in the buffer
        firsts = numpy.flatnonzero(numpy.diff(sorted_classes, prepend=-1))
        lasts = numpy.append(firsts[1:], len(self.positions))
        self.groups = []
        for first, last in zip(firsts.tolist(), lasts.tolist()):
            start = int(class_start[sorted_classes[first]]) - shortlist
            rows = slice(start, start + int(row_width[first]))
            self.groups.append((rows, first, last, int(row_offsets[first])))

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
    buffer = xp.empty(groups.size, dtype=h.dtype)
    totals = xp.empty(len(groups), dtype=h.dtype)
    for rows, first, last, offset in groups.groups:
        logits = _block(buffer, rows, first, last, offset)
        xp.matmul(h_sorted[first:last], weights[rows].T, out=logits)
        if bias is not None:
            logits += bias[rows]
    target_index = xp.asarray(groups.target_index)
    picked = buffer[target_index]
    with numpy.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        xp.exp(buffer, out=buffer)  # overflowed or underflowed rows are redone below
        for rows, first, last, offset in groups.groups:
            xp.matmul(_block(buffer, rows, first, last, offset), xp.ones(rows.stop - rows.start, h.dtype),
                      out=totals[first:last])
        logp = picked - xp.log(totals)
    _redo_unsafe_rows(backend, groups, h_sorted, weights, bias, buffer, totals, logp)
    cache = (groups, h_sorted, weights, bias, buffer, totals) if train else None
    return logp, cache


def word_gradients(backend, cache, d_logp):
    """(dW[R,H], db[R] or None, dh_sorted[M,H]) from d(loss)/d(log p)[M] (None: the loss is
    -sum log p); dW and db stack the gradients of the groups' rows, in group order
    (groups.row_runs() says which rows of W_word they are)."""
    xp = backend.xp
    groups, h_sorted, weights, bias, buffer, totals = cache
    g = -xp.ones_like(totals) if d_logp is None else d_logp.astype(totals.dtype, copy=False)
    r = -g / totals
    for rows, first, last, offset in groups.groups:
        _block(buffer, rows, first, last, offset)[...] *= r[first:last, None]
    buffer[xp.asarray(groups.target_index)] += g  # one target per row: no repeated index
    rows_used = groups.rows_used()
    dW = xp.empty((rows_used, h_sorted.shape[1]), dtype=h_sorted.dtype)
    db = xp.empty(rows_used, dtype=h_sorted.dtype) if bias is not None else None
    dh_sorted = xp.empty_like(h_sorted)
    row = 0
    for rows, first, last, offset in groups.groups:
        E = _block(buffer, rows, first, last, offset)
        width = rows.stop - rows.start
        xp.matmul(E.T, h_sorted[first:last], out=dW[row:row + width])
        xp.matmul(E, weights[rows], out=dh_sorted[first:last])
        if db is not None:
            xp.matmul(xp.ones(last - first, E.dtype), E, out=db[row:row + width])
        row += width
    return dW, db, dh_sorted


def _block(buffer, rows, first, last, offset):
    """The [n_g, K_g] logits (or exponentials, or gradients) of one group in the buffer."""
    width = rows.stop - rows.start
    return buffer[offset:offset + (last - first) * width].reshape(last - first, width)


def _redo_unsafe_rows(backend, groups, h_sorted, weights, bias, buffer, totals, logp):
    """Rows whose sum of exponentials left SAFE_TOTALS, again with the maximum shifted out
    (rare: a row's own loop costs nothing in the usual case)."""
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
            width = rows.stop - rows.start
            start = offset + (m - first) * width
            buffer[start:start + width] = exps
            totals[m] = exps.sum()
            logp[m] = logits[int(groups.within[m])] - xp.log(totals[m])

