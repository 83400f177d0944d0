"""Memory checks before allocating: a network's weights (with their gradients and momentum
in training), and the activations of its largest batch, against what the machine or the
device has; a refusal is one line saying what needs how much. An allocation that fails
anyway (numpy's MemoryError, cupy's OutOfMemoryError) is one line too (out_of_memory_line).

    weights     = copies * parameters * itemsize       copies: 3 in training, else 1
    activations = Network.activation_count(targets of the largest batch) * itemsize
"""

import os

import numpy

from rwthlm_py.errors import InputError
from rwthlm_py.model.checkpoint import model_vocabulary
from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.runtime.backend import device_memory_of


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
        smaller = "smaller layers or a smaller vocabulary" + (
            ", or --dtype float32" if numpy.dtype(backend.dtype).itemsize > 4 else "")
        raise InputError(f"network {spec.format()} over {len(vocab):,} words needs {format_bytes(needed)} for its "
                         f"{what} alone; this {'machine' if backend.on_host else 'device'} has "
                         f"{format_bytes(available)}: choose {smaller}")


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


def out_of_memory_line(error):
    """What to say of a MemoryError that the checks did not foresee: what the allocation
    asked for (the error's own words), what the device or machine has, what to change."""
    detail = str(error).rstrip(".") or "an array did not fit"
    device = device_memory_of(error)
    where = (f"this machine has {format_bytes(os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE'))}"
             if device is None else f"the device has {format_bytes(device)}")
    return (f"out of memory: {detail}; {where}: lower --batch-size or --sequence-length, or use word classes "
            "(--classes) where the output has none")


def format_bytes(count):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.1f} {unit}" if unit != "bytes" else f"{count} bytes"
        count /= 1024
