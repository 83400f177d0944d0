"""Stateless helpers shared by the layers (activations, a BLAS-friendly matrix product);
they work on numpy and cupy arrays.

Activations are written in place where an `out` array is given. Derivatives are expressed
through the activation's output y, as rwthlm does: tanh' = 1 - y^2, sigmoid' = y (1 - y).
The sigmoid is computed as 0.5 tanh(a/2) + 0.5, which cannot overflow.
"""

from rwthlm_py.backend import array_module


def get_xp(array):
    """The array module (numpy or cupy) of `array`."""
    return array_module(array)


def sigmoid(a, out=None):
    """sigma(a) = 1 / (1 + exp(-a)), in place into `out` when given."""
    xp = get_xp(a)
    out = xp.multiply(a, 0.5, out=out)
    xp.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


def activate(name, a, out=None):
    """Applies activation `name` to the pre-activation `a`."""
    xp = get_xp(a)
    if name == "tanh":
        return xp.tanh(a, out=out)
    if name == "sigmoid":
        return sigmoid(a, out=out)
    if out is None:
        return a.copy()
    out[...] = a
    return out


def backprop_activation(name, y, dy):
    """d(loss)/d(pre-activation) from the output y and d(loss)/dy."""
    if name == "tanh":
        return dy * (1 - y * y)
    if name == "sigmoid":
        return dy * y * (1 - y)
    return dy


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
        xp = get_xp(a)
        padded_a = xp.concatenate([a, xp.zeros_like(a)], axis=1)
        padded_b = xp.concatenate([b, xp.zeros_like(b)])
        xp.matmul(padded_a, padded_b, out=out)
    else:
        get_xp(a).matmul(a, b, out=out)
    return out
