"""rwthlm's SGD step with classical momentum (§6.2), applied to the summed batch gradient.

For a parameter w with momentum buffer m, one step with learning rate eta and momentum mu:

    m <- m - eta * g;   w <- w + m;   m <- mu * m

so that v(k) = mu v(k-1) - eta g(k) and w(k) = w(k-1) + v(k). Parameters that rwthlm updates
without momentum (embeddings, their bias, the word-class output weights) take w <- w - eta g.
The buffers hold mu * v(k), exactly what rwthlm stores in its model file, so a resumed run
continues the same sequence of steps.
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
        self._scratch = None

    def step(self, learning_rate):
        params = self.network.named_params()
        for name, gradient in self.network.named_grads().items():
            param = params[name]
            if isinstance(gradient, RowGradient):
                gradient.apply(param, -learning_rate)
                continue
            step = self._scaled(gradient, learning_rate)
            if name in self.buffers and self._buffers_in_use:
                buffer = self.buffers[name]
                buffer -= step
                param += buffer
                buffer *= self.momentum
            else:  # no momentum, or mu = 0 with empty buffers: the same step, cheaper
                param -= step

    def _scaled(self, gradient, factor):
        """factor * gradient in a reused buffer (no temporary as large as the parameter)."""
        if self._scratch is None or self._scratch.size < gradient.size:
            self._scratch = self.network.xp.empty(gradient.size, dtype=gradient.dtype)
        out = self._scratch[:gradient.size].reshape(gradient.shape)
        return self.network.xp.multiply(gradient, factor, out=out)

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
