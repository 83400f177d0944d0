"""The first layer: word projection (rwthlm's TableLookup), optionally n-gram or recurrent.

For order n (letters 2..9) the output at step t is the concatenation, most recent first,

    y(t) = [E[w(t)] + b, E[w(t-1)] + b, ..., E[w(t-n+1)] + b]        E: V x d, d = size/n

and the state is the history of the last n-1 words; an empty history (the start of a
batch) is filled with copies of the first input word, as rwthlm does. Letters l/L apply
tanh/sigmoid; r/R add a full recurrent matrix: y(t) = g(E[w(t)] + b + R y(t-1)).
E and b are updated by plain SGD (rwthlm gives them no momentum); only R has momentum.
No gradient flows below this layer.
"""

from rwthlm_py.layers.functional import activate, backprop_activation
from rwthlm_py.layers.layer import Layer, add_at_last_steps, last_steps
from rwthlm_py.layers.recurrence import recurrent_backward, recurrent_forward


class Projection(Layer):
    no_momentum = frozenset({"E", "b"})

    def __init__(self, vocab_size, size, backend, order=1, activation="identity",
                 recurrent=False, bias=True):
        super().__init__(backend)
        self.order, self.size, self.width = order, size, size // order
        self.activation, self.recurrent, self.bias = activation, recurrent, bias
        self.add_param("E", (vocab_size, self.width), sparse=True)
        if bias:
            self.add_param("b", (self.width,))
        if recurrent:
            self.add_param("R", (size, size))

    def forward(self, words, state, lengths, train=True):
        """words[T,B] (ints) -> y[T,B,size]; state = (history[B,n-1], y0[B,size])."""
        T, B = words.shape
        history, y0 = state if state is not None else (None, None)
        extended = self._extend(words, history)
        ids = self._windows(extended, T)
        a = self.params["E"][ids]  # [T,B,n,d]
        if self.bias:
            a += self.params["b"]
        a = a.reshape(T, B, self.size)
        if self.recurrent:
            y = recurrent_forward(a, self.params["R"], y0, self.activation)
        else:
            y = activate(self.activation, a, out=a)
        new_state = (
            self._final_history(extended, lengths) if self.order > 1 else None,
            last_steps(y, lengths) if self.recurrent else None,
        )
        if all(part is None for part in new_state):
            new_state = None
        cache = (ids, y, y0, lengths) if train else None
        return y, new_state, cache

    def _extend(self, words, history):
        """The inputs preceded by the n-1 history words, oldest first: [n-1+T, B]."""
        if self.order == 1:
            return words
        if history is None:
            history = self.xp.repeat(words[0][:, None], self.order - 1, axis=1)
        return self.xp.concatenate([history.T, words], axis=0)

    def _windows(self, extended, T):
        """ids[t,b,k] = word at step t-k: [T,B,n]."""
        n = self.order
        return self.xp.stack([extended[n - 1 - k:n - 1 - k + T] for k in range(n)], axis=2)

    def _final_history(self, extended, lengths):
        columns = self.xp.arange(extended.shape[1])
        return self.xp.stack(
            [extended[lengths + j, columns] for j in range(self.order - 1)], axis=1
        )

    def feedforward_state(self, state):
        """The word history survives the per-slice reset of --feedforward; y(t-1) does not."""
        if state is None or state[0] is None:
            return None
        return (state[0], None)

    def backward(self, dy, cache, d_state=None):
        ids, y, y0, lengths = cache
        dy0 = None
        if d_state is not None and d_state[1] is not None:
            dy = add_at_last_steps(dy, lengths, d_state[1])
        if self.recurrent:
            da, dR, dy0 = recurrent_backward(dy, y, self.params["R"], y0, self.activation)
            self.add_grad("R", dR)
        else:
            da = backprop_activation(self.activation, y, dy)
        da = da.reshape(-1, self.width)
        if self.bias:
            self.add_grad("b", da.sum(axis=0))
        self.grads["E"].add_scattered(ids.ravel(), da, self.backend.scatter_add)
        return None, (None, dy0)
