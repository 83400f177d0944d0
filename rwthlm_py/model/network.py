"""A whole network: the hidden layers of a network string plus the class-factored output.

The one scoring path: `log_probs` gives ln p of every target of a batch; perplexity and
n-best rescoring sum it. Lattice rescoring extends many histories by one word each and
asks for several next words per history: `next_word_log_probs` runs the same layers for
one step and the same output layer for every (history, word) pair. `accumulate_gradients`
runs the same forward pass, then full backpropagation through time over the whole batch,
and adds the gradient of the summed loss -sum ln p into every layer's `grads` (the sum,
not the mean, as rwthlm).

The recurrent state is a value: a tuple with one entry per hidden layer (None: the zero
state), returned by every call and passed back in by the caller to carry it on.
"""

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy

from rwthlm_py.errors import InputError
from rwthlm_py.layers import ClassSoftmax, build_layer
from rwthlm_py.layers.functional import get_xp
from rwthlm_py.layers.row_gradient import RowGradient
from rwthlm_py.runtime.backend import Array, Backend

if TYPE_CHECKING:
    from rwthlm_py.model.network_spec import NetworkSpec
    from rwthlm_py.text.data import Batch
    from rwthlm_py.text.vocabulary import Vocabulary
    from rwthlm_py.training.dropout import DropoutMasks

# The recurrent state: one entry per hidden layer (None: the zero state), each an array or
# a tuple of arrays (an LSTM's h and c); None as a whole is the zero state of every layer.
State: TypeAlias = tuple | None

# a hidden layer's numbers per predicted word in training, in units of its size: the LSTM's
# four gate activations, its cell, the cell's tanh and its output, their gradients
HIDDEN_COPIES_IN_TRAINING = 12


