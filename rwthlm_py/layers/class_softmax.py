"""The output layer: a class-factored softmax (rwthlm §4), a full softmax when every word
is its own class.

    log p(w|h) = log softmax(W_class h + b_class)[c(w)] + log softmax(W_word[c] h + b_word[c])[w]

W_class: C x H. W_word stacks the word weights of every class with more than one word
(the vocabulary's ids S..V-1; W_word[c] is the block of class c); the S single-word classes
(the shortlist) have no word weights and p(w|c(w),h) = 1. Only the target's class softmax
is computed. W_word and b_word are updated by plain SGD (rwthlm gives them no momentum).

For a loss with d(loss)/d(log p_n) = g_n (g = -1 in training), and e the exponentials of
the logits W h + b with row sums s, the gradients are

    dW = e^T (h * r) + onehot^T (h * g),   db = r^T e + onehot^T g,
    dh = (e W) * r + g * W[target],        r = -g / s

which needs no normalised softmax; in training r^T e = sum_n p_n is summed while each
block of e is still in cache. e may be shifted by a constant per softmax (the fused
softmax_pick does so where exp could overflow; see rwthlm_py.kernels.softmax), which
changes neither p nor these gradients. Log-probabilities are logit - log s, finite where
rwthlm's log of an underflowed probability gives -inf.

Shapes: N scored positions, H inputs, C classes, V words.
"""

import numpy

from rwthlm_py.layers.functional import get_xp
from rwthlm_py.layers.layer import Layer
from rwthlm_py.layers.word_groups import WordGroups, word_gradients, word_log_probs, word_weight_gradient


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

    def sample(self, h, generator, temperature=1.0):
        """Words drawn from p(w|h) for every row of h [N, H]: a class from
        softmax((W_class h + b_class) / T), then a word from softmax((W_word[c] h +
        b_word[c]) / T) of the drawn class c (a single-word class is its word). T = 1 draws
        from the model itself; `generator` is a host numpy Generator. Returns host ints [N]."""
        class_logits = affine(h, self.params["W_class"], self._bias("b_class"))
        classes = _draw(self.backend.to_numpy(class_logits).astype(numpy.float64) / temperature, generator)
        words = self.class_start[classes].astype(numpy.int64)
        for row in numpy.flatnonzero(self.class_size[classes] > 1):
            rows = self._word_rows(classes[row])
            bias = self.params["b_word"][rows] if self.bias else None
            logits = affine(h[row:row + 1], self.params["W_word"][rows], bias)
            words[row] += _draw(self.backend.to_numpy(logits).astype(numpy.float64) / temperature, generator)[0]
        return words

    def forward(self, h, targets, train=True):
        """h[N,H], targets[N] (host ints) -> (log p(target|h)[N], cache)."""
        classes = self.word_class[targets]
        class_part = softmax_forward(self.backend, h, self.params["W_class"], self._bias("b_class"),
                                     self.backend.asarray(classes, dtype=numpy.int64), train)
        logp = class_part.logp
        groups = WordGroups(classes, targets, self.class_start, self.class_size, self.shortlist)
        word_cache = None
        if len(groups):
            word_logp, on_device, word_cache = word_log_probs(self.backend, groups, h, self.params["W_word"],
                                                              self._bias("b_word"), train)
            logp[on_device.positions] += word_logp  # positions are distinct
        cache = (class_part, word_cache) if train else None
        return logp, cache

    def _bias(self, name):
        return self.params[name] if self.bias else None

    def _word_rows(self, word_class):
        start = int(self.class_start[word_class]) - self.shortlist
        return slice(start, start + int(self.class_size[word_class]))

    def backward(self, d_logp, cache):
        """d(loss)/dh[N,H] from d(loss)/d(log p)[N] (None: the loss is -sum log p)."""
        class_part, word_cache = cache
        dW, db, dh = softmax_backward(self.backend, class_part, d_logp)
        self.add_grad("W_class", dW)
        if self.bias:
            self.add_grad("b_class", db)
        if word_cache is not None:
            on_device = word_cache.on_device
            word_d_logp = None if d_logp is None else d_logp[on_device.positions]
            db_word, dh_word = word_gradients(self.backend, word_cache, word_d_logp)
            self.grads["W_word"].add_computed(*word_weight_gradient(self.backend, word_cache))
            if self.bias:
                self.grads["b_word"].add(on_device.used_rows, db_word)
            dh[on_device.positions] += dh_word  # positions are distinct
        return dh

    def log_distribution(self, h):
        """log p(w|h) for every word w: [N,V] (for tests and inspection; not used in training)."""
        xp = self.xp
        result = log_softmax(affine(h, self.params["W_class"], self._bias("b_class")))
        result = result[:, xp.asarray(self.word_class)]
        for word_class in range(self.shortlist, self.num_classes):
            rows = self._word_rows(word_class)
            bias = self.params["b_word"][rows] if self.bias else None
            start = int(self.class_start[word_class])
            result[:, start:start + rows.stop - rows.start] += log_softmax(
                affine(h, self.params["W_word"][rows], bias))
        return result


