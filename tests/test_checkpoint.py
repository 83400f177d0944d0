"""Model files: round trip, backups, and clear errors for anything that is not a good one."""

import itertools
import json
import math
import re
import struct
import zipfile

import numpy
import pytest

from rwthlm_py.errors import InputError
from rwthlm_py.model.checkpoint import TrainingState, build_network, load_momentum, read_model, save_model
from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.runtime.backend import get_backend
from rwthlm_py.text import data
from rwthlm_py.training.optim import Sgd
from rwthlm_py.training.selftest import synthetic_corpus


@pytest.fixture
def saved(tmp_path, class_vocab):
    backend = get_backend("numpy")
    network = Network.build(parse_network("t-26-m5"), class_vocab, backend, seed=7, bias=False)
    optimizer = Sgd(network, momentum=0.5)
    for buffer in optimizer.buffers.values():
        buffer[...] = 0.25
    path = tmp_path / "t-26-m5"
    save_model(path, network, optimizer, TrainingState(3, 0.05, 123.5, halvings_in_a_row=2), {"batch_size": 4})
    return path, network, optimizer


def test_round_trip_restores_everything(saved):
    path, network, optimizer = saved
    model = read_model(path)
    assert model.training_state == TrainingState(3, 0.05, 123.5, halvings_in_a_row=2)
    assert model.meta["network"] == "t-26-m5" and model.meta["bias"] is False
    assert model.meta["options"] == {"batch_size": 4}
    loaded = build_network(model, get_backend("numpy"))
    assert loaded.vocab.fingerprint() == network.vocab.fingerprint()
    for name, value in network.named_params().items():
        assert numpy.array_equal(loaded.named_params()[name], value)
    restored = Sgd(loaded, momentum=0.5)
    load_momentum(restored, model)
    for name, value in optimizer.buffers.items():
        assert numpy.array_equal(restored.buffers[name], value)
    corpus = synthetic_corpus(network.vocab, seed=1)
    batch = next(data.batches(corpus, data.wrap(corpus, "verbatim", 4, 20), 4))
    assert numpy.array_equal(loaded.log_probs(batch)[0], network.log_probs(batch)[0])


def test_a_new_network_has_infinite_best_perplexity(tmp_path, class_vocab):
    network = Network.build(parse_network("t-i4-m4"), class_vocab, get_backend("numpy"))
    save_model(tmp_path / "m", network, None, TrainingState())
    assert read_model(tmp_path / "m").training_state.best_perplexity == math.inf


def test_saving_keeps_the_previous_file_as_backup(saved):
    path, network, optimizer = saved
    before = path.read_bytes()
    save_model(path, network, optimizer, TrainingState(4, 0.025, 120.0))
    assert (path.parent / (path.name + ".bk")).read_bytes() == before
    assert read_model(path).training_state.epoch == 4
    assert sorted(p.name for p in path.parent.iterdir()) == ["t-26-m5", "t-26-m5.bk"]


def test_truncated_file(saved):
    path, _, _ = saved
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(InputError, match="not a readable rwthlm_py model file"):
        read_model(path)


def test_corrupt_bytes_are_caught_by_the_checksums(saved):
    path, _, _ = saved
    content = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("param/layer2.W.npy")
    middle = info.header_offset + 30 + len(info.filename) + info.compress_size // 2
    content[middle] ^= 0xFF
    path.write_bytes(bytes(content))
    with pytest.raises(InputError, match="corrupt|not a readable"):
        read_model(path)


def test_other_files_and_versions(tmp_path, saved):
    (tmp_path / "text").write_text("hello\n")
    with pytest.raises(InputError, match="not an rwthlm_py model file \\(it is no zip archive\\)"):
        read_model(tmp_path / "text")
    numpy.save(tmp_path / "bare.npy", numpy.zeros(3))
    with pytest.raises(InputError, match="a single numpy array \\(.npy\\), not an rwthlm_py model file"):
        read_model(tmp_path / "bare.npy")
    with pytest.raises(InputError, match="no such model file"):
        read_model(tmp_path / "missing")
    path, _, _ = saved
    _rewrite_meta(path, lambda meta: meta.update(version=99))
    with pytest.raises(InputError, match="format version 99; this rwthlm_py reads version 1"):
        read_model(path)
    _rewrite_meta(path, lambda meta: meta.update(format="something else"))
    with pytest.raises(InputError, match="not an rwthlm_py model file"):
        read_model(path)


