"""The layer types, and the one place where a network-string letter becomes a layer."""

from rwthlm_py.layers.class_softmax import ClassSoftmax
from rwthlm_py.layers.linear import Linear
from rwthlm_py.layers.lstm import Lstm
from rwthlm_py.layers.projection import Projection

__all__ = ["ClassSoftmax", "Linear", "Lstm", "Projection", "build_layer"]


def build_layer(spec, input_size, backend, bias):
    """The hidden layer for a LayerSpec; `input_size` is V for the first layer."""
    if spec.kind == "projection":
        return Projection(input_size, spec.size, backend, order=spec.order,
                          activation=spec.activation, recurrent=spec.recurrent, bias=bias)
    if spec.kind == "lstm":
        return Lstm(input_size, spec.size, backend, bias=bias)
    return Linear(input_size, spec.size, backend, activation=spec.activation,
                  recurrent=spec.recurrent, bias=bias)