class SoftmaxPart:
    """One softmax of a batch: its inputs, weights, targets, log p, and for training the
    exponentials e, their row sums s and the summed probabilities sum_n e_n / s_n."""

    def __init__(self, h, weights, bias, target, logp, exps=None, totals=None, prob_sums=None):
        self.h, self.weights, self.bias, self.target = h, weights, bias, target
        self.logp, self.exps, self.totals, self.prob_sums = logp, exps, totals, prob_sums


def softmax_forward(backend, h, weights, bias, target, train):
    """log softmax(h W^T + b)[n, target[n]] as a SoftmaxPart (with what training needs).

    The logits are replaced by their exponentials e (the softmax is e / s) by the fused
    softmax_pick, in cached row blocks (backend.for_row_blocks), where training also sums
    the probabilities while each block is in cache.
    """
    xp = backend.xp
    exps = h @ weights.T
    logp = xp.empty(exps.shape[0], dtype=exps.dtype)
    totals = xp.empty(exps.shape[0], dtype=exps.dtype)

    def block(start, stop):
        return backend.kernels.softmax_pick(exps[start:stop], bias, target[start:stop], logp[start:stop],
                                            totals[start:stop], train)

    partial_sums = backend.for_row_blocks(block, exps.shape[0], exps.shape[1] * exps.itemsize)
    if not train:
        return SoftmaxPart(h, weights, bias, target, logp)
    return SoftmaxPart(h, weights, bias, target, logp, exps, totals, _add_all(partial_sums))


def affine(h, weights, bias):
    """The logits h W^T + b."""
    logits = h @ weights.T
    return logits if bias is None else logits + bias


def _add_all(arrays):
    total = arrays[0]
    for array in arrays[1:]:
        total = total + array
    return total


def softmax_backward(backend, part, d_logp):
    """(dW, db, dh) of a SoftmaxPart (see the module docstring); db is None without bias."""
    xp = backend.xp
    training = d_logp is None
    g = -xp.ones_like(part.totals) if training else d_logp.astype(part.totals.dtype, copy=False)
    r = -g / part.totals
    h_g = part.h * g[:, None]
    dW = part.exps.T @ (part.h * r[:, None])
    backend.scatter_add(dW, part.target, h_g)
    dh = (part.exps @ part.weights) * r[:, None]
    dh += g[:, None] * part.weights[part.target]
    db = None
    if part.bias is not None:
        db = part.prob_sums.copy() if training else r @ part.exps
        backend.scatter_add(db, part.target, g)
    return dW, db, dh


def log_softmax(logits):
    xp = get_xp(logits)
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))


def _draw(logits, generator):
    """One index per row of logits [N, K], drawn from softmax of the row."""
    probabilities = numpy.exp(logits - logits.max(axis=1, keepdims=True))
    cumulative = numpy.cumsum(probabilities, axis=1)
    thresholds = generator.random(len(logits)) * cumulative[:, -1]
    return numpy.minimum((cumulative < thresholds[:, None]).sum(axis=1), logits.shape[1] - 1)
