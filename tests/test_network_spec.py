import pytest

from rwthlm_py.errors import InputError
from rwthlm_py.model.network_spec import parse_network

VALID = [
    ("ptb-i200-m200", [("projection", 200, 1, "identity", False), ("lstm", 200, 1, "lstm", False)]),
    ("example2-7700-L100", [("projection", 700, 7, "identity", False), ("linear", 100, 1, "sigmoid", False)]),
    ("x-330-l5", [("projection", 30, 3, "identity", False), ("linear", 5, 1, "tanh", False)]),
    ("test-r10-R10-M10-L10", [("projection", 10, 1, "tanh", True), ("linear", 10, 1, "sigmoid", True),
                              ("lstm", 10, 1, "lstm", False), ("linear", 10, 1, "sigmoid", False)]),
    ("n-l4-i3-24", [("projection", 4, 1, "tanh", False), ("linear", 3, 1, "identity", False),
                    ("linear", 4, 1, "identity", False)]),
    ("dir-with-dashes/lm-i8-m8", [("projection", 8, 1, "identity", False), ("lstm", 8, 1, "lstm", False)]),
    ("lm-i8-m8.model", [("projection", 8, 1, "identity", False), ("lstm", 8, 1, "lstm", False)]),
]


@pytest.mark.parametrize("text, layers", VALID)
def test_valid_network_strings(text, layers):
    spec = parse_network(text)
    got = [(layer.kind, layer.size, layer.order, layer.activation, layer.recurrent) for layer in spec.layers]
    assert got == layers


def test_format_round_trip():
    assert parse_network("a-330-r5-m7").format() == "a-330-r5-m7"


INVALID = [
    ("ptb", "expected NAME-LAYER"),
    ("ptb-", "expected NAME-LAYER"),
    ("ptb-m200", "cannot be the first layer"),
    ("ptb-i200-x10", "added automatically"),
    ("ptb-f200", "unknown layer type 'f' .the letters are i .projection., 2-9 .n-gram projection., l/L "
                 ".tanh/sigmoid., r/R .recurrent tanh/sigmoid., m/M .LSTM.."),
    ("ptb-1200", "layer '1200': no layer type letter before the size, e.g. i1200 .the letters are i .projection.,"),
    ("lm-200-200", "layer '200': no layer type letter before the size, e.g. i200 .the letters are i .projection.,"),
    ("lm-i200-200", "layer '200': no layer type letter before the size, e.g. m200 "),
    ("lm-i200-20", "layer '20': no layer type letter"),
    ("ptb-i", "needs a size"),
    ("ptb-i0", "must be positive"),
    ("ptb-i200q-m2", "unexpected 'q'"),
    ("ptb-i8-m300i_temp", "unexpected 'i_temp'"),
    ("ptb-320-m4", "divisible by 3"),
]


@pytest.mark.parametrize("text, message", INVALID)
def test_invalid_network_strings(text, message):
    with pytest.raises(InputError, match=message):
        parse_network(text)
