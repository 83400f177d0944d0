"""The output layer: a class-factored softmax (rwthlm §4), a full softmax when every word
is its own class.

    log p(w|h) = log softmax(W_class h + b_class)[c(w)] + log softmax(W_word[c] h + b_word[c])[w]

W_class: C x H. W_word stacks the word weights of every class with more than one word
(the vocabulary's ids S..V-1; W_word[c] is the block of class c); the S single-word classes
(the shortlist) have no word weights and p(w|c(w),h) = 1. Only the target's class softmax
is computed. Training deltas are softmax - onehot; W_word and b_word are updated by plain
SGD (rwthlm gives them no momentum). Log-probabilities are taken as logit - logsumexp, so
they stay finite where rwthlm's log of an underflowed probability gives -inf.

Shapes: N scored positions, H inputs, C classes, V words.
"""

import numpy

from rwthlm_py.layers.functional import get_xp
from rwthlm_py.layers.layer import Layer


class ClassSoftmax(Layer):
    no_momentum = frozenset({"W_word", "b_word"})

    def __init__(self, input_size, vocab, backend, bias=True):
        super().__init__(backend)
        self.size, self.bias = input_size, bias
        self.word_class = vocab.word_class
        self.class_start = vocab.class_start
        self.class_size = vocab.class_size
        self.shortlist = vocab.shortlist_size
        self.vocab_size, self.num_classes = len(vocab), vocab.num_classes
        clustered = self.vocab_size - self.shortlist
        self.add_param("W_class", (self.num_classes, input_size))
        self.add_param("W_word", (clustered, input_size), sparse=True)
        if bias:
            self.add_param("b_class", (self.num_classes,))
            self.add_param("b_word", (clustered,), sparse=True)

    def forward(self, h, targets, train=True):
        """h[N,H], targets[N] (host ints) -> (log p(target|h)[N], cache)."""
        xp, backend = self.xp, self.backend
        classes = self.word_class[targets]
        class_index = xp.asarray(classes)
        logits = h @ self.params["W_class"].T
        logp, class_probs = log_softmax_pick(backend, logits, class_index, self._bias("b_class"), train)
        groups = []
        for word_class, positions in self._class_groups(classes):
            rows = self._word_rows(word_class)
            within = xp.asarray(targets[positions] - self.class_start[word_class])
            positions = xp.asarray(positions)
            word_logits = h[positions] @ self.params["W_word"][rows].T
            bias = self.params["b_word"][rows] if self.bias else None
            word_logp, word_probs = log_softmax_pick(backend, word_logits, within, bias, train)
            logp[positions] += word_logp
            groups.append((rows, positions, within, word_probs))
        cache = (h, class_index, class_probs, groups) if train else None
        return logp, cache

    def _bias(self, name):
        return self.params[name] if self.bias else None

    def _class_groups(self, classes):
        """(class, positions) for every multi-word class among the targets."""
        clustered = numpy.flatnonzero(classes >= self.shortlist)
        if not len(clustered):
            return []
        order = clustered[numpy.argsort(classes[clustered], kind="stable")]
        sorted_classes = classes[order]
        cuts = numpy.flatnonzero(numpy.diff(sorted_classes)) + 1
        return [(int(classes[part[0]]), part) for part in numpy.split(order, cuts)]

    def _word_rows(self, word_class):
        start = int(self.class_start[word_class]) - self.shortlist
        return slice(start, start + int(self.class_size[word_class]))

    def backward(self, d_logp, cache):
        """d(loss)/dh[N,H] from d(loss)/d(log p)[N] (None: the loss is -sum log p)."""
        backend = self.backend
        h, class_index, class_probs, groups = cache
        d_logits, d_bias = softmax_delta(backend, class_probs, class_index, d_logp)
        self.add_grad("W_class", d_logits.T @ h)
        if self.bias:
            self.add_grad("b_class", d_bias)
        dh = d_logits @ self.params["W_class"]
        for rows, positions, within, word_probs in groups:
            word_d_logp = None if d_logp is None else d_logp[positions]
            d_word, d_word_bias = softmax_delta(backend, word_probs, within, word_d_logp)
            self.grads["W_word"].add(rows, d_word.T @ h[positions])
            if self.bias:
                self.grads["b_word"].add(rows, d_word_bias)
            dh[positions] += d_word @ self.params["W_word"][rows]
        return dh

    def log_distribution(self, h):
        """log p(w|h) for every word w: [N,V] (for tests and inspection; not used in training)."""
        xp = self.xp
        class_logits = h @ self.params["W_class"].T
        if self.bias:
            class_logits += self.params["b_class"]
        result = log_softmax(class_logits)[:, xp.asarray(self.word_class)]
        for word_class in range(self.shortlist, self.num_classes):
            rows = self._word_rows(word_class)
            word_logits = h @ self.params["W_word"][rows].T
            if self.bias:
                word_logits += self.params["b_word"][rows]
            start = int(self.class_start[word_class])
            result[:, start:start + rows.stop - rows.start] += log_softmax(word_logits)
        return result