class Network:
    def __init__(self, spec: "NetworkSpec", vocab: "Vocabulary", backend: Backend, bias: bool = True,
                 tie_weights: bool = False) -> None:
        self.spec, self.vocab, self.backend, self.bias = spec, vocab, backend, bias
        self.xp = backend.xp
        self.layers, input_size = [], len(vocab)
        for layer_spec in spec.layers:
            self.layers.append(build_layer(layer_spec, input_size, backend, bias))
            input_size = layer_spec.size
        self.output = ClassSoftmax(input_size, vocab, backend, bias=bias)
        self.modules = {f"layer{k + 1}": layer for k, layer in enumerate(self.layers)}
        self.modules["output"] = self.output
        self.tie_weights = tie_weights
        if tie_weights:
            check_tying(spec, vocab)
            self.output.tie("W_class", self.layers[0], "E")

    @staticmethod
    def parameter_count(spec: "NetworkSpec", vocab: "Vocabulary", bias: bool = True, tie_weights: bool = False) -> int:
        """The number of weights a network of `spec` over `vocab` has, known before any
        allocation (the layers' shapes: lookup E[V, s/order] and recurrent R[s, s];
        linear W[s, in] and R[s, s]; LSTM W[4s, in], R[4s, s], peepholes p[3s]; output
        W_class[C, H], W_word[V - shortlist, H]; and a bias per row where there are biases)."""
        count, input_size = 0, len(vocab)
        for layer in spec.layers:
            if layer.kind == "projection":
                count += (input_size + bias) * (layer.size // layer.order)
            elif layer.kind == "lstm":
                count += 4 * layer.size * (input_size + layer.size + bias) + 3 * layer.size
            else:
                count += layer.size * (input_size + bias)
            if layer.recurrent:
                count += layer.size * layer.size
            input_size = layer.size
        output_rows = vocab.num_classes + len(vocab) - vocab.shortlist_size
        tied = len(vocab) * input_size if tie_weights else 0  # W_class is the projection's E
        return count + output_rows * (input_size + bias) - tied

    def activation_count(self, targets: int, training: bool) -> int:
        """An upper bound of the numbers a batch of `targets` predicted words holds at once
        (measured on full softmaxes of 100,000 and 300,000 words: the logits' peak is about
        1x the logits in scoring, 2x in training): the output's logits (targets x classes,
        and the words of the targets' classes), kept for the backward pass in training, and
        each hidden layer's outputs, with the LSTM's gate and cell caches in training."""
        vocab = self.vocab
        class_words = int(vocab.class_size.max()) if vocab.num_classes < len(vocab) else 0
        output = targets * (vocab.num_classes + class_words) * (2 if training else 1)
        copies = HIDDEN_COPIES_IN_TRAINING if training else 2
        hidden = targets * sum(layer.size for layer in self.spec.layers) * copies
        return output + hidden

    @classmethod
    def build(cls, spec: "NetworkSpec", vocab: "Vocabulary", backend: Backend, seed: int = 1, bias: bool = True,
              tie_weights: bool = False) -> "Network":
        """A new network with every weight drawn from N(0, 0.1^2), layer by layer."""
        network = cls(spec, vocab, backend, bias, tie_weights)
        rng = numpy.random.default_rng(seed)
        for module in network.modules.values():
            module.initialize(rng)
        return network

    # -- parameters ------------------------------------------------------------------------

    def named_params(self) -> dict[str, Array]:
        return {f"{prefix}.{name}": value for prefix, module in self.modules.items()
                for name, value in module.own_params().items()}

    def named_grads(self) -> dict[str, Any]:
        return {f"{prefix}.{name}": value for prefix, module in self.modules.items()
                for name, value in module.grads.items()}

    def dense_grads(self) -> dict[str, Array]:
        """Every gradient as a dense array (row gradients filled in), by parameter name."""
        return {f"{prefix}.{name}": module.dense_grad(name) for prefix, module in self.modules.items()
                for name in module.grads}

    def momentum_names(self) -> list[str]:
        """Qualified names of the parameters that rwthlm updates with momentum."""
        return [f"{prefix}.{name}" for prefix, module in self.modules.items()
                for name in module.own_params() if name not in module.no_momentum]

    def zero_grads(self) -> None:
        for module in self.modules.values():
            module.zero_grads()

    def num_params(self) -> int:
        return sum(int(value.size) for value in self.named_params().values())

    def gradient_norm(self) -> Array:
        """|g| of all gradients, a 0-d array on the device (reading it is a wait on a GPU)."""
        xp, dtype = self.xp, self.backend.dtype
        gradients = list(self.named_grads().values())
        dense = [gradient for gradient in gradients if not isinstance(gradient, RowGradient)]
        parts = [self.backend.kernels.sum_of_squares(dense) if dense else xp.zeros((), dtype=dtype)]
        parts += [gradient.squared_norm(xp, dtype) for gradient in gradients if isinstance(gradient, RowGradient)]
        # one stack and one sum (not an addition per part); numpy adds so few in order, cupy's
        # reduction in a tree (the last bit may differ from adding them one by one)
        total = xp.stack(parts).sum() if len(parts) > 1 else parts[0]
        return xp.sqrt(total)

    # -- computation -----------------------------------------------------------------------

    def hidden(self, inputs: Array, state: State, lengths: Array, train: bool,
               dropout: "DropoutMasks | None" = None) -> tuple[Array, tuple, list]:
        """Runs the hidden layers: inputs[T,B] -> (hidden[T,B,H], new state, caches); with
        `dropout` (DropoutMasks) every layer's output is multiplied by its mask, which the
        cache keeps for the backward pass."""
        state = state if state is not None else (None,) * len(self.layers)
        x, new_state, caches = inputs, [], []
        for index, (layer, layer_state) in enumerate(zip(self.layers, state, strict=True)):
            x, layer_new_state, cache = layer.forward(x, layer_state, lengths, train)
            mask = None
            if dropout is not None:
                x, mask = dropout.apply(index, x)
            new_state.append(layer_new_state)
            caches.append((cache, mask))
        return x, tuple(new_state), caches

    def log_probs(self, batch: "Batch", state: State = None, unk_penalty: float = 0.0,
                  dropout: "DropoutMasks | None" = None) -> tuple[Array, tuple]:
        """ln p of every real target, in the order of batch.valid, and the state after the batch.

        `unk_penalty` (ln(num_oovs + 1)) is subtracted from every target that is the
        unknown word, as rwthlm's --num-oovs does. `dropout` (masks of a training batch) is
        for gradient checks only: scoring never drops.
        """
        inputs, lengths = self._device_batch(batch)
        hidden, new_state, _ = self.hidden(inputs, self.on_device(state), lengths, train=False, dropout=dropout)
        targets = batch.targets.ravel()[batch.valid]
        return self._target_log_probs(self._valid_rows(hidden, batch), targets, unk_penalty), new_state

    def next_word_log_probs(self, inputs: Sequence[int], state: State, columns: Sequence[int], targets: Sequence[int],
                            unk_penalty: float = 0.0) -> tuple[Array, tuple]:
        """One step of B histories: column b feeds the word inputs[b] from its state.

        Returns ln p(targets[k] | the history of column columns[k]) for every k (host int
        arrays `columns`, `targets` of equal length; a column may have many targets) and
        the state after the step.
        """
        hidden, new_state = self.step(inputs, state)
        rows = hidden[self.xp.asarray(numpy.asarray(columns, dtype=numpy.int64))]
        return self._target_log_probs(rows, numpy.asarray(targets), unk_penalty), new_state

    def step(self, inputs: Sequence[int], state: State) -> tuple[Array, tuple]:
        """One step of B histories, column b feeding the word inputs[b] (host ints): the
        last hidden layer's output [B, H] and the state after the step."""
        words = numpy.asarray(inputs, dtype=numpy.int32)[None, :]
        lengths = numpy.ones(words.shape[1], dtype=numpy.int64)
        hidden, new_state, _ = self.hidden(self.xp.asarray(words), self.on_device(state), self.xp.asarray(lengths),
                                           train=False)
        return hidden[0], new_state

    def _target_log_probs(self, rows: Array, targets: numpy.ndarray, unk_penalty: float) -> Array:
        """ln p of targets[k] given the hidden row rows[k]; minus the unk penalty for <unk>."""
        logp, _ = self.output.forward(rows, targets, train=False)
        if unk_penalty and self.vocab.unk is not None:
            logp = logp - unk_penalty * self.xp.asarray(targets == self.vocab.unk, dtype=logp.dtype)
        return logp

    def accumulate_gradients(self, batch: "Batch", state: State = None, d_logp: Array | None = None,
                             d_state: State = None,
                             dropout: "DropoutMasks | None" = None) -> tuple[Array, tuple, tuple]:
        """Forward and full BPTT over a batch; adds d(loss)/d(param) into the grads.

        The loss is -sum ln p, or sum(d_logp * ln p) when d_logp is given (for gradient
        checks); d_state is a gradient on the final state; `dropout` (DropoutMasks) drops
        the hidden layers' outputs. Returns (ln p[N], new state, gradient on the initial
        state).
        """
        inputs, lengths = self._device_batch(batch)
        hidden, new_state, caches = self.hidden(inputs, self.on_device(state), lengths, train=True,
                                                dropout=dropout)
        targets = batch.targets.ravel()[batch.valid]
        logp, output_cache = self.output.forward(self._valid_rows(hidden, batch), targets)
        dh_valid = self.output.backward(self.on_device(d_logp), output_cache)
        d_hidden = self._scatter_rows(dh_valid, hidden.shape, batch)
        d_initial = self._backward_hidden(d_hidden, caches, self.on_device(d_state))
        return logp, new_state, d_initial

    def on_device(self, value: Any) -> Any:
        """A state or gradient from the caller with its arrays on this network's device
        (host arrays are copied there; None stays None)."""
        return map_state(self.xp.asarray, value)

    def without_recurrence(self, state: State) -> State:
        """Keeps only the n-gram word histories: the state of --feedforward, reset every slice."""
        if state is None:
            return None
        return tuple(layer.feedforward_state(part) for layer, part in zip(self.layers, state, strict=True))

    def _backward_hidden(self, dy: Array, caches: list, d_state: State) -> tuple:
        d_state = d_state if d_state is not None else (None,) * len(self.layers)
        d_initial = []
        for layer, (cache, mask), layer_d_state in reversed(list(zip(self.layers, caches, d_state, strict=True))):
            if mask is not None:
                dy = dy * mask
            dy, d_layer_initial = layer.backward(dy, cache, layer_d_state)
            d_initial.append(d_layer_initial)
        return tuple(reversed(d_initial))

    def _device_batch(self, batch: "Batch") -> tuple[Array, Array]:
        xp = self.xp
        return xp.asarray(batch.inputs), xp.asarray(batch.lengths)

    def _valid_rows(self, hidden: Array, batch: "Batch") -> Array:
        T, B, H = hidden.shape
        rows = hidden.reshape(T * B, H)
        if batch.num_targets == T * B:
            return rows
        return rows[self.xp.asarray(batch.valid)]

    def _scatter_rows(self, d_rows: Array, shape: tuple[int, int, int], batch: "Batch") -> Array:
        T, B, H = shape
        if batch.num_targets == T * B:
            return d_rows.reshape(T, B, H)
        d_hidden = self.xp.zeros((T * B, H), dtype=d_rows.dtype)
        d_hidden[self.xp.asarray(batch.valid)] = d_rows
        return d_hidden.reshape(T, B, H)


def check_tying(spec: "NetworkSpec", vocab: "Vocabulary") -> None:
    """Weight tying (Press and Wolf 2017) shares the word projection E [V, d] with the output
    weights W_class [C, H]: it needs a full softmax (every word its own class, so that class
    c is word c) and d = H. Anything else is an InputError saying why."""
    if vocab.num_classes != len(vocab) or vocab.shortlist_size != len(vocab):
        raise InputError(f"--tie-weights needs a full softmax (every word its own class); this vocabulary has "
                         f"{vocab.num_classes} classes for {len(vocab)} words")
    check_tying_layers(spec)


def check_tying_layers(spec: "NetworkSpec") -> None:
    """What weight tying needs of the layers alone: a word projection first, as large as
    the last hidden layer."""
    first, last = spec.layers[0], spec.layers[-1]
    if first.kind != "projection" or first.order != 1:
        raise InputError(f"--tie-weights needs a word projection first (i, l, L, r or R), not '{first.letter}'")
    if first.size != last.size:
        raise InputError(f"--tie-weights needs the projection's size ({first.size}) equal to the last hidden "
                         f"layer's ({last.size}), e.g. {spec.name}-i{last.size}-...-m{last.size}")


def concatenate_states(states: Sequence[Any]) -> Any:
    """Batch states joined along the batch axis, the inverse of select_state (None stays None)."""
    first = states[0]
    if first is None or len(states) == 1:
        return first
    if isinstance(first, tuple):
        return tuple(concatenate_states([state[i] for state in states]) for i in range(len(first)))
    return get_xp(first).concatenate(states)


def select_state(state: Any, index: Any) -> Any:
    """The state of the columns `index` (a slice or index array); None stays None."""
    return map_state(lambda part: part[index], state)


def map_state(function: Callable[[Array], Array], state: Any) -> Any:
    """function applied to every array of a (nested tuple) state; None stays None."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(map_state(function, part) for part in state)
    return function(state)
