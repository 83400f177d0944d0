"""Property-based fuzzing of every reader of user files: whatever the bytes, a reader either
returns or raises the one-line InputError (never another exception, never a hang), and that
line stays short.

Each reader gets mutations of a valid file of its format (bytes replaced, inserted, deleted,
lines repeated or dropped, the file cut short; inserted pieces favour what parsers trip on:
line ends, quotes, NaN, huge numbers, a byte-order mark, section names, a long token, a
long line of words) and random bytes.
The model file is also fuzzed where its bytes would pass the checksums: its metadata
fields replaced by random JSON.

The default profile ("ci", registered in conftest.py) runs a fixed set of examples
(derandomized, so that CI is reproducible) in well under a minute. A read that does not
end within READ_DEADLINE seconds fails its test (a hang must not stall CI). Maintainers run a longer random search with

    python -m pytest tests/test_fuzz.py --hypothesis-profile=fuzz-long

which draws 20,000 examples per reader (about 15 minutes on two cores).
"""

import contextlib
import faulthandler
import json
import pathlib
import signal

import numpy
import pytest
from conftest import HAND_LATTICE
from hypothesis import given
from hypothesis import strategies as st

from rwthlm_py.config import read_config_file
from rwthlm_py.errors import InputError
from rwthlm_py.model.checkpoint import TrainingState, build_network, read_model, save_model
from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.rescoring.htk_lattice import read_lattice
from rwthlm_py.rescoring.nbest import read_kaldi_lists, read_srilm_list
from rwthlm_py.rescoring.wer import read_references
from rwthlm_py.runtime.backend import get_backend
from rwthlm_py.text import data
from rwthlm_py.text.arpa import read_arpa
from rwthlm_py.text.corpora import load_manifest
from rwthlm_py.text.vocabulary import read_vocabulary, remap

DATA = pathlib.Path(__file__).parent / "data"
MANIFEST = pathlib.Path(__file__).parents[1] / "corpora" / "ptb" / "manifest.toml"

TRICKY = [b"\n", b"\r", b"\r\n", b" ", b"\t", b"\x00", b"\x0b", b"\x1c", b"\xff", b"\xc3", b"\xef\xbb\xbf",
          b"\xc2\xa0", b"'", b'"', b"\\", b"=", b"-", b"#", b"(", b"[", b"{", b"0", b"-0", b"nan", b"inf",
          b"-inf", b"1e400", b"-99", b"99999999999999999999", b"1.5", b"<s>", b"</s>", b"<sb>", b"<unk>",
          b"!NULL", b"\\data\\", b"\\end\\", b"\\2-grams:", b"ngram 1=", b"NBestList2.0", b"J=", b"N=", b"L=",
          b"S=", b"E=", b"W=", b"base=", b"[[files]]", b"w" * 5000, b"w " * 2500]
LONGEST_ERROR = 2000  # characters of an error line, whatever input it quotes (errors.shortened)


@st.composite
def mutated(draw, seed):
    """`seed` after one to eight random edits."""
    text = bytearray(seed)
    for _ in range(draw(st.integers(1, 8))):
        edit = draw(st.sampled_from(["replace", "insert", "delete", "repeat line", "drop line", "cut"]))
        at = draw(st.integers(0, len(text)))
        if edit == "replace" and at < len(text):
            text[at] = draw(st.integers(0, 255))
        elif edit == "insert":
            text[at:at] = draw(st.sampled_from(TRICKY) | st.binary(min_size=1, max_size=4))
        elif edit == "delete":
            del text[at:at + draw(st.integers(1, 16))]
        elif edit in ("repeat line", "drop line"):
            lines = bytes(text).split(b"\n")
            line = draw(st.integers(0, len(lines) - 1))
            lines[line:line + 1] = [lines[line]] * 2 if edit == "repeat line" else []
            text = bytearray(b"\n".join(lines))
        elif edit == "cut":
            del text[at:]
    return bytes(text)


def inputs_like(seed):
    return mutated(seed) | st.binary(max_size=200)


# A read that runs this long hangs (the slowest example reads in well under a second): a
# guard that fails the test instead of stalling the run; no result depends on it.
READ_DEADLINE = 30


@contextlib.contextmanager
def deadline(what, seconds=None):
    """Fails the test where the body runs past `seconds` (READ_DEADLINE): SIGALRM raises
    pytest's failure (no InputError, no Exception, so that neither the reader nor hypothesis
    swallows it or shrinks on a hang) wherever Python code runs; a hang inside a C call,
    which no signal interrupts, ends the run with every thread's traceback (faulthandler)
    as long again later."""
    seconds = READ_DEADLINE if seconds is None else seconds

    def expire(signal_number, frame):
        pytest.fail(f"{what} did not end within {seconds} s: a hang", pytrace=True)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    faulthandler.dump_traceback_later(2 * seconds, exit=True)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, previous)