def log_softmax_pick(backend, logits, target, bias, keep_probs):
    """log softmax(logits + bias)[n, target[n]] for every row n, computed in place.

    With keep_probs the softmax itself is left in `logits` and returned. Row blocks are
    processed in cache (backend.for_row_blocks). The usual shift by the row maximum costs
    two passes over the logits and is needed only where exp would overflow or the sum
    underflow, so it is applied only to the rows where that happens.
    """
    xp = backend.xp
    logp = xp.empty(logits.shape[0], dtype=logits.dtype)
    safe = SAFE_SUM[xp.dtype(logits.dtype).name]

    def block(start, stop):
        chunk = logits[start:stop]
        if bias is not None:
            chunk += bias
        rows = xp.arange(stop - start)
        picked = chunk[rows, target[start:stop]]
        shifted = _shift_rows_at_risk(xp, chunk, safe)
        if shifted is not None:
            picked[shifted[0]] -= shifted[1]
        xp.exp(chunk, out=chunk)
        total = chunk.sum(axis=1)
        logp[start:stop] = picked - xp.log(total)
        if keep_probs:
            chunk *= (1.0 / total)[:, None]

    backend.for_row_blocks(block, logits.shape[0], logits.shape[1] * logits.itemsize)
    return logp, (logits if keep_probs else None)


# Rows whose largest logit lies outside [lowest, highest] are shifted by their maximum:
# above `highest`, exp could overflow (or lose the sum to inf over C terms); below
# `lowest`, the sum could underflow.
SAFE_SUM = {"float32": (-60.0, 60.0), "float64": (-600.0, 600.0)}


def _shift_rows_at_risk(xp, chunk, safe):
    """Shifts the at-risk rows of chunk by their maximum; returns (rows, shifts) or None."""
    row_max = chunk.max(axis=1)
    lowest, highest = safe
    at_risk = xp.flatnonzero((row_max > highest) | (row_max < lowest) | (row_max != row_max))
    if len(at_risk) == 0:
        return None
    shifts = row_max[at_risk]
    chunk[at_risk] -= shifts[:, None]
    return at_risk, shifts


def softmax_delta(backend, probs, target, d_logp):
    """d(loss)/d(logits) = g * (onehot - p) in place of probs (g = -1 when d_logp is None),
    and its column sums (the bias gradient)."""
    xp = backend.xp

    def block(start, stop):
        chunk = probs[start:stop]
        rows = xp.arange(stop - start)
        if d_logp is None:
            chunk[rows, target[start:stop]] -= 1
        else:
            chunk *= -d_logp[start:stop, None]
            chunk[rows, target[start:stop]] += d_logp[start:stop]
        return chunk.sum(axis=0)

    partial_sums = backend.for_row_blocks(block, probs.shape[0], probs.shape[1] * probs.itemsize)
    column_sums = partial_sums[0]
    for partial in partial_sums[1:]:
        column_sums += partial
    return probs, column_sums


def log_softmax(logits):
    xp = get_xp(logits)
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
