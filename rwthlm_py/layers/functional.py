"""Stateless helpers shared by the layers (activations); they work on numpy and cupy arrays.

Activations are written in place where an `out` array is given. Derivatives are expressed
through the activation's output y, as rwthlm does: tanh' = 1 - y^2, sigmoid' = y (1 - y).
The sigmoid is computed as 0.5 tanh(a/2) + 0.5, which cannot overflow.
"""

from rwthlm_py.runtime.backend import array_module


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