def assert_reads_or_one_line_error(read, path):
    shown = "the input" if path is None or not path.exists() else f"{path} ({path.read_bytes()[:300]!r}...)"
    try:
        with deadline(f"reading {shown}"):
            read(path)
    except InputError as error:
        message = str(error)
        assert message and "\n" not in message and "\r" not in message, repr(message)
        assert len(message) <= LONGEST_ERROR, f"{len(message)} characters: {message[:300]!r}"


@pytest.fixture
def scratch(tmp_path):
    return tmp_path / "input"


def fuzz(seed):
    """The test body decorator: the input drawn like `seed` arrives as `content`."""
    return given(content=inputs_like(seed))


# -- text, vocabulary, options --------------------------------------------------------------------

VOCABULARY = remap([("the", 0), ("cat", 1), ("sees", 1), ("a", 2), ("dog", 2), ("<unk>", 3)], "<sb>")


@fuzz(b"the cat sees a dog\na dog sees the cat\n\nthe <unk>\n")
def test_training_text(scratch, content):
    scratch.write_bytes(content)
    assert_reads_or_one_line_error(lambda path: data.read_corpus(path, VOCABULARY, use_unk=True, keep_words=True),
                                   scratch)
    assert_reads_or_one_line_error(lambda path: data.read_corpus(path, VOCABULARY), scratch)


@fuzz(b"the 0\ncat 1\nsees 1\na 2\n<unk> 3\n")
def test_vocabulary_file(scratch, content):
    scratch.write_bytes(content)
    assert_reads_or_one_line_error(read_vocabulary, scratch)


@fuzz(b"# settings\nbatch-size = 8\nlearning-rate = 0.05\nword-wrapping = fixed\nunk = true\nmap-sb = <sb>\n")
def test_config_file(scratch, content):
    scratch.write_bytes(content)
    assert_reads_or_one_line_error(read_config_file, scratch)


@fuzz(MANIFEST.read_bytes())
def test_corpus_manifest(tmp_path, content):
    path = tmp_path / "manifest.toml"
    path.write_bytes(content)
    assert_reads_or_one_line_error(load_manifest, path)


# -- rescoring inputs -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["utt1.nbest", "utt2.nbest", "utt3.score.nbest"])
def test_srilm_lists_of_every_format(tmp_path, name):
    @fuzz((DATA / "nbest" / name).read_bytes())
    def body(content):
        path = tmp_path / name
        path.write_bytes(content)
        assert_reads_or_one_line_error(read_srilm_list, path)

    body()


@pytest.mark.parametrize("mutated_file", ["text", "ac_cost", "lm_cost"])
def test_kaldi_lists(tmp_path, mutated_file):
    @fuzz((DATA / "kaldi" / mutated_file).read_bytes())
    def body(content):
        paths = {name: DATA / "kaldi" / name for name in ("text", "ac_cost", "lm_cost")}
        paths[mutated_file] = tmp_path / mutated_file
        paths[mutated_file].write_bytes(content)
        assert_reads_or_one_line_error(lambda _: read_kaldi_lists(paths["text"], paths["ac_cost"], paths["lm_cost"]),
                                       None)

    body()


@fuzz((DATA / "refs").read_bytes())
def test_references(scratch, content):
    scratch.write_bytes(content)
    assert_reads_or_one_line_error(read_references, scratch)


@fuzz((DATA / "toy.arpa").read_bytes())
def test_arpa_model(scratch, content):
    scratch.write_bytes(content)

    def read_and_score(path):
        model = read_arpa(path)
        model.sentence_log_probs(["the", "cat", "zebra"], num_oovs=2)

    assert_reads_or_one_line_error(read_and_score, scratch)


@fuzz(HAND_LATTICE.encode())
def test_htk_lattice(scratch, content):
    scratch.write_bytes(content)
    assert_reads_or_one_line_error(read_lattice, scratch)


# -- model files ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "t-i6-m5"
    network = Network.build(parse_network("t-i6-m5"), VOCABULARY, get_backend("numpy"), seed=3)
    save_model(path, network, None, TrainingState(2, 0.05, 40.0), {"batch_size": 4})
    return path.read_bytes()


def read_and_build(path):
    build_network(read_model(path), get_backend("numpy"))


