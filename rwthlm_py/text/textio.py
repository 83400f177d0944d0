"""Reading text files (plain or gzip, strictly decoded in one character encoding; `-` is
standard input) and writing files and folders atomically.

Text is UTF-8 unless `--encoding` names another encoding; SRILM and rwthlm read bytes, so
files in Latin-1 or other older encodings are common. An encoding must be ASCII-compatible
(a newline, a space and a tab are those bytes), since lines are split at b"\n" before they
are decoded; UTF-16 and UTF-32 are refused. A carriage return is whitespace, as for
SRILM, rwthlm and Kaldi (a CRLF line ending is stripped; a CR inside a line separates words).

Readers report problems as `InputError` naming the file and line. Writers report a failed
write (a full disk, a quota, an I/O error) as `WriteError` naming the file, and never leave a
half-written result behind: a file is written to a temporary file in the target's directory
and renamed over the target only when everything was written; a folder of results is
written into a temporary folder beside the target and moved there at the end (its writer
locks it meanwhile, so that the next run can remove those that killed runs left); a log or
event file, written as the run goes, holds whole lines or records only.
"""

import codecs
import contextlib
import gzip
import io
import os
import shutil
import sys
import tempfile

from rwthlm_py.errors import InputError, WriteError
from rwthlm_py.output.folder_lock import make_locked_folder, remove_unowned_folders

GZIP_MAGIC = b"\x1f\x8b"
STDIN = "-"
DEFAULT_ENCODING = "utf-8"
_ASCII_PROBE = "\t\n\r <sb> az AZ 09 -_.()[]=\"#"


def check_encoding(name):
    """The canonical name of the text encoding `name`; an InputError for an unknown one, a
    non-text codec or one that is not ASCII-compatible."""
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise InputError(f"--encoding {name}: no such encoding (e.g. utf-8, latin-1, cp1252, gb18030, "
                         "euc-jp)") from None
    if not getattr(info, "_is_text_encoding", True):
        raise InputError(f"--encoding {name}: not a text encoding")
    try:
        compatible = _ASCII_PROBE.encode(info.name) == _ASCII_PROBE.encode("ascii")
    except UnicodeError:
        compatible = False
    if not compatible:
        raise InputError(f"--encoding {name}: lines are split at the newline byte, so the encoding must keep "
                         "ASCII as it is (convert the file first, e.g. iconv -f UTF-16 -t UTF-8)")
    return info.name


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


def read_lines(path, encoding=DEFAULT_ENCODING):
    """Yields (line_number, text) for every line of a text file, without the line ending.

    Raises `InputError` for a missing file, a corrupt gzip stream or bytes that are not text
    in `encoding`.
    """
    line_number = 0
    try:
        with open_binary(path) as handle:
            for line_number, raw in enumerate(handle, start=1):
                text = decode_line(raw, path, line_number, encoding)
                if line_number == 1 and text.startswith(BYTE_ORDER_MARK):
                    text = text[1:]  # a UTF-8 byte-order mark is no part of the first word
                yield line_number, text
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise InputError(f"cannot read past this line: {error}", path, line_number) from None


WHOLE_TEXT_ENCODINGS = {"utf-8", "ascii", "iso8859-1", "cp1252"}  # decoded alike whole or line by line


def read_all_lines(path, encoding=DEFAULT_ENCODING):
    """Every line of a text file, as `read_lines` gives them (without their numbers), read at
    once, and decoded at once in UTF-8 and in the single-byte encodings ASCII, Latin-1 and
    cp1252 (which decode alike whole or line by line).

    Returns None where `read_lines` would fail part way (a corrupt gzip stream, bytes that
    are not text in `encoding`), so that a reader that reads as it goes meets the lines
    before that first; and for standard input, which cannot be read twice. A missing file
    is the InputError that `read_lines` raises.
    """
    if str(path) == STDIN:
        return None
    try:
        with open_binary(path) as handle:
            data = handle.read()
        if codecs.lookup(encoding).name in WHOLE_TEXT_ENCODINGS:
            text = data.decode(encoding)
            lines = text.split("\n")
            if lines[-1] == "":
                lines.pop()  # no line after the last line ending
            if "\r" in text:
                lines = [line.rstrip("\r") for line in lines]
        else:
            lines = [raw.decode(encoding).rstrip("\r\n") for raw in io.BytesIO(data)]
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError, LookupError):
        return None
    if lines and lines[0].startswith(BYTE_ORDER_MARK):
        lines[0] = lines[0][1:]
    return lines


def decode_line(raw, path, line_number, encoding=DEFAULT_ENCODING):
    """Decodes one raw line strictly and strips its line ending (\n or \r\n)."""
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as error:
        byte = raw[error.start]
        shown = "UTF-8" if codecs.lookup(encoding).name == "utf-8" else encoding
        hint = " (--encoding names the file's encoding, e.g. latin-1)" if shown == "UTF-8" else ""
        raise InputError(
            f"not {shown} text (byte 0x{byte:02x} at column {error.start + 1}){hint}", path, line_number
        ) from None
    return text.rstrip("\r\n")


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


