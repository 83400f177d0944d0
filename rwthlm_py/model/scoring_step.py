"""One step of many histories at the least cost per call: the network's next-word
log-probabilities for lattice rescoring, where a call steps from one to a few hundred
histories and the generic path (Network.next_word_log_probs) costs far more per call than
its arithmetic.

`scoring_step(network)` gives a LeanStep where the network is a word projection of order 1
(no n-gram history, no recurrence) under LSTM layers, on numpy; otherwise the network's
own next_word_log_probs. Both take and return the same states (one entry per hidden
layer: None for the projection, (h[B,H], c[B,H]) per LSTM) and give the same numbers up
to float rounding. What the lean step does differently:

  * The first LSTM's input part, W y(w) + b with y(w) = g(E[w] + b_E) the projection of
    word w, depends on w alone; it is kept per word in a table filled as words come
    (`FIRST_LAYER_TABLE_BYTES` at most, else computed per call), so that a step of the
    first layer is one product R h(t-1) and a gather.
  * An LSTM step is R h(t-1), one product, and training's own fused kernel
    (kernels.lstm_forward_step) on [4, H, B] values, without the allocations and checks
    of the generic forward pass.
  * The output is computed for the targets only: the class log-softmax of the columns
    that have targets, and for each (column, class) pair of the clustered targets the
    class's word logits, one product per distinct class written into one flat buffer,
    normalised for all pairs at once (ufunc.reduceat):

        ln p(w | h) = l_class(c(w)) - lse(l_class) + [c(w) clustered] (l_word(w) - lse(l_word(c(w))))
        l_class = W_class h + b_class,  l_word(c) = W_word[c] h + b_word[c]
"""

import numpy

from rwthlm_py.layers.functional import activate
from rwthlm_py.layers.lstm import Lstm
from rwthlm_py.layers.projection import Projection

FIRST_LAYER_TABLE_BYTES = 256 * 2**20  # the per-word table of the first LSTM's input part


def scoring_step(network):
    """The fastest exact step for `network`: a LeanStep where it applies, else the
    network itself (its next_word_log_probs)."""
    if LeanStep.applies(network):
        return LeanStep(network)
    return network


