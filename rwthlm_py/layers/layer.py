"""What every layer shares: named parameters, their gradients, initialisation, state picking.

Layer contract (time-major: T steps, B sequences):

    forward(x, state, lengths, train) -> (y[T,B,.], new_state, cache)
    backward(dy, cache, d_state=None) -> (dx, d_initial_state)   # adds into self.grads

`state` is the layer's recurrent state before step 0 (None: the zero state, with the
recurrent terms skipped at step 0 as rwthlm does); `new_state` is the state after step
lengths[b]-1 of each column b. Layers keep no state between calls, so callers can copy,
fork and carry it. `cache` is None when train is False.
"""

from rwthlm_py.layers.functional import get_xp
from rwthlm_py.layers.row_gradient import RowGradient

INIT_STDDEV = 0.1  # rwthlm draws every weight from N(0, 0.1^2)


class Layer:
    no_momentum = frozenset()  # parameters updated by plain SGD, as rwthlm does

    def __init__(self, backend):
        self.backend = backend
        self.xp = backend.xp
        self.params = {}
        self.grads = {}
        self._zeros = {}  # read-only zero gradients, shown until a batch adds to them
        self._untouched = set()
        self.tied = {}  # name -> (owner layer, owner's name): the owner's array, and its gradient

    def add_param(self, name, shape, sparse=False):
        """Registers a parameter; registration order is rwthlm's random draw order."""
        self.params[name] = self.backend.zeros(shape)
        if sparse:
            self.grads[name] = RowGradient(shape)
        else:
            self._zeros[name] = self.backend.zeros(shape)
            self.grads[name] = self._zeros[name]
            self._untouched.add(name)

    def tie(self, name, owner, owner_name):
        """Makes parameter `name` the array of owner's `owner_name` (weight tying): the
        owner holds it, and the gradient this layer computes for it is added to the owner's."""
        if self.params[name].shape != owner.params[owner_name].shape:
            raise ValueError(f"cannot tie {name} {self.params[name].shape} to {owner_name} "
                             f"{owner.params[owner_name].shape}")
        self.params[name] = owner.params[owner_name]
        self.tied[name] = (owner, owner_name)
        del self.grads[name]
        self._zeros.pop(name, None)
        self._untouched.discard(name)

    def own_params(self):
        """The parameters this layer holds (not those tied to another layer's)."""
        return {name: value for name, value in self.params.items() if name not in self.tied}

    def add_grad(self, name, value):
        """grads[name] += value; the first addition after zero_grads takes `value` itself,
        which saves zeroing and adding large gradients (value must not be used elsewhere).
        A tied parameter's gradient goes to its owner."""
        if name in self.tied:
            owner, owner_name = self.tied[name]
            if isinstance(owner.grads[owner_name], RowGradient):
                owner.grads[owner_name].add(slice(None), value)
            else:
                owner.add_grad(owner_name, value)
            return
        if name in self._untouched:
            self._untouched.discard(name)
            self.grads[name] = value.astype(self.params[name].dtype, copy=False)
        else:
            self.grads[name] += value

    def initialize(self, rng):
        """Draws every parameter from N(0, 0.1^2) with the host generator `rng` (a tied
        one is its owner's to draw)."""
        for value in self.own_params().values():
            value[...] = self.backend.asarray(rng.normal(0.0, INIT_STDDEV, size=value.shape))

    def zero_grads(self):
        for name, gradient in self.grads.items():
            if isinstance(gradient, RowGradient):
                gradient.clear()
            else:
                self.grads[name] = self._zeros[name]
                self._untouched.add(name)

    def feedforward_state(self, state):
        """What survives rwthlm's per-slice reset in --feedforward mode: nothing by default."""
        return None

    def dense_grad(self, name):
        gradient = self.grads[name]
        if isinstance(gradient, RowGradient):
            return gradient.to_dense(self.xp, self.params[name].dtype)
        return gradient


def last_steps(Y, lengths):
    """Y[lengths[b]-1, b] for every column b: the value after each sequence's last step."""
    return Y[lengths - 1, get_xp(Y).arange(Y.shape[1])]


def add_at_last_steps(dY, lengths, d_last):
    """A copy of dY with d_last[b] added at step lengths[b]-1 of column b."""
    dY = dY.copy()
    dY[lengths - 1, get_xp(dY).arange(dY.shape[1])] += d_last
    return dY
