"""A hidden linear layer (letters i, 2..9, l, L after the first), optionally recurrent (r, R).

    y(t) = g(W x(t) + b [+ R y(t-1)])      W: H x D, R: H x H, g = identity, tanh or sigmoid

All parameters have momentum. The state is y of the last step (recurrent layers only).
"""

from rwthlm_py.layers.functional import activate, backprop_activation
from rwthlm_py.layers.layer import Layer, add_at_last_steps, last_steps
from rwthlm_py.layers.recurrence import recurrent_backward, recurrent_forward


class Linear(Layer):
    def __init__(self, input_size, size, backend, activation="identity", recurrent=False,
                 bias=True):
        super().__init__(backend)
        self.input_size, self.size = input_size, size
        self.activation, self.recurrent, self.bias = activation, recurrent, bias
        self.add_param("W", (size, input_size))
        if bias:
            self.add_param("b", (size,))
        if recurrent:
            self.add_param("R", (size, size))

    def forward(self, x, state, lengths, train=True):
        """x[T,B,D] -> y[T,B,H]; state = y0[B,H] of a recurrent layer."""
        T, B, D = x.shape
        a = (x.reshape(T * B, D) @ self.params["W"].T).reshape(T, B, self.size)
        if self.bias:
            a += self.params["b"]
        if self.recurrent:
            y = recurrent_forward(a, self.params["R"], state, self.activation)
            new_state = last_steps(y, lengths)
        else:
            y, new_state = activate(self.activation, a, out=a), None
        cache = (x, y, state, lengths) if train else None
        return y, new_state, cache

    def backward(self, dy, cache, d_state=None):
        x, y, y0, lengths = cache
        dy0 = None
        if d_state is not None:
            dy = add_at_last_steps(dy, lengths, d_state)
        if self.recurrent:
            da, dR, dy0 = recurrent_backward(dy, y, self.params["R"], y0, self.activation)
            self.add_grad("R", dR)
        else:
            da = backprop_activation(self.activation, y, dy)
        T, B, D = x.shape
        da2 = da.reshape(T * B, self.size)
        self.add_grad("W", da2.T @ x.reshape(T * B, D))
        if self.bias:
            self.add_grad("b", da2.sum(axis=0))
        dx = (da2 @ self.params["W"]).reshape(T, B, D)
        return dx, dy0
