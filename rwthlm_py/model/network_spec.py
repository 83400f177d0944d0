"""Parsing rwthlm's network strings such as `ptb-i200-m200` into a list of layer specs.

Grammar (rwthlm §2.1): the string is split at `-`; the first token is a free name and every
later token is `<letter><size>`. The output layer is appended automatically and never
written. The letter means, for the first layer and for later layers:

    i       word projection (TableLookup)          linear layer, identity
    2..9    n-gram projection of that many words     linear layer, identity (digit ignored)
    l / L   projection with tanh / sigmoid          linear layer, tanh / sigmoid
    r / R   recurrent projection, tanh / sigmoid    recurrent linear layer, tanh / sigmoid
    m / M   (not allowed first)                     LSTM

Differences from rwthlm, all of them clear errors where rwthlm asserts or misreads: only the
file name is parsed (a `-` in a directory name is harmless), and text after a size is an
error, except a suffix starting with `.` or `_` after the last layer (`ptb-i200-m200.lm`).
"""

import dataclasses
import os
import re

from rwthlm_py.errors import InputError

PROJECTION_KINDS = {"i": "identity", "l": "tanh", "L": "sigmoid", "r": "tanh", "R": "sigmoid"}
LAYER_LETTERS = "ilLrRmM23456789"
LETTERS_HELP = ("i (projection), 2-9 (n-gram projection), l/L (tanh/sigmoid), r/R (recurrent tanh/sigmoid), "
                "m/M (LSTM)")
_LAYER_TOKEN = re.compile(r"^(.)(\d*)(.*)$")


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """One hidden layer: its letter, its output size and what the letter means at its place."""

    letter: str
    size: int
    kind: str  # "projection", "linear" or "lstm"
    activation: str  # "identity", "tanh", "sigmoid"; "lstm" for LSTMs
    recurrent: bool = False
    order: int = 1  # history words of an n-gram projection


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    name: str
    layers: tuple

    def format(self):
        return "-".join([self.name] + [f"{layer.letter}{layer.size}" for layer in self.layers])

    @property
    def output_input_size(self):
        return self.layers[-1].size


def parse_network(text):
    """Parses a network string (or a model path whose file name is one) into a NetworkSpec."""
    base = os.path.basename(os.fspath(text))
    tokens = base.split("-")
    if len(tokens) < 2 or not all(tokens[1:]):
        raise InputError(
            f"bad network string '{base}': expected NAME-LAYER-LAYER..., e.g. ptb-i200-m200"
        )
    layers = []
    for position, token in enumerate(tokens[1:]):
        last = position == len(tokens) - 2
        layers.append(_parse_layer(token, first=position == 0, last=last, whole=base))
    return NetworkSpec(tokens[0], tuple(layers))


def _parse_layer(token, first, last, whole):
    letter, size_text, rest = _LAYER_TOKEN.match(token).groups()
    where = f"in network string '{whole}', layer '{token}'"
    if letter == "x":
        raise InputError(f"{where}: the output layer is added automatically; do not write it")
    if letter.isdigit() and (letter not in LAYER_LETTERS or not size_text or size_text[0] == "0"):
        # `200` is no 2-gram projection of size 00: a size without its letter
        raise InputError(f"{where}: no layer type letter before the size, e.g. {'i' if first else 'm'}{token} "
                         f"(the letters are {LETTERS_HELP})")
    if letter not in LAYER_LETTERS:
        raise InputError(f"{where}: unknown layer type '{letter}' (the letters are {LETTERS_HELP})")
    if not size_text:
        raise InputError(f"{where}: the layer type needs a size, e.g. {letter}200")
    if rest and not (last and rest[0] in "._"):
        raise InputError(f"{where}: unexpected '{rest}' after the size")
    size = int(size_text)
    if size <= 0:
        raise InputError(f"{where}: the size must be positive")
    if letter in "mM":
        if first:
            raise InputError(f"{where}: an LSTM cannot be the first layer; start with a projection such as i{size}")
        return LayerSpec(letter, size, "lstm", "lstm")
    if letter.isdigit():
        if not first:
            return LayerSpec(letter, size, "linear", "identity")
        order = int(letter)
        if size % order:
            raise InputError(
                f"{where}: an n-gram projection of {order} words needs a size divisible by {order}"
            )
        return LayerSpec(letter, size, "projection", "identity", order=order)
    kind = "projection" if first else "linear"
    return LayerSpec(letter, size, kind, PROJECTION_KINDS[letter], recurrent=letter in "rR")
