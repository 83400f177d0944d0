"""A full recurrent matrix on top of a layer: y(t) = g(a(t) + R y(t-1)), and its BPTT.

Shared by the recurrent projection ('r', 'R' first) and the recurrent linear layer ('r',
'R' later). a[T,B,H] is everything but the recurrent term; y0 is the state before the
first step (None: the zero state, where the R term is skipped as rwthlm does).

Backward, with e(t) = dy(t) + R^T da(t+1):  da(t) = e(t) * g'(y(t)),
dR = sum_t da(t) y(t-1)^T,  dy0 = R^T da(0).
"""

from rwthlm_py.layers.functional import activate, backprop_activation, get_xp


def recurrent_forward(a, R, y0, activation):
    """Runs the recurrence over a[T,B,H] in place; returns Y[T,B,H] (the same array)."""
    y_prev = y0
    for t in range(a.shape[0]):
        if y_prev is not None:
            a[t] += y_prev @ R.T
        activate(activation, a[t], out=a[t])
        y_prev = a[t]
    return a


def recurrent_backward(dY, Y, R, y0, activation):
    """Returns (dA[T,B,H], dR, dy0); dy0 is None when y0 is (the zero state)."""
    xp = get_xp(dY)
    T = dY.shape[0]
    dA = xp.empty_like(dY)
    carry = None
    for t in range(T - 1, -1, -1):
        dy = dY[t] if carry is None else dY[t] + carry
        dA[t] = backprop_activation(activation, Y[t], dy)
        carry = dA[t] @ R if (t > 0 or y0 is not None) else None
    H = dY.shape[2]
    dR = dA[1:].reshape(-1, H).T @ Y[:-1].reshape(-1, H)
    if y0 is not None:
        dR += dA[0].T @ y0
    return dA, dR, carry
