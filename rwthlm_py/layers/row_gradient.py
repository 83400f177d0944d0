"""Gradients that touch only some rows of a large matrix (embeddings, word-class weights).

A dense gradient of a V x H embedding would be zeroed and added in full for every batch,
a cost that grows with V. A RowGradient keeps only the rows a batch touched, as pieces:

    Rows(rows, values)            values[k] is the gradient of row rows[k] (rows: a
                                  slice or unique indices)
    Scattered(ids, values, add)   values[k] is added to row ids[k]; ids may repeat (an
                                  embedding's word ids), summed by the backend's scatter-add
    Computed(apply, squared_norm) a gradient that applies itself: apply(parameter, scale)
                                  adds scale * gradient, squared_norm() is |gradient|^2
                                  (the word-class output weights: a sum of products that
                                  the fused kernels never form as one matrix on a CPU)

A Scattered piece is applied straight to the matrix by a scatter-add: finding the distinct
ids first would need their number on the host (a wait on a GPU); only its norm needs the
sums, which it takes from the dense gradient.
"""

import collections
import itertools

Rows = collections.namedtuple("Rows", "rows values")
Scattered = collections.namedtuple("Scattered", "ids values scatter_add")
Computed = collections.namedtuple("Computed", "apply squared_norm")


class RowGradient:
    def __init__(self, shape):
        self.shape = tuple(shape)
        self.pieces = []

    def add(self, rows, values):
        """Adds `values[k]` to row `rows[k]`; `rows` must be unique (or a slice)."""
        self.pieces.append(Rows(rows, values))

    def add_scattered(self, ids, values, scatter_add):
        """Adds `values[k]` to row `ids[k]` (ids may repeat) with scatter_add(target, ids, values)."""
        self.pieces.append(Scattered(ids, values, scatter_add))

    def add_computed(self, apply, squared_norm):
        """Adds a gradient given by apply(parameter, scale) and squared_norm()."""
        self.pieces.append(Computed(apply, squared_norm))

    def clear(self):
        self.pieces = []

    def apply(self, parameter, scale):
        """parameter += scale * gradient."""
        unscaled = isinstance(scale, float) and scale == 1.0  # 1.0 * values is values: no launch for it
        for piece in self.pieces:
            if isinstance(piece, Rows):
                parameter[piece.rows] += piece.values if unscaled else scale * piece.values
            elif isinstance(piece, Scattered):
                piece.scatter_add(parameter, piece.ids, piece.values if unscaled else scale * piece.values)
            else:
                piece.apply(parameter, scale)

    def to_dense(self, xp, dtype):
        dense = xp.zeros(self.shape, dtype=dtype)
        self.apply(dense, 1.0)
        return dense

    def squared_norm(self, xp, dtype):
        """|g|^2 of the summed gradient, a 0-d array on the gradient's device: piece by piece
        where the pieces cannot overlap (one piece, or row ranges apart), else from the
        dense sum."""
        if not self.pieces:
            return xp.zeros((), dtype=dtype)
        if not self._disjoint_ranges():
            dense = self.to_dense(xp, dtype).reshape(-1)
            return dense @ dense
        total = None
        for piece in self.pieces:
            if isinstance(piece, Rows):
                values = piece.values.reshape(-1)
                norm = values @ values
            else:
                norm = piece.squared_norm()
            total = norm if total is None else total + norm
        return total

    def _disjoint_ranges(self):
        if any(isinstance(piece, Scattered) for piece in self.pieces):
            return False  # scattered ids may repeat
        if len(self.pieces) == 1:
            return True
        ranges = []
        for piece in self.pieces:
            if not isinstance(piece, Rows) or not isinstance(piece.rows, slice):
                return False
            ranges.append((piece.rows.start, piece.rows.stop))
        ranges.sort()
        return all(stop <= next_start for (_, stop), (next_start, _) in itertools.pairwise(ranges))
