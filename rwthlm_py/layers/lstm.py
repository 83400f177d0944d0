"""The LSTM layer with peephole connections, exactly as rwthlm's (§3), with full BPTT.

Notation (Greff et al.): block input z, gates i f o, cell c, output h; x is the input.
Shapes: T steps, B sequences, D inputs, H cells. Gate order in W, R, b is GATES.

    z(t) = tanh(W_z x(t) + R_z h(t-1) + b_z)
    i(t) = sigmoid(W_i x(t) + R_i h(t-1) + p_i * c(t-1) + b_i)
    f(t) = sigmoid(W_f x(t) + R_f h(t-1) + p_f * c(t-1) + b_f)
    c(t) = i(t) * z(t) + f(t) * c(t-1)
    o(t) = sigmoid(W_o x(t) + R_o h(t-1) + p_o * c(t) + b_o)      (peephole on the new cell)
    h(t) = o(t) * tanh(c(t))

At step 0 with the zero state every term with h(-1) or c(-1) is skipped. Backward, with
e_h(t) = dy(t) + R^T dA(t+1) the error reaching h(t) and a_g the pre-activations:

    da_o(t) = e_h * K_o,            K_o = tanh(c) * o (1-o)
    e_c(t)  = e_h * K_h + e_c(t+1) * G(t+1),   K_h = o (1 - tanh(c)^2) + p_o K_o
    da_z = e_c * i (1-z^2),  da_i = e_c * z i (1-i),  da_f = e_c * c(t-1) f (1-f)
    G(t)    = f + p_i z i (1-i) + p_f c(t-1) f (1-f)   (so that e_c(t) G(t) = d/dc(t-1))

    dW = sum_t dA(t) x(t)^T,  dR = sum_t dA(t) h(t-1)^T,  db = sum_t dA(t),
    dp_i = sum da_i * c(t-1),  dp_f = sum da_f * c(t-1),  dp_o = sum da_o * c(t)

Speed: W x of all steps is one matrix product before the time loop, and dW, dx, dR are one
product each after it; the factors K and G, which do not depend on the recurrence, are
computed for all steps at once, leaving R h(t-1) and a few element-wise products per step.
Inside the loops a step's values are [H, B] (a column per sequence): R h(t-1) is then the
product [4H, H] x [H, B] straight into the step's gates, and every gate's block is
contiguous (numpy's element-wise calls on the strided gate views of a [B, 4, H] array
cost four times as much). The cache holds the steps as [T, 4, H, B] and [T, H, B]; the
layer's input and output stay time-major [T, B, .]. The gates i, f, o are kept scaled by
1/2 inside the forward loop so that one tanh call gives z and both sigmoids of i and f:
sigmoid(a) = (tanh(a/2) + 1) / 2.
"""

from rwthlm_py.layers.functional import get_xp
from rwthlm_py.layers.layer import Layer, last_steps

GATES = ("z", "i", "f", "o")
Z, I, F, O = range(4)
GATE_SCALE = (1.0, 0.5, 0.5, 0.5)  # a gate's pre-activation is kept times this in the loop


