"""Memory checks before allocating: a network's weights (with their gradients and momentum
in training), and the activations of its largest batch, against what the machine or the
device has; a refusal is one line saying what needs how much.

    weights     = copies * parameters * itemsize       copies: 3 in training, else 1
    activations = Network.activation_count(targets of the largest batch) * itemsize
"""

import numpy

from rwthlm_py.errors import InputError
from rwthlm_py.model.checkpoint import model_vocabulary
from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network


def require_model_memory(model_file, backend, vocab=None, training=False):
    """require_memory for the network of a model file (over `vocab`, default its own)."""
    vocab = vocab if vocab is not None else model_vocabulary(model_file)
    require_memory(parse_network(model_file.meta["network"]), vocab, model_file.meta["bias"], backend,
                   training, tie_weights=model_file.meta.get("tie_weights", False))


def require_memory(spec, vocab, bias, backend, training, tie_weights=False):
    """Refuses, before allocating, a network whose weights (with their gradients and
    momentum when training) alone need more memory than the machine or device has."""
    copies = 3 if training else 1
    needed = copies * Network.parameter_count(spec, vocab, bias, tie_weights) * numpy.dtype(backend.dtype).itemsize
    available = backend.memory_bytes()
    if needed > available:
        what = "weights, gradients and momentum" if training else "weights"
        raise InputError(f"network {spec.format()} over {len(vocab):,} words needs {format_bytes(needed)} for its "
                         f"{what} alone; this {'machine' if backend.on_host else 'device'} has "
                         f"{format_bytes(available)}")


def require_batch_memory(network, sequences, batch_size, training):
    """Refuses, before the first batch, a layout whose largest batch (the `batch_size`
    longest sequences, whatever the shuffling) needs more memory with the network's weights
    (and their gradients and momentum in training) than the machine or device has."""
    lengths = numpy.sort(sequences.end - sequences.first)[::-1]
    targets = int(lengths[:batch_size].sum())
    itemsize = numpy.dtype(network.backend.dtype).itemsize
    weights = network.num_params() * (3 if training else 1) * itemsize
    activations = network.activation_count(targets, training) * itemsize
    available = network.backend.memory_bytes()
    if weights + activations > available:
        advice = "" if network.vocab.num_classes < len(network.vocab) else ", or use word classes (--classes)"
        raise InputError(f"a batch of {targets:,} predicted words needs {format_bytes(activations)} for the network's "
                         f"activations, with its {format_bytes(weights)} of weights"
                         f"{', gradients and momentum' if training else ''}; this "
                         f"{'machine' if network.backend.on_host else 'device'} has {format_bytes(available)}: lower "
                         f"--batch-size or --sequence-length{advice}")


def format_bytes(count):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.1f} {unit}" if unit != "bytes" else f"{count} bytes"
        count /= 1024