def test_a_flipped_byte_anywhere_in_any_array_header_is_one_input_error(tmp_path, class_vocab):
    """Every byte of the .npy header of every member larger than zipfile's first read (4 KB:
    numpy parses the header before the CRC is checked) replaced in turn by an open
    parenthesis, a NUL and a quote."""
    network = Network.build(parse_network("t-26-m48"), class_vocab, get_backend("numpy"), seed=7)
    path = tmp_path / "t-26-m48"
    save_model(path, network, None, TrainingState())
    content = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
    assert all(info.compress_type == zipfile.ZIP_STORED for info in members)
    for info in [info for info in members if info.file_size > 4096]:
        name_and_extra = content[info.header_offset + 26:info.header_offset + 30]  # the local header's lengths
        data_start = info.header_offset + 30 + sum(struct.unpack("<HH", name_and_extra))
        assert content[data_start:data_start + 6] == b"\x93NUMPY"
        header_length = 10 + int.from_bytes(content[data_start + 8:data_start + 10], "little")
        for offset, replacement in itertools.product(range(data_start, data_start + header_length), b"(\x00'"):
            damaged = bytearray(content)
            damaged[offset] = replacement
            path.write_bytes(bytes(damaged))
            try:
                read_model(path)
            except InputError:
                pass


@pytest.mark.parametrize("change, message", [
    (lambda meta: meta.pop("vocabulary"), "its metadata has no 'vocabulary'"),
    (lambda meta: meta.update(epoch="abc"), "metadata 'epoch' is \"abc\": it must be an integer >= 0"),
    (lambda meta: meta.update(epoch=-1), "'epoch' is -1"),
    (lambda meta: meta.update(bias="yes"), "metadata 'bias' is \"yes\": it must be true or false"),
    (lambda meta: meta.update(learning_rate=0), "'learning_rate' is 0: it must be a finite number > 0"),
    (lambda meta: meta.update(best_perplexity="inf"), "'best_perplexity'"),
    (lambda meta: meta["vocabulary"]["classes"].pop(), "metadata 'vocabulary'"),
    (lambda meta: meta["vocabulary"]["words"].__setitem__(0, 7), "metadata 'vocabulary'"),
    (lambda meta: meta.update(network=["t"]), "metadata 'network'"),
    (lambda meta: meta.update(options=None), "metadata 'options' is null"),
    (lambda meta: meta.update(halvings_in_a_row=-1), "metadata 'halvings_in_a_row' is -1: it must be an integer >= 0"),
])
def test_metadata_of_the_wrong_type_or_range(saved, change, message):
    path, _, _ = saved
    _rewrite_meta(path, change)
    with pytest.raises(InputError, match=re.escape(message)):
        read_model(path)


def test_a_file_from_before_the_count_of_halvings_reads_as_none_in_a_row(saved):
    path, _, _ = saved
    _rewrite_meta(path, lambda meta: meta.pop("halvings_in_a_row"))
    assert read_model(path).training_state == TrainingState(3, 0.05, 123.5, halvings_in_a_row=0)


def test_weights_too_large_for_float32_arithmetic(saved):
    path, _, _ = saved
    with numpy.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["param/layer2.W"] = arrays["param/layer2.W"] * numpy.float32(1e20)
    with open(path, "wb") as handle:
        numpy.savez(handle, **arrays)
    with pytest.raises(InputError, match="layer2.W holds .*e\\+.*; values above 1e\\+15 overflow float32"):
        build_network(read_model(path), get_backend("numpy"))


def test_arrays_that_do_not_fit_the_network_string(saved):
    path, _, _ = saved
    _rewrite_meta(path, lambda meta: meta.update(network="t-26-m6"))
    with pytest.raises(InputError, match="layer2.W has shape"):
        build_network(read_model(path), get_backend("numpy"))


def _rewrite_meta(path, change):
    with numpy.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(arrays["meta"].tobytes())
    change(meta)
    arrays["meta"] = numpy.frombuffer(json.dumps(meta).encode(), dtype=numpy.uint8)
    with open(path, "wb") as handle:
        numpy.savez(handle, **arrays)
