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
computed for all steps at once. What remains inside the loops is, per step, one product
and one fused kernel (rwthlm_py.kernels.lstm, from the backend): forward, R h(t-1) is
written into the step's gates and the kernel adds W x(t) and computes gates, cell and
output; backward, the kernel gives dA(t) and the cell error passed to t-1, and R^T dA(t)
is added straight onto the error of h(t-1) (backend.gemm with accumulate).
Inside the loops a step's values are [H, B] (a column per sequence): R h(t-1) is then the
product [4H, H] x [H, B] straight into the step's gates, and every gate's block is
contiguous (numpy's element-wise calls on the strided gate views of a [B, 4, H] array
cost four times as much). The cache holds the steps as [T, 4, H, B] and [T, H, B]; the
layer's input and output stay time-major [T, B, .]. The forward kernel halves the
pre-activations of i, f, o so that one tanh call gives z and both sigmoids of i and f:
sigmoid(a) = (tanh(a/2) + 1) / 2.
"""

from rwthlm_py.layers.functional import get_xp
from rwthlm_py.layers.layer import Layer, last_steps

GATES = ("z", "i", "f", "o")


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
        xp, H, kernels = self.xp, self.size, self.backend.kernels
        T, B, D = x.shape
        W_x = self.params["W"] @ x.reshape(T * B, D).T  # [4H, T*B]: step t's B columns are a block
        if self.bias:
            W_x += self.params["b"].reshape(4 * H, 1)
        peepholes = kernels.lstm_peepholes(self.params["p"], B, T)
        A = xp.empty((T, 4, H, B), dtype=x.dtype)  # z, i, f, o of every step, [H, B] each
        C = xp.empty((T, H, B), dtype=x.dtype)
        tanh_C = xp.empty_like(C)
        Hs = xp.empty_like(C)
        h_prev, c_prev = (state[0].T.copy(), state[1].T.copy()) if state is not None else (None, None)
        if hasattr(kernels, "lstm_forward_loop"):  # the loop with its arguments prepared (CUDA kernels)
            kernels.lstm_forward_loop(self.params["R"], W_x, h_prev, c_prev, peepholes, A, C, tanh_C, Hs)
        else:
            for t in range(T):
                if h_prev is not None:
                    self.backend.gemm(self.params["R"], h_prev, out=A[t].reshape(4 * H, B))
                kernels.lstm_forward_step(A[t], W_x[:, t * B:(t + 1) * B], c_prev, peepholes, C[t], tanh_C[t],
                                          Hs[t], h_prev is not None)
                h_prev, c_prev = Hs[t], C[t]
        y = xp.ascontiguousarray(Hs.transpose(0, 2, 1))
        new_state = (last_steps(y, lengths), _last_columns(C, lengths))
        cache = (x, y, A, C, tanh_C, state, lengths) if train else None
        return y, new_state, cache

    def backward(self, dh_out, cache, d_state=None):
        """Full BPTT; returns (dx[T,B,D], (dh0, dc0)) and adds into the parameter gradients."""
        xp, H, kernels = self.xp, self.size, self.backend.kernels
        x, y, A, C, tanh_C, state, lengths = cache
        T, B, D = x.shape
        # as [H, B]; the kernel reads c0 contiguous
        h0, c0 = (state[0].T, state[1].T.copy()) if state is not None else (None, None)
        K_o, K_h, K_zif, G = kernels.lstm_backward_factors(A, C, tanh_C, c0, self.params["p"])
        dh_final, dc_final = d_state if d_state is not None else (None, None)
        at_end = _steps_ending(self.backend, lengths, T) if d_state is not None else None
        e_h = dh_out.transpose(0, 2, 1).copy()  # [T, H, B]; R^T dA(t+1) is added into step t
        R_T = xp.ascontiguousarray(self.params["R"].T)  # R^T dA with a stored R^T: faster
        dA = xp.empty_like(A)
        dc, cell_error = None, xp.empty_like(e_h[0])  # the kernel may write dc_out over dc
        if at_end is None and hasattr(kernels, "lstm_backward_loop"):  # prepared arguments (CUDA kernels)
            dc = kernels.lstm_backward_loop(R_T, e_h, K_o, K_h, K_zif, G, dA, cell_error, c0 is not None)
        else:
            for t in range(T - 1, -1, -1):
                if at_end is not None and at_end[t] is not None:
                    dc = _add_final(xp, e_h[t], dc, dh_final, dc_final, at_end[t])
                dc_out = cell_error if t > 0 or c0 is not None else None
                kernels.lstm_backward_step(e_h[t], dc, K_o[t], K_h[t], K_zif[t], G[t], dA[t], dc_out)
                if t > 0:
                    self.backend.gemm(R_T, dA[t].reshape(4 * H, B), out=e_h[t - 1], accumulate=True)
                dc = dc_out
        dA_rows = xp.ascontiguousarray(dA.reshape(T, 4 * H, B).transpose(1, 0, 2)).reshape(4 * H, T * B)
        self._accumulate(x, y, dA, dA_rows, C, h0, c0)
        dx = (dA_rows.T @ self.params["W"]).reshape(T, B, D)
        dh0 = (R_T @ dA[0].reshape(4 * H, B)).T if h0 is not None else None
        dc0 = dc.T if c0 is not None else None
        return dx, (dh0, dc0)

    def _accumulate(self, x, y, dA, dA_rows, C, h0, c0):
        """Adds the parameter gradients of a whole sequence, one matrix product each;
        dA_rows is dA as [4H, T*B] (step-major columns, as x and y are laid out)."""
        xp, H = self.xp, self.size
        T, B, D = x.shape
        self.add_grad("W", dA_rows @ x.reshape(T * B, D))
        if self.bias:
            self.add_grad("b", dA_rows @ xp.ones(T * B, dtype=dA.dtype))
        # h(t-1) of every step, h0 (or the zero state) first: one product, with operands
        # that a GPU's BLAS takes as they are (a column slice of dA_rows it would copy)
        h_prev = xp.empty((T * B, H), dtype=y.dtype)
        h_prev[B:] = y[:-1].reshape(-1, H)
        if h0 is not None:
            h_prev[:B] = h0.T
        else:
            h_prev[:B] = 0
        self.add_grad("R", dA_rows @ h_prev)
        self.add_grad("p", self.backend.kernels.lstm_peephole_gradient(dA, C, c0))


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
    """Adds the gradients on the final state of the columns that end at this step: into dh
    in place, and into (a copy of) dc, which is returned (dh, dc are [H, B]; dh_final,
    dc_final are [B, H])."""
    if dh_final is not None:
        dh[:, columns] += dh_final[columns].T
    if dc_final is not None:
        dc = xp.zeros_like(dh) if dc is None else dc.copy()
        dc[:, columns] += dc_final[columns].T
    return dc


def _last_columns(steps, lengths):
    """steps[lengths[b]-1, :, b] for every column b of a [T, H, B] array, as [B, H]."""
    return steps[lengths - 1, :, get_xp(steps).arange(steps.shape[2])]
