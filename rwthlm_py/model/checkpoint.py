"""The model file: a self-describing, host-only snapshot of a network and its training state.

Format: a numpy .npz archive (a zip of .npy arrays, each with a CRC) holding
    meta               JSON as uint8: format name and version, network string, bias flag,
                       vocabulary (words in network order with their classes), its sha256,
                       epoch, learning rate, best dev perplexity, halvings in a row, the
                       training options
    param/<name>       every parameter, e.g. param/layer2.W
    momentum/<name>    the momentum buffer of every parameter that has one

rwthlm's own file holds only raw weights and needs the network string, vocabulary and
--no-bias flag from outside; this one needs nothing else. Saving is atomic (temporary file,
then rename) and keeps the previous file as `<name>.bk`, as rwthlm does; through a symbolic
link, the file it points to is written and backed up. Anything that is not such a file, is
truncated or corrupt, or is of another format version is an InputError, and so is metadata
that model_meta.py's checks refuse.
"""

import dataclasses
import json
import math
import os

import numpy

from rwthlm_py import __version__
from rwthlm_py.errors import InputError, WriteError
from rwthlm_py.model.model_meta import FORMAT, VERSION, check_meta, check_meta_size, parse_meta
from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.text.textio import atomic_output, link_target
from rwthlm_py.text.vocabulary import Vocabulary


@dataclasses.dataclass
class TrainingState:
    """What training needs to continue: rwthlm's epoch, learning rate and best perplexity,
    and how many epochs in a row have halved the rate (for --stop-after-halvings)."""

    epoch: int = 0
    learning_rate: float = 0.1
    best_perplexity: float = math.inf
    halvings_in_a_row: int = 0


@dataclasses.dataclass
class ModelFile:
    path: str
    meta: dict
    params: dict  # qualified name -> host array
    momentum: dict
    others: dict = dataclasses.field(default_factory=dict)  # any other member, by its full name
    vocabulary: Vocabulary = None  # built from `meta` when it was checked

    @property
    def training_state(self):
        best = self.meta["best_perplexity"]
        return TrainingState(self.meta["epoch"], self.meta["learning_rate"],
                             math.inf if best is None else best, self.meta.get("halvings_in_a_row", 0))


def save_model(path, network, optimizer, training_state, options=None, extra_meta=None, extra_arrays=None,
               keep_backup=True):
    """Writes the model atomically; an existing file is kept as `<path>.bk` (with
    keep_backup). `extra_meta` and `extra_arrays` add metadata fields and arrays (the epoch
    in progress of epoch_checkpoint.py)."""
    backend = network.backend
    vocab = network.vocab
    best = training_state.best_perplexity
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "written_by": f"rwthlm_py {__version__}",
        "network": network.spec.format(),
        "bias": network.bias,
        "tie_weights": network.tie_weights,
        "vocabulary": {"words": vocab.words, "classes": vocab.word_class.tolist(), "sb": vocab.sb_name},
        "vocabulary_sha256": vocab.fingerprint(),
        "epoch": int(training_state.epoch),
        "learning_rate": float(training_state.learning_rate),
        "best_perplexity": None if not math.isfinite(best) else float(best),
        "halvings_in_a_row": int(training_state.halvings_in_a_row),
        "options": options or {},
        **(extra_meta or {}),
    }
    arrays = {"meta": numpy.frombuffer(json.dumps(meta).encode(), dtype=numpy.uint8), **(extra_arrays or {})}
    for name, value in network.named_params().items():
        arrays[f"param/{name}"] = backend.to_numpy(value)
    for name, value in (optimizer.buffers.items() if optimizer is not None else ()):
        arrays[f"momentum/{name}"] = backend.to_numpy(value)
    if keep_backup:
        _keep_backup(path)
    with atomic_output(path, binary=True) as handle:
        numpy.savez(handle, **arrays)


def _keep_backup(path):
    """Makes `<path>.bk` the current file, atomically, before it is replaced. Where `path` is
    a symbolic link, the backup is that of the file it points to, beside that file (where a
    training through another name of the model keeps it too)."""
    path = link_target(os.fspath(path))
    if not os.path.exists(path):
        return
    backup = path + ".bk"
    temporary = backup + ".tmp"
    try:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        # A hard link is a second name of the model's inode, made without copying. The new
        # model is written into a new inode that is renamed over `path` (atomic_output), so
        # the backup keeps the old one; no save writes into a model file in place.
        os.link(path, temporary)
        os.replace(temporary, backup)
    except OSError as error:
        raise WriteError(f"cannot keep a backup of the model: {error.strerror}", path) from None
    finally:  # a signal between the link and the rename leaves no second name behind
        if os.path.lexists(temporary):
            os.unlink(temporary)