class LeanStep:
    """next_word_log_probs of a projection + LSTM network on numpy (see the module docstring)."""

    @staticmethod
    def applies(network):
        first, rest = network.layers[0], network.layers[1:]
        return (network.backend.name == "numpy" and isinstance(first, Projection) and first.order == 1
                and not first.recurrent and len(rest) > 0 and all(isinstance(layer, Lstm) for layer in rest))

    def __init__(self, network):
        self.network, self.vocab = network, network.vocab
        projection, self.lstms = network.layers[0], network.layers[1:]
        self.projection = projection
        first = self.lstms[0]
        rows, width, dtype = len(network.vocab), 4 * first.size, first.params["W"].dtype
        self.table = None
        if rows * width * dtype.itemsize <= FIRST_LAYER_TABLE_BYTES:
            self.table = numpy.empty((rows, width), dtype=dtype)
            self.filled = numpy.zeros(rows, dtype=bool)
        output = network.output
        self.W_class, self.b_class = output.params["W_class"], output.params.get("b_class")
        self.W_word, self.b_word = output.params["W_word"], output.params.get("b_word")
        self.word_class = numpy.asarray(output.word_class, dtype=numpy.int64)
        self.class_start = numpy.asarray(output.class_start, dtype=numpy.int64)
        self.class_size = numpy.asarray(output.class_size, dtype=numpy.int64)
        self.shortlist = output.shortlist
        self.backend = network.backend
        # per LSTM 0.5 p as [3, H, 1], broadcast over the columns in the kernel as lstm_peepholes' [3, H, B] is
        self.peepholes = [0.5 * layer.params["p"].reshape(3, -1, 1) for layer in self.lstms]
        # per clustered class its rows of W_word and b_word (views), for the loop over the classes of a call
        bounds = [(int(start) - self.shortlist, int(start + size) - self.shortlist)
                  for start, size in zip(self.class_start, self.class_size, strict=True)]
        self.class_W = [self.W_word[start:stop] if start >= 0 else None for start, stop in bounds]
        self.class_b = [None if self.b_word is None or start < 0 else self.b_word[start:stop] for start, stop in bounds]

    # -- the hidden layers -------------------------------------------------------------------

    def step(self, inputs, state):
        """The last layer's h [B, H] and the state after feeding inputs[b] to column b."""
        words = numpy.asarray(inputs, dtype=numpy.int64)
        layer_states = state if state is not None else (None,) * (1 + len(self.lstms))
        new_states, x = [None], None
        for index, layer in enumerate(self.lstms):
            if index == 0:
                w_x = self._first_input_part(words).T
            else:
                w_x = layer.params["W"] @ x
                if layer.bias:
                    w_x += layer.params["b"][:, None]
            h, c = self._lstm_step(layer, w_x, layer_states[index + 1], self.peepholes[index])
            new_states.append((h.T, c.T))
            x = h
        return x.T, tuple(new_states)

    def _lstm_step(self, layer, w_x, state, peepholes):
        """One step of an LSTM with the training's own kernel, on [4, H, B] values: the
        input part w_x [4H, B], the state (h, c) [B, H] or None and 0.5 p [3, H, 1];
        returns h, c [H, B]."""
        H, B = layer.size, w_x.shape[1]
        a = numpy.empty((4, H, B), dtype=w_x.dtype)
        c_prev = None
        if state is not None:
            self.backend.gemm(layer.params["R"], state[0].T, out=a.reshape(4 * H, B))
            c_prev = numpy.ascontiguousarray(state[1].T)
        c, tanh_c, h = (numpy.empty((H, B), dtype=w_x.dtype) for _ in range(3))
        self.backend.kernels.lstm_forward_step(a, w_x, c_prev, peepholes, c, tanh_c, h, state is not None)
        return h, c

    def _first_input_part(self, words):
        """W y(w) + b of the first LSTM for every input word: [B, 4H]."""
        if self.table is None:
            return self._input_part(self._projected(words))
        known = self.filled[words]
        if not known.all():
            missing = numpy.unique(words[~known])
            self.table[missing] = self._input_part(self._projected(missing))
            self.filled[missing] = True
        return self.table[words]

    def _input_part(self, y):
        first = self.lstms[0]
        a = y @ first.params["W"].T
        if first.bias:
            a += first.params["b"]
        return a

    def _projected(self, words):
        projection = self.projection
        y = projection.params["E"][words]
        if projection.bias:
            y = y + projection.params["b"]
        return activate(projection.activation, y)

    # -- the output --------------------------------------------------------------------------

    def next_word_log_probs(self, inputs, state, columns, targets, unk_penalty=0.0):
        """As Network.next_word_log_probs: ln p(targets[k] | the history of column
        columns[k] after feeding it inputs[column]) as a host array, and the new state."""
        h, new_state = self.step(inputs, state)
        columns = numpy.asarray(columns, dtype=numpy.int64)
        targets = numpy.asarray(targets, dtype=numpy.int64)
        logp = self.target_log_probs(h, columns, targets)
        if unk_penalty and self.vocab.unk is not None:
            logp = logp - unk_penalty * (targets == self.vocab.unk)
        return logp, new_state

    def target_log_probs(self, h, columns, targets):
        """ln p(targets[k] | h[columns[k]]) (see the module docstring)."""
        class_logits = h @ self.W_class.T  # every column has targets in a search's call
        if self.b_class is not None:
            class_logits += self.b_class
        classes = self.word_class[targets]
        logp = class_logits[columns, classes] - _log_sum_exp_rows(class_logits)[columns]
        clustered = numpy.flatnonzero(classes >= self.shortlist)
        if len(clustered):
            logp[clustered] += self._word_log_probs(h, columns[clustered], targets[clustered], classes[clustered])
        return logp

    def _word_log_probs(self, h, columns, targets, classes):
        """ln p(target | its class, h[column]) of clustered targets: one product per
        distinct class over its (column, class) pairs, normalised together."""
        keys = classes * len(h) + columns  # pairs sorted by class, then column
        pair_keys, pair_of = numpy.unique(keys, return_inverse=True)
        pair_class, pair_column = numpy.divmod(pair_keys, len(h))
        widths = self.class_size[pair_class]
        row_starts = numpy.zeros(len(widths) + 1, dtype=numpy.int64)  # each pair's logits in `logits`
        numpy.cumsum(widths, out=row_starts[1:])
        logits = numpy.empty(int(row_starts[-1]), dtype=h.dtype)
        firsts = numpy.flatnonzero(numpy.diff(pair_class, prepend=-1))  # each class's first pair
        pair_h = h[pair_column]
        bounds, starts = numpy.append(firsts, len(pair_class)).tolist(), row_starts.tolist()
        for first, last, word_class in zip(bounds[:-1], bounds[1:], pair_class[firsts].tolist(), strict=True):
            block = logits[starts[first]:starts[last]].reshape(last - first, -1)
            # W [K, H] times h^T [H, n] reads W in its stored order, at BLAS's full speed
            products = (self.class_W[word_class] @ pair_h[first:last].T).T
            if self.class_b[word_class] is None:
                block[...] = products
            else:
                numpy.add(products, self.class_b[word_class], out=block)
        normalisers = _log_sum_exp_segments(logits, row_starts[:-1], widths)
        within = targets - self.class_start[classes]
        return logits[row_starts[pair_of] + within] - normalisers[pair_of]


def _log_sum_exp_rows(logits):
    top = logits.max(axis=1)
    return numpy.log(numpy.exp(logits - top[:, None]).sum(axis=1)) + top


def _log_sum_exp_segments(values, starts, widths):
    """ln sum exp of each segment values[starts[k]:starts[k] + widths[k]] (all non-empty,
    consecutive)."""
    top = numpy.maximum.reduceat(values, starts)
    shifted = numpy.exp(values - numpy.repeat(top, widths))
    return numpy.log(numpy.add.reduceat(shifted, starts)) + top