def same_file(first, second):
    """Whether two paths name one file: the same device and inode where both exist (so also
    through symbolic and hard links), else the same path once links are resolved."""
    try:
        return os.path.samestat(os.stat(first), os.stat(second))
    except OSError:
        return os.path.realpath(first) == os.path.realpath(second)


def refuse_overwriting_inputs(outputs, inputs):
    """The one rule that no output replaces an input: `outputs` and `inputs` are (role,
    path) pairs (a role as the user named it, e.g. `--remap`); an output that is the same
    file as an input, or as an earlier output, is an InputError naming it, raised before
    anything is read or written. Standard input and output (`-`) are no files."""
    files = [(role, path) for role, path in inputs if path not in (None, STDIN)]
    for role, path in outputs:
        if path in (None, STDIN):
            continue
        for other_role, other in files:
            if same_file(path, other):
                raise InputError(f"{role} would overwrite {other_role}: they are one file; choose another name",
                                 path)
        files.append((role, path))


@contextlib.contextmanager
def atomic_output(path, binary=False, encoding=DEFAULT_ENCODING):
    """Context manager giving a writable handle whose content replaces `path` on success
    (where `path` is a symbolic link, the file it points to: the link stays a link).

    Text is written in `encoding`; a name ending in `.gz` is gzip-compressed. On an exception
    the temporary file is removed and `path` keeps its previous content; a failed write is a
    `WriteError` naming `path`.
    """
    path = os.fspath(path)
    target = link_target(path)
    directory = os.path.dirname(os.path.abspath(target))
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=temporary_prefix(target), suffix=TEMPORARY_SUFFIX,
                                                 dir=directory)
    except OSError as error:
        if not os.path.isdir(directory):
            blocking = file_in_the_way(directory)
            reason = f"'{blocking}' is a file, not a directory" if blocking else "no such directory"
            raise WriteError(f"cannot write: {reason}", path) from None
        raise write_error(error, path) from None
    try:
        os.chmod(temporary, 0o666 & ~_current_umask())
        with io.BufferedWriter(ReportingFile(descriptor, path)) as raw:
            with _compressed(raw, path) as stream:
                if binary:
                    yield stream
                else:
                    text = io.TextIOWrapper(stream, encoding=encoding, newline="\n")
                    yield text
                    text.flush()
                    text.detach()
            raw.flush()
            _fsync(raw, path)
        _replace(temporary, target, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


TEMPORARY_SUFFIX = ".tmp"


def link_target(path):
    """`path`, or where it is a symbolic link, the file it points to (at the end of a chain
    of links): the file that writing `path` replaces. A rename onto the link itself would
    turn it into a file of its own and leave the file it pointed to as it was."""
    return os.path.realpath(path) if os.path.islink(path) else path


def temporary_prefix(path):
    """The hidden prefix of the temporary files and folders written for `path`."""
    return "." + os.path.basename(os.path.normpath(path)) + "."


def open_log_file(path, binary=False):
    """`path` opened for writing as it goes (a log, an event file): every write goes to the
    file at once and lands whole, or not at all (`WholeWriteFile`), so that the file ends
    with the last complete line or record whenever the run ends; a failed write is a
    `WriteError` naming it."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    except OSError as error:
        raise write_error(error, path) from None
    raw = WholeWriteFile(descriptor, path)
    return raw if binary else io.TextIOWrapper(raw, encoding="utf-8", newline="\n", write_through=True)


class ReportingFile(io.FileIO):
    """A file descriptor opened for writing whose failed writes are `WriteError`s naming
    `shown_path` (a closed pipe stays BrokenPipeError: the reader left, nothing failed)."""

    def __init__(self, descriptor, shown_path):
        super().__init__(descriptor, "wb", closefd=True)
        self.shown_path = os.fspath(shown_path)

    def write(self, data):
        try:
            return super().write(data)
        except BrokenPipeError:
            raise
        except OSError as error:
            raise write_error(error, self.shown_path) from None


class WholeWriteFile(ReportingFile):
    """A file written in pieces (lines, records) that holds only whole ones: a write that
    fails part way (a full disk writes what fits, then fails) is cut back off the file, so
    that it still ends where the last complete piece ends."""

    def __init__(self, descriptor, shown_path):
        super().__init__(descriptor, shown_path)
        self.complete = 0  # bytes of whole pieces

    def write(self, data):
        data = memoryview(data)
        written = 0
        try:
            while written < len(data):
                count = super().write(data[written:])
                if not count:  # a regular file takes some bytes or fails; never loop for ever
                    raise WriteError("cannot write: the file took no bytes", self.shown_path)
                written += count
        except BaseException:
            self._cut_back()
            raise
        self.complete += written
        return written

    def _cut_back(self):
        with contextlib.suppress(OSError):  # shrinking needs no space; if it fails, the write's error tells
            os.ftruncate(self.fileno(), self.complete)
            os.lseek(self.fileno(), self.complete, os.SEEK_SET)


def write_error(error, path):
    """The WriteError for an OSError met while writing `path`."""
    return WriteError(f"cannot write: {error.strerror or error}", path)


def _fsync(handle, path):
    try:
        os.fsync(handle.fileno())
    except OSError as error:
        raise write_error(error, path) from None


def _replace(source, target, shown=None):
    try:
        os.replace(source, target)
    except OSError as error:
        raise write_error(error, target if shown is None else shown) from None


@contextlib.contextmanager
def atomic_directory(target, note=None):
    """Context manager giving a temporary folder beside `target` to write a set of result
    files into; on success they are moved into `target` (created if need be), so that the
    results appear complete or not at all. On an exception the temporary folder is removed
    and `target` is left as it was.

    The folder is locked while it is written (folder_lock.py), so that temporary folders of
    `target` that killed runs left behind can be told from those of runs still writing:
    the former are removed first, and `note` (if given) is told so in one line."""
    shown, target = os.fspath(target), os.path.abspath(link_target(os.fspath(target)))
    if os.path.lexists(target) and not os.path.isdir(target):  # `FILE/` too: say so before the work
        raise WriteError("cannot write the results here: is a file, not a directory", shown)
    _make_directories(os.path.dirname(target), shown)
    removed = remove_unowned_folders(os.path.dirname(target), _is_temporary_of(target))
    if removed and note is not None:
        note(f"removed {len(removed)} temporary folder(s) left by an earlier run that was killed: "
             + ", ".join(removed))
    try:
        staging, lock = make_locked_folder(os.path.dirname(target), temporary_prefix(target), TEMPORARY_SUFFIX)
    except OSError as error:
        raise write_error(error, shown) from None
    try:
        os.chmod(staging, 0o777 & ~_current_umask())
        yield staging
        if not os.path.exists(target) and _moved_into_place(staging, target):
            return
        if not os.path.isdir(target):
            raise WriteError("cannot write the results here: is a file, not a directory", shown)
        for name in sorted(os.listdir(staging)):
            _replace(os.path.join(staging, name), os.path.join(target, name))
        os.rmdir(staging)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, WriteError):
            raise _named_in_target(error, staging, shown) from None
        raise
    finally:
        os.close(lock)


def _moved_into_place(staging, target):
    """Renames the folder `staging` to `target`; False where `target` appeared meanwhile (a
    job of the same run, writing into the same directory, was first), so that the files
    are moved into it one by one instead."""
    try:
        os.rename(staging, target)
    except OSError as error:
        if os.path.isdir(target):
            return False
        raise write_error(error, target) from None
    return True


def _named_in_target(error, staging, shown):
    """The WriteError of a file in the temporary folder, naming it where it was to go."""
    if error.path is None or os.path.commonpath([os.path.abspath(error.path), staging]) != staging:
        return error
    relative = os.path.relpath(os.path.abspath(error.path), staging)
    return WriteError(error.message, os.path.join(shown, relative), error.line)


def _make_directories(path, shown):
    """Creates `path` and its parents; errors name `shown`, the target as the user gave it."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        blocking = file_in_the_way(path)
        reason = f"'{blocking}' is a file, not a directory" if blocking else error.strerror
        raise WriteError(f"cannot create the output directory: {reason}", shown) from None


def file_in_the_way(path):
    """The file that keeps the directory `path` from existing: `path` itself or the nearest
    of its parents that exists, where that is a file; None where there is none."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    return existing if os.path.isfile(existing) else None


def remove_stale_temporaries(path):
    """Removes the temporary files and folders that a killed writer of `path` left beside
    it (hidden `.NAME.XXXXXXXX.tmp`); returns their names. Call it only while holding the
    right to write `path`."""
    path = os.path.abspath(os.fspath(path))
    directory, is_temporary = os.path.dirname(path), _is_temporary_of(path)
    removed = []
    with contextlib.suppress(OSError):
        for name in os.listdir(directory):
            if is_temporary(name):
                full = os.path.join(directory, name)
                if os.path.isdir(full) and not os.path.islink(full):
                    shutil.rmtree(full, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(full)
                removed.append(name)
    return sorted(removed)


def _is_temporary_of(path):
    """Whether a file name is that of a temporary file or folder written for `path`."""
    prefix = temporary_prefix(path)
    return lambda name: name.startswith(prefix) and name.endswith(TEMPORARY_SUFFIX) and _is_temporary_name(name, prefix)


def _is_temporary_name(name, prefix):
    """tempfile's names: the prefix, 8 characters of [a-z0-9_], the suffix."""
    middle = name[len(prefix):-len(TEMPORARY_SUFFIX)]
    return len(middle) == 8 and all(character.isalnum() or character == "_" for character in middle)


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