ZIP_MAGIC = b"PK\x03\x04"
NPY_MAGIC = b"\x93NUMPY"
# Larger weights can overflow float32 arithmetic: a product of two of them (a projection
# entry times an input weight) summed over a layer passes float32's 3.4e38.
MAX_WEIGHT = 1e15


def read_model(path):
    """Reads and checks a model file; returns a ModelFile with host arrays."""
    path = os.fspath(path)
    members = _read_members(path)
    meta, vocabulary = _read_meta(members, path)
    params = {name[len("param/"):]: value for name, value in members.items() if name.startswith("param/")}
    momentum = {name[len("momentum/"):]: value for name, value in members.items()
                if name.startswith("momentum/")}
    others = {name: value for name, value in members.items()
              if name != "meta" and not name.startswith(("param/", "momentum/"))}
    return ModelFile(path, meta, params, momentum, others, vocabulary)


def read_model_meta(path):
    """The checked metadata of a model file, without reading its weights."""
    path = os.fspath(path)
    meta, _ = _read_meta(_read_members(path, only=("meta",)), path)
    return meta


def _read_members(path, only=None):
    """Every array of the archive (or those named in `only`). Whatever fails while reading
    it (the zip directory, a member's CRC, an .npy header: the readers raise many kinds of
    exception on damaged bytes) means a damaged file."""
    if not os.path.exists(path):
        raise InputError("no such model file", path)
    try:
        with open(path, "rb") as handle:
            magic = handle.read(len(NPY_MAGIC))
    except OSError as error:
        raise InputError(f"cannot read the model file: {error.strerror}", path) from None
    if magic.startswith(NPY_MAGIC):
        raise InputError("a single numpy array (.npy), not an rwthlm_py model file (an .npz archive)", path)
    if not magic.startswith(ZIP_MAGIC):
        raise InputError("not an rwthlm_py model file (it is no zip archive)", path)
    try:
        with numpy.load(path, allow_pickle=False) as archive:
            check_meta_size(_member_size(archive, "meta"), path)
            members = {name: archive[name] for name in archive.files if only is None or name in only}
    except InputError:
        raise
    except MemoryError:
        raise InputError("corrupt model file (an array header asks for more memory than there is)", path) from None
    except Exception as error:  # noqa: BLE001 - a damaged archive raises whatever numpy and zipfile meet
        raise InputError(f"not a readable rwthlm_py model file (corrupt or truncated: "
                         f"{type(error).__name__}: {error})", path) from None
    for name, value in members.items():
        if not isinstance(value, numpy.ndarray):  # numpy gives the bytes of a member that is no .npy
            raise InputError(f"corrupt model file (its member '{name}' is not a numpy array)", path)
    return members


def _member_size(archive, name):
    """The size the archive's directory gives for a member's data (0 if it has none)."""
    for member in (f"{name}.npy", name):
        if member in archive.zip.namelist():
            return archive.zip.getinfo(member).file_size
    return 0


def _read_meta(members, path):
    if "meta" not in members:
        raise InputError("not an rwthlm_py model file (no metadata)", path)
    meta = parse_meta(members["meta"].tobytes(), path)
    return meta, check_meta(meta, path)


def model_vocabulary(model_file):
    """The vocabulary of a model file, as read_model checked it."""
    return model_file.vocabulary


def build_network(model_file, backend, vocab=None):
    """The network described by a model file, with its weights."""
    vocab = vocab if vocab is not None else model_vocabulary(model_file)
    spec = parse_network(model_file.meta["network"])
    network = Network(spec, vocab, backend, bias=bool(model_file.meta["bias"]),
                      tie_weights=model_file.meta.get("tie_weights", False))
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
        largest = float(numpy.abs(stored[name]).max(initial=0.0))
        if largest > MAX_WEIGHT:
            raise InputError(f"corrupt model file: {what} {name} holds {largest:.3g}; values above {MAX_WEIGHT:g} "
                             "overflow float32 arithmetic (no training writes them)", path)
