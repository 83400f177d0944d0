import gzip

import numpy
import pytest

from rwthlm_py.errors import InputError
from rwthlm_py.text.clustering import frequency_classes
from rwthlm_py.text.vocabulary import count_words, read_vocabulary, remap, vocabulary_from_counts


def write(path, text):
    path.write_text(text)
    return path


def test_one_column_file_gives_every_word_its_own_class(tmp_path):
    vocab = read_vocabulary(write(tmp_path / "v", "a\nb\nc\n"))
    assert vocab.words == ["a", "b", "c", "<sb>"]
    assert vocab.num_classes == 4 and vocab.shortlist_size == 4


def test_remapping_orders_by_class_size_then_class_id_then_line(tmp_path):
    # classes: 7 -> {x, y, z}, 3 -> {p, q}, 9 -> {s}, 1 -> {t}; <sb> gets class 10
    vocab = read_vocabulary(write(tmp_path / "v", "x 7\np 3\ns 9\ny 7\nq 3\nt 1\nz 7\n"))
    assert vocab.words == ["t", "s", "<sb>", "p", "q", "x", "y", "z"]
    assert vocab.word_class.tolist() == [0, 1, 2, 3, 3, 4, 4, 4]
    assert vocab.shortlist_size == 3
    assert vocab.class_start.tolist() == [0, 1, 2, 3, 5]
    assert vocab.class_size.tolist() == [1, 1, 1, 2, 3]


def test_existing_sentence_boundary_is_not_added_twice(tmp_path):
    vocab = read_vocabulary(write(tmp_path / "v", "a 1\n<sb> 5\nb 1\n"))
    assert sorted(vocab.words) == ["<sb>", "a", "b"]
    assert vocab.sb == vocab.index["<sb>"]


def test_gzip_vocabulary(tmp_path):
    path = tmp_path / "v.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("a\nb\n")
    assert read_vocabulary(path).words == ["a", "b", "<sb>"]


def test_write_is_rwthlms_format_with_a_final_newline(tmp_path):
    vocab = read_vocabulary(write(tmp_path / "v", "x 7\np 3\ny 7\n"))
    vocab.write(tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == b"p\t0\n<sb>\t1\nx\t2\ny\t2\n"
    assert read_vocabulary(tmp_path / "out").fingerprint() == vocab.fingerprint()
    (tmp_path / "rwthlms").write_bytes(b"p\t0\n<sb>\t1\nx\t2\ny\t2")  # as rwthlm writes it: read alike
    assert read_vocabulary(tmp_path / "rwthlms").fingerprint() == vocab.fingerprint()


@pytest.mark.parametrize("text, message, line", [
    ("a\nb\na\n", "duplicate word 'a' \\(first on line 1\\)", 3),
    ("a 1\nb 2 3\n", "malformed vocabulary entry", 2),
    ("a 1\nb x\n", "class 'x' is not an integer", 2),
    ("a 1\nb -2\n", "negative", 2),
    ("a 1\nb\n", "some entries have a class column", 2),
])
def test_malformed_vocabulary_names_file_and_line(tmp_path, text, message, line):
    path = write(tmp_path / "v", text)
    with pytest.raises(InputError, match=message) as error:
        read_vocabulary(path)
    assert str(error.value).startswith(f"{path}:{line}: ")


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(InputError, match="no entries"):
        read_vocabulary(write(tmp_path / "v", "\n \n"))
    with pytest.raises(InputError, match="no such file"):
        read_vocabulary(tmp_path / "missing")


def test_unk_must_be_in_the_vocabulary(tmp_path):
    vocab = read_vocabulary(write(tmp_path / "v", "a\n<unk>\n"))
    assert vocab.with_unk("<unk>").unk == vocab.index["<unk>"]
    with pytest.raises(InputError, match="no '<UNK>'"):
        vocab.with_unk("<UNK>")


def test_vocabulary_from_training_text_in_first_occurrence_order(tmp_path):
    counts, lines = count_words(write(tmp_path / "t", "b a\n\na c b\n"))
    assert counts == {"b": 2, "a": 2, "c": 1} and lines == 3
    vocab = vocabulary_from_counts(counts)
    assert vocab.words == ["b", "a", "c", "<sb>"]
    assert vocab.num_classes == 4


def test_frequency_binning_gives_frequent_words_their_own_class():
    counts = {"the": 50, "a": 30, "x": 5, "y": 5, "z": 4, "w": 3, "v": 2, "u": 1}
    classes = frequency_classes(counts, 4, sentences=0)
    assert classes["the"] != classes["a"]
    assert classes["the"] == 0
    assert classes["u"] == classes["v"] == max(classes.values())
    assert sorted(set(classes.values())) == list(range(max(classes.values()) + 1))
    vocab = vocabulary_from_counts(counts, classes=classes)
    assert vocab.num_classes == len(set(classes.values()))


def test_class_layout_is_checked():
    with pytest.raises(ValueError):
        from rwthlm_py.text.vocabulary import Vocabulary
        Vocabulary(["a", "b", "<sb>"], [1, 0, 2])
    vocab = remap([("a", 0), ("b", 0), ("c", 1)], "<sb>")
    assert numpy.array_equal(vocab.word_class, [0, 1, 2, 2])
