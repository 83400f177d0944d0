"""Atomic writes leave either the old file or the new one, never a part of the new one."""

import gzip
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rwthlm_py.errors import InputError
from rwthlm_py.text import textio
from rwthlm_py.text.textio import (
    atomic_directory,
    atomic_output,
    check_encoding,
    read_all_lines,
    read_lines,
    split_words,
)


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


# read_all_lines gives what read_lines gives, read at once: for these files, in each encoding
ALL_AT_ONCE = [b"", b"\n", b"a", b"a\n", b"a\n\n", b"\n\nb", b"a\r\nb\r\n", b"a\r\r\nb\r", b"a\rb\n\r",
               "\ufeffa b\n\ufeffc\n".encode(), "ca\u00f1a \u4e2d\n".encode(), b"x\xf1o\ny\n", b"\x81\n",
               "\u4e2d\u6587\n".encode("gb18030"), b"a\x00b\x1c\n"]


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1", "cp1252", "ascii", "gb18030"])
@pytest.mark.parametrize("data", ALL_AT_ONCE)
@pytest.mark.parametrize("compress", [False, True])
def test_all_lines_at_once_are_the_lines_read_one_by_one(tmp_path, data, encoding, compress):
    path = tmp_path / "x.txt"
    path.write_bytes(gzip.compress(data) if compress else data)
    try:
        expected = [text for _, text in read_lines(path, encoding)]
    except InputError:
        assert read_all_lines(path, encoding) is None  # read_lines then says where, as it reads
        return
    assert read_all_lines(path, encoding) == expected


PIECES = [b"a", b" ", b"\n", b"\r", b"\xc3", b"\xb1", b"\xef\xbb\xbf", b"\xff", b"\x00"]


@given(data=st.binary(max_size=60) | st.lists(st.sampled_from(PIECES), max_size=30).map(b"".join),
       encoding=st.sampled_from(["utf-8", "latin-1", "cp1252", "ascii", "gb18030", "shift_jis"]))
def test_all_lines_at_once_are_the_lines_read_one_by_one_whatever_the_bytes(tmp_path, data, encoding):
    path = tmp_path / "x.txt"
    path.write_bytes(data)
    try:
        expected = [text for _, text in read_lines(path, encoding)]
    except InputError:
        expected = None
    assert read_all_lines(path, encoding) == expected


def test_all_lines_at_once_are_none_where_reading_fails_part_way(tmp_path):
    """A corrupt gzip stream, or standard input (which cannot be read twice): the reader
    reads line by line, and meets the lines before the problem first."""
    path = tmp_path / "x.txt.gz"
    path.write_bytes(gzip.compress(b"a\nb\n" * 1000)[:-20])
    with pytest.raises(InputError, match="cannot read past this line"):
        list(read_lines(path))
    assert read_all_lines(path) is None
    assert read_all_lines("-") is None
    with pytest.raises(InputError, match="no such file"):
        read_all_lines(tmp_path / "missing.txt")


def test_a_results_folder_made_meanwhile_by_another_job_gets_the_files_moved_in(tmp_path, monkeypatch):
    """Jobs of one split run write into one --out directory: a job that found none and
    then finds it made by another job (its rename fails) moves its files in one by one."""
    target = tmp_path / "out"
    target.mkdir()
    (target / "theirs").write_text("another job's\n")
    real_exists = os.path.exists
    monkeypatch.setattr(textio.os.path, "exists", lambda path: False if path == str(target) else real_exists(path))
    with atomic_directory(target) as staging:
        with open(os.path.join(staging, "mine"), "w") as handle:
            handle.write("this job's\n")
    monkeypatch.undo()
    assert sorted(os.listdir(target)) == ["mine", "theirs"]
    assert (target / "mine").read_text() == "this job's\n" and (target / "theirs").read_text() == "another job's\n"
    assert os.listdir(tmp_path) == ["out"]  # the temporary folder is gone
