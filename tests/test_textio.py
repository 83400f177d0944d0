"""Atomic writes leave either the old file or the new one, never a part of the new one."""

import gzip
import os

import pytest

from rwthlm_py.errors import InputError
from rwthlm_py.textio import atomic_output, read_lines, split_words


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


def test_a_byte_order_mark_is_skipped_and_cr_only_lines_are_refused(tmp_path):
    (tmp_path / "bom.txt").write_bytes("\ufeffthe cat\nthe\ufeffdog\n".encode())
    assert [text for _, text in read_lines(tmp_path / "bom.txt")] == ["the cat", "the\ufeffdog"]
    (tmp_path / "mac.txt").write_bytes(b"the cat\rthe dog\r")
    with pytest.raises(InputError, match="carriage return inside a line") as raised:
        list(read_lines(tmp_path / "mac.txt"))
    assert raised.value.line == 1


def test_words_split_at_c_whitespace_only_whatever_else_the_line_holds():
    for line in ("a\x1cb c", "a\x1cb c \u00e9"):  # an ASCII line and one that is not
        assert split_words(line)[0] == "a\x1cb"


def test_an_error_shows_invisible_characters_escaped():
    error = InputError("unknown word '\ufeffthe' and '\u200b'", "x.txt", 3)
    assert str(error) == "x.txt:3: unknown word '\\ufeffthe' and '\\u200b'"
    assert str(InputError("unknown word 'caf\u00e9'")) == "unknown word 'caf\u00e9'"
