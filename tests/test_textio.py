"""Atomic writes leave either the old file or the new one, never a part of the new one."""

import gzip
import os

import pytest

from rwthlm_py.errors import InputError
from rwthlm_py.text.textio import atomic_output, check_encoding, read_lines, split_words


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_output(path) as handle:
            handle.write("new, half written")
            raise RuntimeError("killed")
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_gzip_output_and_permissions(tmp_path):
    path = tmp_path / "out.txt.gz"
    with atomic_output(path) as handle:
        handle.write("a b\n")
    assert gzip.decompress(path.read_bytes()) == b"a b\n"
    assert [text for _, text in read_lines(path)] == ["a b"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # as any new file, not mkstemp's 0600


def test_unwritable_directory(tmp_path):
    with pytest.raises(InputError, match="cannot write"):
        with atomic_output(tmp_path / "missing-dir" / "file"):
            pass


def test_crlf_lines_and_splitting():
    assert split_words(" a\tb  c\r") == ["a", "b", "c"]
    assert split_words("x\u00a0y z") == ["x\u00a0y", "z"]


def test_a_byte_order_mark_is_skipped_and_a_carriage_return_is_whitespace(tmp_path):
    """As SRILM, rwthlm and Kaldi read it: a CR inside a line separates words."""
    (tmp_path / "bom.txt").write_bytes("\ufeffthe cat\nthe\ufeffdog\n".encode())
    assert [text for _, text in read_lines(tmp_path / "bom.txt")] == ["the cat", "the\ufeffdog"]
    (tmp_path / "cr.txt").write_bytes(b"the cat\rsat\r\nthe dog\n")
    lines = list(read_lines(tmp_path / "cr.txt"))
    assert [split_words(text) for _, text in lines] == [["the", "cat", "sat"], ["the", "dog"]]


def test_other_encodings(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("a\u00f1o\n".encode("latin-1"))
    assert [text for _, text in read_lines(tmp_path / "latin1.txt", "latin-1")] == ["a\u00f1o"]
    with pytest.raises(InputError, match=r"latin1.txt:1: not UTF-8 text \(byte 0xf1 at column 2\) \(--encoding"):
        list(read_lines(tmp_path / "latin1.txt"))
    (tmp_path / "bad.txt").write_bytes(b"ok\n\x81x\n")  # 0x81 is no character of cp1252
    with pytest.raises(InputError, match=r"bad.txt:2: not cp1252 text \(byte 0x81 at column 1\)"):
        list(read_lines(tmp_path / "bad.txt", "cp1252"))
    assert check_encoding("Latin-1") == "iso8859-1" and check_encoding("UTF8") == "utf-8"
    for name, message in (("klingon", "no such encoding"), ("utf-16", "ASCII"), ("rot13", "not a text encoding")):
        with pytest.raises(InputError, match=message):
            check_encoding(name)
    with atomic_output(tmp_path / "out.txt", encoding="latin-1") as handle:
        handle.write("a\u00f1o\n")
    assert (tmp_path / "out.txt").read_bytes() == b"a\xf1o\n"


def test_words_split_at_c_whitespace_only_whatever_else_the_line_holds():
    for line in ("a\x1cb c", "a\x1cb c \u00e9"):  # an ASCII line and one that is not
        assert split_words(line)[0] == "a\x1cb"


def test_an_error_shows_invisible_characters_escaped():
    error = InputError("unknown word '\ufeffthe' and '\u200b'", "x.txt", 3)
    assert str(error) == "x.txt:3: unknown word '\\ufeffthe' and '\\u200b'"
    assert str(InputError("unknown word 'caf\u00e9'")) == "unknown word 'caf\u00e9'"
