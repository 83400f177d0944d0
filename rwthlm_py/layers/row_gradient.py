"""Gradients that touch only some rows of a large matrix (embeddings, word-class weights).

A dense gradient of a V x H embedding would be zeroed and added in full for every batch,
a cost that grows with V. A RowGradient keeps only the rows a batch touched, as pieces
(rows, values) with unique rows inside each piece.
"""


class RowGradient:
    def __init__(self, shape):
        self.shape = tuple(shape)
        self.pieces = []

    def add(self, rows, values):
        """Adds `values[k]` to row `rows[k]`; `rows` must be unique (or a slice)."""
        self.pieces.append((rows, values))

    def clear(self):
        self.pieces = []

    def apply(self, parameter, scale):
        """parameter += scale * gradient."""
        for rows, values in self.pieces:
            parameter[rows] += scale * values

    def to_dense(self, xp, dtype):
        dense = xp.zeros(self.shape, dtype=dtype)
        self.apply(dense, 1.0)
        return dense

    def squared_norm(self, xp):
        """|g|^2 of the summed gradient (pieces may share rows, so they are summed first)."""
        if len(self.pieces) == 1:
            values = self.pieces[0][1].reshape(-1)
            return float(values @ values)
        if not self.pieces:
            return 0.0
        dense = self.to_dense(xp, self.pieces[0][1].dtype)
        return float((dense * dense).sum())
