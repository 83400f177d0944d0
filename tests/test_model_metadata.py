"""A model file whose metadata is inconsistent, with checksums that pass (the archive is
valid; only the `meta` member changed), is one line naming the file through every command
that reads a model and through rwthlm_py.load: each check of rwthlm_py/model/model_meta.py in turn.

Where a check is not about the stored sha256, the changed vocabulary is given its own sha256,
so that the check under test is the only one that can refuse the file."""

import hashlib
import io
import json
import sys
import zipfile

import numpy
import pytest
from conftest import HAND_LATTICE, assert_one_line_error, toy_sentences
from conftest import run_cli as call

import rwthlm_py
from rwthlm_py.errors import InputError

RWTHLM = [sys.executable, "-c", "import sys; from rwthlm_py.cli import rwthlm_main; sys.exit(rwthlm_main())"]
RWTHLM_PY = [sys.executable, "-m", "rwthlm_py"]
NBEST = "0 0 4 the cat sees the\n0 0 4 the dog sees the\n"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A trained toy model (every word its own class), a text, an n-best list and a lattice."""
    folder = tmp_path_factory.mktemp("metadata")
    for name, count, seed in (("train", 400, 1), ("dev", 60, 2), ("test", 60, 3)):
        (folder / f"{name}.txt").write_text("\n".join(toy_sentences(count, seed)) + "\n")
    status, _, err = call(RWTHLM_PY, "train", "--train", "train.txt", "--dev", "dev.txt", "--learning-rate", 0.05,
                          "--max-epoch", 1, "toy-i8-m8", cwd=folder)
    assert status == 0, err
    (folder / "utt.nbest").write_text(NBEST)
    (folder / "hand.lat").write_text(HAND_LATTICE)
    return folder


def vocabulary_sha256(words, classes):
    """Vocabulary.fingerprint, spelt out: sha256 of `word TAB class NEWLINE` per word."""
    lines = "".join(f"{w}\t{c}\n" for w, c in zip(words, classes, strict=True))
    return hashlib.sha256(lines.encode("utf-8", "surrogatepass")).hexdigest()


def with_meta(folder, name, change=None, raw=None, rehash=True):
    """A copy of the toy model as `name`, its metadata changed by `change(meta)` (its
    vocabulary then given its own sha256 unless rehash is False), or replaced by `raw` bytes."""
    with numpy.load(folder / "toy-i8-m8") as archive:
        arrays = {member: archive[member] for member in archive.files}
    if raw is None:
        meta = json.loads(arrays["meta"].tobytes())
        change(meta)
        if rehash:
            meta["vocabulary_sha256"] = vocabulary_sha256(meta["vocabulary"]["words"], meta["vocabulary"]["classes"])
        raw = json.dumps(meta).encode()
    arrays["meta"] = numpy.frombuffer(raw, dtype=numpy.uint8)
    with open(folder / name, "wb") as handle:
        numpy.savez(handle, **arrays)
    return name


def words(meta):
    return meta["vocabulary"]["words"]


def swap_cat_and_dog(meta):
    cat, dog = words(meta).index("cat"), words(meta).index("dog")
    words(meta)[cat], words(meta)[dog] = "dog", "cat"


def rename(old, new):
    return lambda meta: words(meta).__setitem__(words(meta).index(old), new)


def nested(depth):
    return b"[" * depth + b"]" * depth


CASES = {  # name: (with_meta's arguments, what the error line says)
    "swapped words": (dict(change=swap_cat_and_dog, rehash=False), "its vocabulary does not match the "
                      "vocabulary_sha256 stored with it: its words or classes were changed after it was written"),
    "another sha256": (dict(change=lambda meta: meta.update(vocabulary_sha256="0" * 64), rehash=False),
                       "does not match the vocabulary_sha256 stored with it"),
    "no sha256": (dict(change=lambda meta: meta.pop("vocabulary_sha256"), rehash=False),
                  "its metadata has no 'vocabulary_sha256'"),
    "sha256 not hexadecimal": (dict(change=lambda meta: meta.update(vocabulary_sha256="X" * 64), rehash=False),
                               "metadata 'vocabulary_sha256' is \"XXXX"),
    "duplicate word": (dict(change=rename("cat", "dog")), "its vocabulary holds 'dog' twice"),
    "word with a space": (dict(change=rename("cat", "big cat")), "holds \"big cat\", which no text can hold as a word"),
    "empty word": (dict(change=rename("cat", "")), "holds \"\", which no text can hold as a word"),
    "lone surrogate": (dict(change=rename("cat", "\ud800")), "holds \"\\ud800\", which no text can hold as a word"),
    "no sentence boundary": (dict(change=lambda meta: meta["vocabulary"].update(sb="<s>")),
                             "its sentence boundary '<s>' is not in its vocabulary"),
    "another sentence boundary": (dict(change=lambda meta: meta["vocabulary"].update(sb="the")),
                                  "its sentence boundary is 'the', but it was trained with --map-sb '<sb>'"),
    "classes out of order": (dict(change=lambda meta: meta["vocabulary"]["classes"].reverse()),
                             "its vocabulary's classes must be contiguous id ranges in ascending class order"),
    "class beyond the words": (dict(change=lambda meta: meta["vocabulary"]["classes"].__setitem__(-1, 2 ** 70)),
                               f"its vocabulary has class {2 ** 70} for "),
    "nested 100,000 deep": (dict(raw=nested(100_000)), "its metadata is nested deeper than 32 levels"),
    "nested 40 deep": (dict(raw=b'{"format": "rwthlm_py model", "x": ' + nested(39) + b"}"),
                       "its metadata is nested deeper than 32 levels"),
    "a number of 5,000 digits": (dict(raw=b'{"epoch": ' + b"9" * 5000 + b"}"),
                                 "its metadata holds a number of too many digits"),
    "not JSON": (dict(raw=b'{"epoch": '), "its metadata is not JSON: Expecting value"),
    "not UTF-8": (dict(raw=b'{"epoch": "\xff"}'), "its metadata is not UTF-8 text"),
    "bad network string": (dict(change=lambda meta: meta.update(network="toy-i8-q8")),
                           "corrupt model file (in network string 'toy-i8-q8', layer 'q8': unknown layer type 'q'"),
    "impossible tied weights": (dict(change=lambda meta: meta.update(network="toy-i6-m8", tie_weights=True)),
                                "its weights are tied, but --tie-weights needs the projection's size (6) equal"),
}


@pytest.mark.parametrize("case", CASES)
def test_each_check_is_one_line_naming_the_file_in_ppl_and_in_the_python_api(folder, case):
    arguments, message = CASES[case]
    name = with_meta(folder, "bad-i8-m8", **arguments)
    assert_one_line_error(call(RWTHLM_PY, "ppl", "--ppl", "test.txt", name, cwd=folder), "rwthlm-py",
                          f"{name}: corrupt model file (", message)
    with pytest.raises(InputError) as raised:
        rwthlm_py.load(folder / name, backend="numpy")
    assert message in str(raised.value)


@pytest.mark.parametrize("case", ["swapped words", "duplicate word", "nested 100,000 deep"])
def test_the_issues_cases_through_every_command_that_reads_a_model(folder, case):
    arguments, message = CASES[case]
    name = with_meta(folder, "bad-i8-m8", **arguments)
    for program, command in (
            ("rwthlm", RWTHLM + ["--ppl", "test.txt"]),
            ("rwthlm", RWTHLM + ["--lambda", 1, "--pruning-threshold", 100, "--set-sb-last", "hand.lat"]),
            ("rwthlm-py", RWTHLM_PY + ["ppl", "--ppl", "test.txt"]),
            ("rwthlm-py", RWTHLM_PY + ["nbest", "--nbest", "utt.nbest"]),
            ("rwthlm-py", RWTHLM_PY + ["lattice", "--lambda", 1, "--pruning-threshold", 100, "--set-sb-last",
                                       "--out", "rescored", "hand.lat"]),
            ("rwthlm-py", RWTHLM_PY + ["sample"]),
            ("rwthlm-py", RWTHLM_PY + ["train", "--train", "train.txt", "--dev", "dev.txt", "--max-epoch", 2])):
        result = call(command, name, cwd=folder)
        assert_one_line_error(result, program, f"{name}: corrupt model file (", message)
        assert result[0] == 1
    assert not (folder / "rescored").exists() and not (folder / "hand.lat.rescored").exists()


def test_metadata_larger_than_the_bound_is_refused_before_it_is_read(folder):
    """The archive's directory declares 2 GiB for the metadata (deflated, such a member can
    come from a small file); the file is refused without reading it. The directory also
    gives the member a CRC its bytes do not have, so that reading it would end in another
    error (a damaged file): only a check before the read gives the size."""
    name = with_meta(folder, "large-i8-m8", change=lambda meta: None)
    content = bytearray((folder / name).read_bytes())
    entry = content.index(b"PK\x01\x02")  # an entry of the archive's directory, after the members
    while content[entry + 46:entry + 46 + len(b"meta.npy")] != b"meta.npy":
        entry = content.index(b"PK\x01\x02", entry + 4)
    crc = int.from_bytes(content[entry + 16:entry + 20], "little")
    content[entry + 16:entry + 20] = (crc ^ 1).to_bytes(4, "little")  # its CRC-32
    content[entry + 24:entry + 28] = (2 ** 31).to_bytes(4, "little")  # its uncompressed size
    (folder / name).write_bytes(bytes(content))
    message = "corrupt model file (its metadata is 2,147,483,648 bytes; at most 268,435,456 are read)"
    assert_one_line_error(call(RWTHLM_PY, "ppl", "--ppl", "test.txt", name, cwd=folder), "rwthlm-py",
                          f"{name}: {message}")
    with pytest.raises(InputError) as raised:
        rwthlm_py.load(folder / name, backend="numpy")
    assert str(raised.value) == f"{folder / name}: {message}"


@pytest.mark.parametrize("member", ["meta", "param/layer2.W"])
def test_a_member_stored_as_bytes_not_as_an_array_is_one_line(folder, member):
    source = folder / "toy-i8-m8"
    with zipfile.ZipFile(source) as archive:
        members = {info.filename: archive.read(info.filename) for info in archive.infolist()}
    with zipfile.ZipFile(folder / "raw-i8-m8", "w") as archive:
        for name, content in members.items():
            if name == f"{member}.npy":
                name, content = member, numpy.load(io.BytesIO(content)).tobytes()  # the bare bytes
            archive.writestr(name, content)
    assert_one_line_error(call(RWTHLM_PY, "ppl", "--ppl", "test.txt", "raw-i8-m8", cwd=folder), "rwthlm-py",
                          f"raw-i8-m8: corrupt model file (its member '{member}' is not a numpy array)")


def test_a_consistent_file_reads_and_an_older_one_without_the_optional_fields_too(folder):
    def older(meta):
        meta.pop("tie_weights")
        meta.pop("halvings_in_a_row")

    name = with_meta(folder, "older-i8-m8", change=older, rehash=False)
    status, out, err = call(RWTHLM_PY, "ppl", "--ppl", "test.txt", name, cwd=folder)
    assert status == 0, err
    _, written, _ = call(RWTHLM_PY, "ppl", "--ppl", "test.txt", "toy-i8-m8", cwd=folder)
    assert out.splitlines()[-1] == written.splitlines()[-1]
