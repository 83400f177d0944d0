"""The model file: a self-describing, host-only snapshot of a network and its training state.

Format: a numpy .npz archive (a zip of .npy arrays, each with a CRC) holding
    meta               JSON as uint8: format name and version, network string, bias flag,
                       vocabulary (words in network order with their classes), its sha256,
                       epoch, learning rate, best dev perplexity, the training options
    param/<name>       every parameter, e.g. param/layer2.W
    momentum/<name>    the momentum buffer of every parameter that has one

rwthlm's own file holds only raw weights and needs the network string, vocabulary and
--no-bias flag from outside; this one needs nothing else. Saving is atomic (temporary file,
then rename) and keeps the previous file as `<name>.bk`, as rwthlm does. Anything that is
not such a file, is truncated or corrupt, or is of another format version is an InputError.
"""

import dataclasses
import json
import math
import os
import zipfile

import numpy

from rwthlm_py import __version__
from rwthlm_py.errors import InputError, WriteError
from rwthlm_py.network import Network
from rwthlm_py.network_spec import parse_network
from rwthlm_py.textio import atomic_output
from rwthlm_py.vocabulary import Vocabulary

FORMAT = "rwthlm_py model"
VERSION = 1


@dataclasses.dataclass
class TrainingState:
    """What training needs to continue: rwthlm's epoch, learning rate and best perplexity."""

    epoch: int = 0
    learning_rate: float = 0.1
    best_perplexity: float = math.inf


@dataclasses.dataclass
class ModelFile:
    path: str
    meta: dict
    params: dict  # qualified name -> host array
    momentum: dict

    @property
    def training_state(self):
        best = self.meta["best_perplexity"]
        return TrainingState(self.meta["epoch"], self.meta["learning_rate"],
                             math.inf if best is None else best)


def save_model(path, network, optimizer, training_state, options=None):
    """Writes the model atomically; an existing file is kept as `<path>.bk`."""
    backend = network.backend
    vocab = network.vocab
    best = training_state.best_perplexity
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "written_by": f"rwthlm_py {__version__}",
        "network": network.spec.format(),
        "bias": network.bias,
        "vocabulary": {"words": vocab.words, "classes": vocab.word_class.tolist(), "sb": vocab.sb_name},
        "vocabulary_sha256": vocab.fingerprint(),
        "epoch": int(training_state.epoch),
        "learning_rate": float(training_state.learning_rate),
        "best_perplexity": None if not math.isfinite(best) else float(best),
        "options": options or {},
    }
    arrays = {"meta": numpy.frombuffer(json.dumps(meta).encode(), dtype=numpy.uint8)}
    for name, value in network.named_params().items():
        arrays[f"param/{name}"] = backend.to_numpy(value)
    for name, value in (optimizer.buffers.items() if optimizer is not None else ()):
        arrays[f"momentum/{name}"] = backend.to_numpy(value)
    _keep_backup(path)
    with atomic_output(path, binary=True) as handle:
        numpy.savez(handle, **arrays)


def _keep_backup(path):
    """Makes `<path>.bk` the current file, atomically, before it is replaced."""
    if not os.path.exists(path):
        return
    backup = os.fspath(path) + ".bk"
    temporary = backup + ".tmp"
    try:
        if os.path.exists(temporary):
            os.unlink(temporary)
        os.link(path, temporary)
        os.replace(temporary, backup)
    except OSError as error:
        raise WriteError(f"cannot keep a backup of the model: {error.strerror}", path) from None


def read_model(path):
    """Reads and checks a model file; returns a ModelFile with host arrays."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError("no such model file", path)
    try:
        with numpy.load(path, allow_pickle=False) as archive:
            members = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as error:
        raise InputError(
            f"not a readable rwthlm_py model file (corrupt, truncated, or of another kind: {error})",
            path,
        ) from None
    meta = _read_meta(members, path)
    params = {name[len("param/"):]: value for name, value in members.items() if name.startswith("param/")}
    momentum = {name[len("momentum/"):]: value for name, value in members.items()
                if name.startswith("momentum/")}
    return ModelFile(path, meta, params, momentum)


def _read_meta(members, path):
    if "meta" not in members:
        raise InputError("not an rwthlm_py model file (no metadata)", path)
    try:
        meta = json.loads(members["meta"].tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError("corrupt model file (unreadable metadata)", path) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputError("not an rwthlm_py model file", path)
    if meta.get("version") != VERSION:
        raise InputError(
            f"model file format version {meta.get('version')}; this rwthlm_py reads version {VERSION}",
            path,
        )
    return meta


def model_vocabulary(model_file):
    entry = model_file.meta["vocabulary"]
    try:
        return Vocabulary(entry["words"], entry["classes"], entry["sb"])
    except (KeyError, ValueError, IndexError) as error:
        raise InputError(f"corrupt model file (bad vocabulary: {error})", model_file.path) from None


def build_network(model_file, backend, vocab=None):
    """The network described by a model file, with its weights."""
    vocab = vocab if vocab is not None else model_vocabulary(model_file)
    spec = parse_network(model_file.meta["network"])
    network = Network(spec, vocab, backend, bias=bool(model_file.meta["bias"]))
    load_weights(network, model_file)
    return network


def load_weights(network, model_file):
    """Sets the network's parameters from a model file of the same architecture."""
    _check_arrays(network.named_params(), model_file.params, model_file.path, "parameter")
    for name, value in network.named_params().items():
        value[...] = network.backend.asarray(model_file.params[name])


def load_momentum(optimizer, model_file):
    """Restores the momentum buffers saved with the model."""
    _check_arrays(optimizer.buffers, model_file.momentum, model_file.path, "momentum buffer")
    optimizer.load_buffers(model_file.momentum)


def _check_arrays(expected, stored, path, what):
    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    if missing or extra:
        raise InputError(
            f"corrupt model file: {what}s do not match its network string "
            f"(missing {missing or 'none'}, unexpected {extra or 'none'})", path)
    for name, value in expected.items():
        if tuple(stored[name].shape) != tuple(value.shape):
            raise InputError(
                f"corrupt model file: {what} {name} has shape {tuple(stored[name].shape)}, "
                f"the network needs {tuple(value.shape)}", path)
        if stored[name].dtype.kind != "f" or not numpy.isfinite(stored[name]).all():
            raise InputError(f"corrupt model file: {what} {name} is not finite floating point", path)
