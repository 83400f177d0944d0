"""Reading text files (plain or gzip, strict UTF-8; `-` is standard input) and writing
files atomically.

Readers report problems as `InputError` naming the file and line. Writers never leave a
half-written file behind: they write to a temporary file in the target's directory and
rename it over the target only when everything was written.
"""

import contextlib
import gzip
import io
import os
import sys
import tempfile

from rwthlm_py.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
STDIN = "-"


def open_binary(path):
    """Opens `path` for reading bytes, decompressing gzip whatever the file name says;
    `-` is standard input (SRILM's and Kaldi's convention), which stays open afterwards."""
    try:
        handle = os.fdopen(os.dup(sys.stdin.fileno()), "rb") if str(path) == STDIN else open(path, "rb")
    except FileNotFoundError:
        raise InputError("no such file", path) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a file", path) from None
    except OSError as error:
        raise InputError(f"cannot open: {error.strerror}", path) from None
    if handle.peek(2)[:2] == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=handle, mode="rb")
    return handle


def read_lines(path):
    """Yields (line_number, text) for every line of a UTF-8 text file, without the newline.

    Raises `InputError` for a missing file, a corrupt gzip stream or bytes that are not UTF-8.
    """
    line_number = 0
    try:
        with open_binary(path) as handle:
            for line_number, raw in enumerate(handle, start=1):
                text = decode_line(raw, path, line_number)
                if line_number == 1 and text.startswith(BYTE_ORDER_MARK):
                    text = text[1:]  # a UTF-8 byte-order mark is no part of the first word
                yield line_number, text
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise InputError(f"cannot read past this line: {error}", path, line_number) from None


def decode_line(raw, path, line_number):
    """Decodes one raw line as strict UTF-8 and strips its line ending (\n or \r\n; a
    carriage return elsewhere means old Mac line endings, which are refused)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        byte = raw[error.start]
        raise InputError(
            f"not UTF-8 text (byte 0x{byte:02x} at column {error.start + 1})", path, line_number
        ) from None
    text = text.rstrip("\r\n")
    if "\r" in text:
        raise InputError("a carriage return inside a line: lines must end in \\n or \\r\\n (not \\r alone)",
                         path, line_number)
    return text


BYTE_ORDER_MARK = "\ufeff"
ASCII_WHITESPACE = " \t\n\r\x0b\x0c"
_ASCII_SPLIT = str.maketrans({character: " " for character in ASCII_WHITESPACE[1:]})
_NOT_WHITESPACE_TO_C = "\x1c\x1d\x1e\x1f"  # str.split splits at these; C's isspace does not


def split_words(text):
    """Splits a line at ASCII whitespace only (C's isspace), as rwthlm does: a no-break
    space, or the separators \x1c to \x1f, are part of a word."""
    if text.isascii() and not any(character in text for character in _NOT_WHITESPACE_TO_C):
        return text.split()
    return [word for word in text.translate(_ASCII_SPLIT).split(" ") if word]


@contextlib.contextmanager
def atomic_output(path, binary=False):
    """Context manager giving a writable handle whose content replaces `path` on success.

    A name ending in `.gz` is gzip-compressed. On an exception the temporary file is removed
    and `path` keeps its previous content.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        descriptor, temporary = tempfile.mkstemp(
            prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory
        )
    except OSError as error:
        raise InputError(f"cannot write: {error.strerror}", path) from None
    try:
        os.chmod(temporary, 0o666 & ~_current_umask())
        with os.fdopen(descriptor, "wb") as raw:
            with _compressed(raw, path) as stream:
                if binary:
                    yield stream
                else:
                    text = io.TextIOWrapper(stream, encoding="utf-8", newline="\n")
                    yield text
                    text.flush()
                    text.detach()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _compressed(raw, path):
    """A gzip writer over `raw` for names ending in `.gz`, else `raw` itself."""
    if path.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="wb", mtime=0)
    return contextlib.nullcontext(raw)


def _current_umask():
    """The process umask (mkstemp creates files readable by the owner only)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
