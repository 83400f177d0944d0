"""A numpy matrix product that always reaches BLAS, for the numpy bodies of the kernels."""

import numpy


def blas_matmul(a, b, out):
    """out = a @ b, with the shapes that numpy's matmul would not hand to BLAS recast.

    numpy computes a product with a dimension of 1 in its own loops, up to ten times slower
    than BLAS (measured for [1,H] x [H,K] with a transposed operand and for outer products):
    a single row or column becomes a matrix-vector product, and an outer product gets a
    row of zeros added so that BLAS does it as a rank-2 product.
    """
    rows, inner = a.shape
    columns = b.shape[1]
    if rows == 1 and columns == 1:
        out[0, 0] = a[0] @ b[:, 0]
    elif columns == 1:
        out[:, 0] = a @ b[:, 0]
    elif rows == 1:
        out[0] = a[0] @ b
    elif inner == 1:
        padded_a = numpy.concatenate([a, numpy.zeros_like(a)], axis=1)
        padded_b = numpy.concatenate([b, numpy.zeros_like(b)])
        numpy.matmul(padded_a, padded_b, out=out)
    else:
        numpy.matmul(a, b, out=out)
    return out