def test_model_file_bytes(scratch, model_bytes):
    @given(content=mutated(model_bytes))
    def body(content):
        scratch.write_bytes(content)
        assert_reads_or_one_line_error(read_and_build, scratch)

    body()


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children,
                                                                                     max_size=4),
                    max_leaves=12)


def test_model_file_metadata(scratch, model_bytes):
    """Metadata that passes every checksum but holds anything: one field, or one field of
    the vocabulary, replaced by random JSON, or left out."""
    scratch.write_bytes(model_bytes)
    with numpy.load(scratch) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(arrays["meta"].tobytes())
    names = sorted(meta) + [f"vocabulary.{name}" for name in sorted(meta["vocabulary"])]

    @given(name=st.sampled_from(names), value=JSON, remove=st.booleans())
    def body(name, value, remove):
        changed = json.loads(json.dumps(meta))
        holder, key = (changed["vocabulary"], name.split(".")[1]) if "." in name else (changed, name)
        if remove:
            del holder[key]
        else:
            holder[key] = value
        arrays["meta"] = numpy.frombuffer(json.dumps(changed).encode(), dtype=numpy.uint8)
        with open(scratch, "wb") as handle:
            numpy.savez(handle, **arrays)
        assert_reads_or_one_line_error(read_and_build, scratch)

    body()


def _saved_with_meta(path, arrays, meta_bytes):
    arrays["meta"] = numpy.frombuffer(meta_bytes, dtype=numpy.uint8)
    with open(path, "wb") as handle:
        numpy.savez(handle, **arrays)


@pytest.fixture
def model_arrays(scratch, model_bytes):
    scratch.write_bytes(model_bytes)
    with numpy.load(scratch) as archive:
        return {name: archive[name] for name in archive.files}


VOCABULARY_EDITS = st.sampled_from(["swap", "rename to another word", "rename", "change a class"])


def test_a_vocabulary_changed_after_it_was_written_is_refused(scratch, model_arrays):
    """Words swapped, renamed (to a word it holds already, or to anything) or a class
    changed, the stored sha256 kept: never read, always the one-line error."""
    meta = json.loads(model_arrays["meta"].tobytes())
    size = len(meta["vocabulary"]["words"])

    @given(edit=VOCABULARY_EDITS, first=st.integers(0, size - 1), second=st.integers(0, size - 1),
           text=st.text(max_size=6), number=st.integers(0, 2 ** 70))
    def body(edit, first, second, text, number):
        changed = json.loads(json.dumps(meta))
        words, classes = changed["vocabulary"]["words"], changed["vocabulary"]["classes"]
        if edit == "swap":
            words[first], words[second] = words[second], words[first]
        elif edit == "rename to another word":
            words[first] = words[second]
        elif edit == "rename":
            words[first] = text
        else:
            classes[first] = number
        if changed == meta:
            return  # nothing changed: nothing to refuse
        _saved_with_meta(scratch, model_arrays, json.dumps(changed).encode())
        with pytest.raises(InputError) as raised, deadline(f"reading a model whose vocabulary had a {edit}"):
            read_and_build(scratch)
        assert "\n" not in str(raised.value) and str(raised.value).startswith(f"{scratch}: corrupt model file (")

    body()


def test_metadata_nested_to_any_depth_is_read_or_refused_in_one_line(scratch, model_arrays):
    """A field (or the whole metadata) nested up to 200,000 levels deep, in lists or objects:
    never a RecursionError."""
    meta = json.loads(model_arrays["meta"].tobytes())

    @given(field=st.sampled_from([None, *sorted(meta)]), depth=st.integers(1, 200_000) | st.integers(1, 40),
           opening=st.sampled_from(['[', '{"a":']))
    def body(field, depth, opening):
        closing = "]" if opening == "[" else "}"
        deep = opening * depth + "0" + closing * depth
        text = deep if field is None else json.dumps({**meta, field: None}).replace(f'"{field}": null',
                                                                                    f'"{field}": {deep}')
        _saved_with_meta(scratch, model_arrays, text.encode())
        assert_reads_or_one_line_error(read_and_build, scratch)

    body()


# -- the guard against hangs ------------------------------------------------------------------------

def test_a_reader_that_hangs_fails_its_test_instead_of_stalling(scratch, monkeypatch):
    monkeypatch.setattr("test_fuzz.READ_DEADLINE", 0.2)
    scratch.write_bytes(b"the cat")

    def never_ends(path):
        while True:
            pass

    with pytest.raises(pytest.fail.Exception, match=r"reading .*input \(b'the cat'\.\.\.\) did not end within 0.2 s"):
        assert_reads_or_one_line_error(never_ends, scratch)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # nothing left to go off later
