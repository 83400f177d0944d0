"""Gradients that touch only some rows of a large matrix (embeddings, word-class weights).

A dense gradient of a V x H embedding would be zeroed and added in full for every batch,
a cost that grows with V. A RowGradient keeps only the rows a batch touched, as pieces:

    Rows(rows, values)            values[k] is the gradient of row rows[k]
    Product(rows, left, right)    the gradient of the rows is left^T right (a product of
                                  an [n,K] and an [n,H] matrix, K = number of rows)
    Scattered(ids, values, add)   values[k] is added to row ids[k]; ids may repeat (an
                                  embedding's word ids), summed by the backend's scatter-add

Rows are unique inside Rows and Product pieces. A Scattered piece is applied straight to
the matrix by a scatter-add: finding the distinct ids first would need their number on the
host (a wait on a GPU); only its norm needs the sums, which it takes from the dense
gradient. A product piece is never formed as a matrix: applying it computes
left^T (scale * right) one piece at a time into a reused buffer that stays in cache, and
its squared norm is sum((left left^T) * (right right^T)), which costs n^2 (K + H) instead
of K H. For the word-class output weights this halves the memory traffic of a step.
"""

import collections

from rwthlm_py.layers.functional import blas_matmul, get_xp

Rows = collections.namedtuple("Rows", "rows values")
Product = collections.namedtuple("Product", "rows left right")
Scattered = collections.namedtuple("Scattered", "ids values scatter_add")


class RowGradient:
    def __init__(self, shape):
        self.shape = tuple(shape)
        self.pieces = []
        self._scratch = None

    def add(self, rows, values):
        """Adds `values[k]` to row `rows[k]`; `rows` must be unique (or a slice)."""
        self.pieces.append(Rows(rows, values))

    def add_scattered(self, ids, values, scatter_add):
        """Adds `values[k]` to row `ids[k]` (ids may repeat) with scatter_add(target, ids, values)."""
        self.pieces.append(Scattered(ids, values, scatter_add))

    def add_product(self, rows, left, right):
        """Adds left^T right ([K,n] @ [n,H]) to the K rows `rows` (a slice)."""
        self.pieces.append(Product(rows, left, right))

    def clear(self):
        self.pieces = []

    def apply(self, parameter, scale):
        """parameter += scale * gradient."""
        for piece in self.pieces:
            if isinstance(piece, Rows):
                parameter[piece.rows] += scale * piece.values
            elif isinstance(piece, Scattered):
                piece.scatter_add(parameter, piece.ids, scale * piece.values)
            else:
                parameter[piece.rows] += self._product(piece.left, scale * piece.right)

    def _product(self, left, right):
        """left^T right in a buffer reused from piece to piece."""
        size = left.shape[1] * right.shape[1]
        if self._scratch is None or self._scratch.size < size or self._scratch.dtype != right.dtype:
            self._scratch = get_xp(right).empty(size, dtype=right.dtype)
        return blas_matmul(left.T, right, out=self._scratch[:size].reshape(left.shape[1], right.shape[1]))

    def to_dense(self, xp, dtype):
        dense = xp.zeros(self.shape, dtype=dtype)
        self.apply(dense, 1.0)
        return dense

    def squared_norm(self, xp, dtype):
        """|g|^2 of the summed gradient, a 0-d array on the gradient's device: piece by piece
        where the pieces are row ranges that do not overlap, else (pieces may share rows)
        from the dense sum."""
        if not self.pieces:
            return xp.zeros((), dtype=dtype)
        if not self._disjoint_ranges():
            dense = self.to_dense(xp, dtype).reshape(-1)
            return dense @ dense
        total = xp.zeros((), dtype=dtype)
        for piece in self.pieces:
            if isinstance(piece, Rows):
                values = piece.values.reshape(-1)
                total += values @ values
            else:
                total += ((piece.left @ piece.left.T) * (piece.right @ piece.right.T)).sum()
        return total

    def _disjoint_ranges(self):
        if any(isinstance(piece, Scattered) for piece in self.pieces):
            return False  # scattered ids may repeat
        if len(self.pieces) == 1:
            return True
        ranges = []
        for piece in self.pieces:
            if not isinstance(piece.rows, slice):
                return False
            ranges.append((piece.rows.start, piece.rows.stop))
        ranges.sort()
        return all(stop <= next_start for (_, stop), (next_start, _) in zip(ranges, ranges[1:]))
