"""Dropout on the non-recurrent connections (Zaremba et al. 2014): the output of every hidden
layer (after the projection, between LSTM layers, before the output layer) is multiplied by
a mask while training,

    y_dropped = y * mask,   mask = keep / (1 - p),   keep ~ Bernoulli(1 - p)

(inverted scaling: scoring uses y unchanged, and E[y_dropped] = y), and the gradient flowing
back by the same mask, dy = dy_dropped * mask. The recurrent connections (h(t-1), c(t-1))
are never dropped. With `variational` (Gal and Ghahramani 2016) one mask of shape [1, B, H]
serves every time step of a sequence; else each [T, B, H] entry has its own.

Masks are drawn where they are used, by the backend's `dropout_mask` kernel
(rwthlm_py/kernels/dropout.py): Philox4x32-10 under a key made from (random seed, epoch,
batch[, time slice], layer), with each element's (time, column, unit) as the counter. They
depend on where a batch is in training and on nothing before it, so that N epochs in one
run, N runs of one epoch, and a run resumed from the middle of an epoch draw the same masks,
on either backend (the numpy body and the CUDA kernel draw the same bits); nothing is copied
to the device. The ranks of a data-parallel job (data_parallel.py) each run some columns of
a batch: `for_columns` draws just those columns, which are what one process draws for them.
"""

from rwthlm_py.kernels.dropout import WORD, keep_threshold, philox4x32_10


class DropoutMasks:
    """The masks of one batch (or of one time slice of it, see `for_slice`)."""

    def __init__(self, probability, variational, key, backend, first_column=0):
        if not 0.0 <= probability < 1.0:
            raise ValueError(f"dropout probability {probability} is not in [0, 1)")
        self.probability, self.variational = probability, variational
        self.key, self.backend = tuple(int(part) for part in key), backend
        self.first_column = first_column  # of a block of columns cut from a wider batch (`for_columns`)

    def for_slice(self, step):
        """The masks of time slice `step` (--feedforward trains slice by slice)."""
        return DropoutMasks(self.probability, self.variational, self.key + (step,), self.backend, self.first_column)

    def for_columns(self, start, stop, steps, columns):
        """The masks of columns [start, stop) of a batch of `steps` x `columns`: what the
        whole batch's masks hold there (its first steps where the block's sequences are
        shorter). An element's counter is its position, so the block is drawn alone."""
        if not 0 <= start <= stop <= columns:
            raise ValueError(f"columns [{start}, {stop}) are not columns of a batch of {columns}")
        return DropoutMasks(self.probability, self.variational, self.key, self.backend, self.first_column + start)

    def mask(self, layer_index, shape):
        """The mask of hidden layer `layer_index` for an output of `shape` [T, B, H], on the
        backend, in its float type ([1, B, H] when variational)."""
        mask = self._empty_mask(shape)
        self.backend.kernels.dropout_mask(mask, self.first_column, *self._draw_arguments(layer_index))
        return mask

    def apply(self, layer_index, x):
        """(x * mask, mask) for the output x [T, B, H] of hidden layer `layer_index`: the
        mask drawn and applied in one launch, x left as it is."""
        mask, dropped = self._empty_mask(x.shape), self.backend.xp.empty(x.shape, dtype=self.backend.dtype)
        self.backend.kernels.dropout_mask(mask, self.first_column, *self._draw_arguments(layer_index), x, dropped)
        return dropped, mask

    def _empty_mask(self, shape):
        steps, columns, size = shape
        return self.backend.xp.empty((1 if self.variational else steps, columns, size), dtype=self.backend.dtype)

    def _draw_arguments(self, layer_index):
        """The kernel's key, threshold and scale for the layer's mask."""
        return (self.generator_key(layer_index), keep_threshold(self.probability),
                self.backend.dtype.type(1.0 / (1.0 - self.probability)))

    def generator_key(self, layer_index):
        """The Philox key of a layer's mask: Philox4x32-10 itself of the counter (epoch,
        batch, layer, time slice + 1, or 0 for a whole batch) under the random seed (its
        two 32-bit halves, of its low 64 bits), first two words: Philox is a bijection
        of the counter under each key, so no two places in training share a 128-bit
        output, and two share a mask key with probability 2^-64."""
        seed, *rest = self.key
        slice_number = rest[2] + 1 if len(rest) == 3 else 0
        counter = (*rest[:2], layer_index, slice_number)
        if len(rest) not in (2, 3) or not all(0 <= part <= WORD for part in counter):
            raise ValueError(f"a dropout key is (seed, epoch, batch[, slice]) with parts below 2^32, got {self.key}")
        words = philox4x32_10(counter, (seed & WORD, (seed >> 32) & WORD))
        return int(words[0]), int(words[1])
