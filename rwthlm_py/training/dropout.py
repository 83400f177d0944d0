"""Dropout on the non-recurrent connections (Zaremba et al. 2014): the output of every hidden
layer (after the projection, between LSTM layers, before the output layer) is multiplied by
a mask while training,

    y_dropped = y * mask,   mask = keep / (1 - p),   keep ~ Bernoulli(1 - p)

(inverted scaling: scoring uses y unchanged, and E[y_dropped] = y), and the gradient flowing
back by the same mask, dy = dy_dropped * mask. The recurrent connections (h(t-1), c(t-1))
are never dropped. With `variational` (Gal and Ghahramani 2016) one mask of shape [1, B, H]
serves every time step of a sequence; else each [T, B, H] entry has its own.

Masks are drawn on the host from a generator seeded with (key..., layer), where the
trainer's key is (random seed, epoch, batch): they depend on where a batch is in training
and on nothing before it, so that N epochs in one run, N runs of one epoch, and a run
resumed from the middle of an epoch draw the same masks. The ranks of a data-parallel job
(data_parallel.py) each run some columns of a batch: `for_columns` draws the whole batch's
masks and takes the rank's columns, so that N ranks drop what one process drops.
"""

import numpy


class DropoutMasks:
    """The masks of one batch (or of one time slice of it, see `for_slice`)."""

    def __init__(self, probability, variational, key, backend, block=None):
        if not 0.0 <= probability < 1.0:
            raise ValueError(f"dropout probability {probability} is not in [0, 1)")
        self.probability, self.variational = probability, variational
        self.key, self.backend = tuple(int(part) for part in key), backend
        self.block = block  # None, or (start, stop, steps, columns): columns [start, stop) of a [steps, columns] batch

    def for_slice(self, step):
        """The masks of time slice `step` (--feedforward trains slice by slice)."""
        block = None if self.block is None else self.block[:2] + (1, self.block[3])
        return DropoutMasks(self.probability, self.variational, self.key + (step,), self.backend, block)

    def for_columns(self, start, stop, steps, columns):
        """The masks of columns [start, stop) of a batch of `steps` x `columns`: the whole
        batch's masks, cut (at most `steps` long where the block's sequences are shorter)."""
        return DropoutMasks(self.probability, self.variational, self.key, self.backend, (start, stop, steps, columns))

    def mask(self, layer_index, shape):
        """The mask of hidden layer `layer_index` for an output of `shape` [T, B, H], on the
        backend, in its float type."""
        steps, columns, size = shape
        whole_steps, whole_columns = (steps, columns) if self.block is None else self.block[2:]
        mask_shape = (1, whole_columns, size) if self.variational else (whole_steps, whole_columns, size)
        generator = numpy.random.default_rng(self.key + (layer_index,))
        keep = generator.random(mask_shape, dtype=numpy.float32) >= self.probability
        if self.block is not None:
            keep = keep[:steps, self.block[0]:self.block[1]]
        scale = numpy.asarray(1.0 / (1.0 - self.probability), dtype=self.backend.dtype)
        return self.backend.asarray(keep * scale)
