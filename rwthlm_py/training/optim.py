"""rwthlm's SGD step with classical momentum (§6.2), applied to the summed batch gradient.

For a parameter w with momentum buffer m, one step with learning rate eta and momentum mu:

    m <- m - eta * g;   w <- w + m;   m <- mu * m

so that v(k) = mu v(k-1) - eta g(k) and w(k) = w(k-1) + v(k). Parameters that rwthlm updates
without momentum (embeddings, their bias, the word-class output weights) take w <- w - eta g.
The buffers hold mu * v(k), exactly what rwthlm stores in its model file, so a resumed run
continues the same sequence of steps. The dense parameters take their step together, in
the backend's fused sgd_step (one kernel on a GPU); row gradients update their rows.
"""

from rwthlm_py.layers.row_gradient import RowGradient


class Sgd:
    def __init__(self, network, momentum=0.0):
        self.network = network
        self.momentum = momentum
        names = set(network.momentum_names())
        self.buffers = {name: network.xp.zeros_like(value)
                        for name, value in network.named_params().items() if name in names}
        self._buffers_in_use = momentum != 0.0

    def step(self, learning_rate):
        """One step with learning rate eta (a number, or a 0-d array on the device)."""
        params = self.network.named_params()
        dense = []
        descent = None  # -learning_rate, negated once (a launch where the rate is on the device)
        for name, gradient in self.network.named_grads().items():
            if isinstance(gradient, RowGradient):
                descent = -learning_rate if descent is None else descent
                gradient.apply(params[name], descent)
            else:
                # no momentum, or mu = 0 with empty buffers: the same step, cheaper
                buffer = self.buffers.get(name) if self._buffers_in_use else None
                dense.append((params[name], gradient, buffer))
        if dense:
            self.network.backend.kernels.sgd_step(*map(list, zip(*dense, strict=True)), learning_rate, self.momentum)

    def reset(self):
        for buffer in self.buffers.values():
            buffer.fill(0)
        self._buffers_in_use = self.momentum != 0.0

    def load_buffers(self, buffers):
        """Sets the buffers from host arrays (a model file's momentum buffers)."""
        for name, value in buffers.items():
            self.buffers[name][...] = self.network.backend.asarray(value)
        self._buffers_in_use = self.momentum != 0.0 or any(
            bool(buffer.any()) for buffer in self.buffers.values())