class Lstm(Layer):
    def __init__(self, input_size, size, backend, bias=True):
        super().__init__(backend)
        self.input_size, self.size, self.bias = input_size, size, bias
        self.add_param("W", (4 * size, input_size))
        self.add_param("R", (4 * size, size))
        self.add_param("p", (3 * size,))  # p_i, p_f, p_o
        if bias:
            self.add_param("b", (4 * size,))

    def forward(self, x, state, lengths, train=True):
        """x[T,B,D] -> h[T,B,H]; state = (h0[B,H], c0[B,H]) or None (zero state)."""
        xp, H = self.xp, self.size
        T, B, D = x.shape
        scale = xp.asarray(GATE_SCALE, dtype=x.dtype)[:, None]
        W_scaled = (self.params["W"].reshape(4, H, D) * scale[:, :, None]).reshape(4 * H, D)
        W_x = W_scaled @ x.reshape(T * B, D).T  # [4H, T*B]: the B columns of step t are a block
        if self.bias:
            W_x += (self.params["b"].reshape(4, H) * scale).reshape(4 * H, 1)
        R_scaled = (self.params["R"].reshape(4, H, H) * scale[:, :, None]).reshape(4 * H, H)
        p_half = xp.broadcast_to(0.5 * self.params["p"].reshape(3, H, 1), (3, H, B))
        if T > 1:  # spread over the B columns once: a broadcast along the short last axis is slow
            p_half = xp.ascontiguousarray(p_half)
        p_if, p_o = p_half[:2], p_half[2]
        A = xp.empty((T, 4, H, B), dtype=x.dtype)  # z, i, f, o of every step, [H, B] each
        C = xp.empty((T, H, B), dtype=x.dtype)
        tanh_C = xp.empty_like(C)
        Hs = xp.empty_like(C)
        h_prev, c_prev = (state[0].T.copy(), state[1].T.copy()) if state is not None else (None, None)
        for t in range(T):
            a = A[t]
            W_x_t = W_x[:, t * B:(t + 1) * B]
            if h_prev is not None:
                xp.matmul(R_scaled, h_prev, out=a.reshape(4 * H, B))
                a.reshape(4 * H, B)[...] += W_x_t
            else:
                a.reshape(4 * H, B)[...] = W_x_t
            if c_prev is not None:
                a[I:O] += p_if * c_prev
            zif = a[Z:O]
            xp.tanh(zif, out=zif)
            a[I:O] *= 0.5
            a[I:O] += 0.5
            c = xp.multiply(a[I], a[Z], out=C[t])
            if c_prev is not None:
                c += a[F] * c_prev
            o = a[O]
            o += p_o * c
            xp.tanh(o, out=o)
            o *= 0.5
            o += 0.5
            xp.tanh(c, out=tanh_C[t])
            xp.multiply(o, tanh_C[t], out=Hs[t])
            h_prev, c_prev = Hs[t], c
        y = xp.ascontiguousarray(Hs.transpose(0, 2, 1))
        new_state = (last_steps(y, lengths), _last_columns(C, lengths))
        cache = (x, y, A, C, tanh_C, state, lengths) if train else None
        return y, new_state, cache

    def backward(self, dh_out, cache, d_state=None):
        """Full BPTT; returns (dx[T,B,D], (dh0, dc0)) and adds into the parameter gradients."""
        xp, H = self.xp, self.size
        x, y, A, C, tanh_C, state, lengths = cache
        T, B, D = x.shape
        h0, c0 = (state[0].T, state[1].T) if state is not None else (None, None)
        K_o, K_h, K_zif, G = self._backward_factors(A, C, tanh_C, c0)
        dh_final, dc_final = d_state if d_state is not None else (None, None)
        at_end = _steps_ending(self.backend, lengths, T) if d_state is not None else None
        dh_columns = xp.ascontiguousarray(dh_out.transpose(0, 2, 1))  # [T, H, B]
        R_T = xp.ascontiguousarray(self.params["R"].T)  # R^T dA with a stored R^T: faster
        dA = xp.empty_like(A)
        dh_next = e_c_next = None
        for t in range(T - 1, -1, -1):
            da = dA[t]
            dh = dh_columns[t] if dh_next is None else dh_columns[t] + dh_next
            dc = None if e_c_next is None else e_c_next * G[t + 1]
            if at_end is not None and at_end[t] is not None:
                dh, dc = _add_final(xp, dh, dc, dh_final, dc_final, at_end[t])
            xp.multiply(dh, K_o[t], out=da[O])
            e_c = dh * K_h[t]
            if dc is not None:
                e_c += dc
            xp.multiply(e_c, K_zif[t], out=da[Z:O])
            e_c_next = e_c
            dh_next = R_T @ da.reshape(4 * H, B) if t > 0 or h0 is not None else None
        dA_rows = xp.ascontiguousarray(dA.reshape(T, 4 * H, B).transpose(1, 0, 2)).reshape(4 * H, T * B)
        self._accumulate(x, y, dA, dA_rows, C, h0, c0)
        dx = (dA_rows.T @ self.params["W"]).reshape(T, B, D)
        dh0 = dh_next.T if dh_next is not None else None
        dc0 = (e_c_next * G[0]).T if c0 is not None else None
        return dx, (dh0, dc0)

    def _backward_factors(self, A, C, tanh_C, c0):
        """K_o, K_h, K_zif = [i(1-z^2), z i(1-i), c(t-1) f(1-f)] and G, for all steps at once."""
        xp, H = self.xp, self.size
        p = self.params["p"].reshape(3, H, 1)
        z, i, f, o = A[:, Z], A[:, I], A[:, F], A[:, O]
        K_o = tanh_C * o * (1 - o)
        K_h = o * (1 - tanh_C * tanh_C) + p[2] * K_o
        K_zif = xp.empty((A.shape[0], 3) + A.shape[2:], dtype=A.dtype)
        xp.multiply(i, 1 - z * z, out=K_zif[:, 0])
        xp.multiply(z, i * (1 - i), out=K_zif[:, 1])
        f_slope = f * (1 - f)
        K_zif[1:, 2] = C[:-1] * f_slope[1:]
        if c0 is not None:
            K_zif[0, 2] = c0 * f_slope[0]
        else:
            K_zif[0, 2] = 0
        G = f + p[0] * K_zif[:, 1] + p[1] * K_zif[:, 2]
        return K_o, K_h, K_zif, G

    def _accumulate(self, x, y, dA, dA_rows, C, h0, c0):
        """Adds the parameter gradients of a whole sequence, one matrix product each;
        dA_rows is dA as [4H, T*B] (step-major columns, as x and y are laid out)."""
        xp, H = self.xp, self.size
        T, B, D = x.shape
        self.add_grad("W", dA_rows @ x.reshape(T * B, D))
        if self.bias:
            self.add_grad("b", dA_rows @ xp.ones(T * B, dtype=dA.dtype))
        dR = dA_rows[:, B:] @ y[:-1].reshape(-1, H)
        if h0 is not None:
            dR += dA[0].reshape(4 * H, B) @ h0.T
        self.add_grad("R", dR)
        # summed over the steps first: a sum along the short last axis (B) is slow
        dp = xp.empty((3, H, B), dtype=dA.dtype)
        dp[:2] = (dA[1:, I:O] * C[:-1, None]).sum(axis=0)
        if c0 is not None:
            dp[:2] += dA[0, I:O] * c0
        dp[2] = (dA[:, O] * C).sum(axis=0)
        self.add_grad("p", dp.sum(axis=2).reshape(3 * H))


def _steps_ending(backend, lengths, T):
    """For each step t, the columns whose last step is t (None where there are none)."""
    last = backend.to_numpy(lengths) - 1
    result = [None] * T
    for t in range(T):
        columns = (last == t).nonzero()[0]
        if len(columns):
            result[t] = backend.xp.asarray(columns)
    return result


def _add_final(xp, dh, dc, dh_final, dc_final, columns):
    """Adds the gradients on the final state of the columns that end at this step
    (dh, dc are [H, B]; dh_final, dc_final are [B, H])."""
    dh = dh.copy()
    if dh_final is not None:
        dh[:, columns] += dh_final[columns].T
    if dc_final is not None:
        dc = xp.zeros_like(dh) if dc is None else dc.copy()
        dc[:, columns] += dc_final[columns].T
    return dh, dc


def _last_columns(steps, lengths):
    """steps[lengths[b]-1, :, b] for every column b of a [T, H, B] array, as [B, H]."""
    return steps[lengths - 1, :, get_xp(steps).arange(steps.shape[2])]
