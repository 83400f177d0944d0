"""Corpora by manifest: find, download and verify the text files a recipe trains on.

Each corpus has a manifest, `corpora/NAME/manifest.toml`: its title, canonical download
location, licence and citation, and for every file its name, a download URL, the sha256 of
its text (uncompressed) and its size in bytes, lines and whitespace-separated words.
`fetch` takes each file from a local directory (`--from DIR`, or $RWTHLM_CORPORA) where one
is given, else downloads it, verifies it, and writes it to DEST under its manifest name
(gzip-compressed where that name ends in .gz, whatever the source was). Nothing is
written for a file that fails verification, and a file already in DEST that verifies is
left as it is. Verification always reads the whole text: the checksum and the counts of
the bytes about to be used, not of some earlier copy.
"""

import dataclasses
import gzip
import hashlib
import os
import pathlib
import shutil
import tempfile
import tomllib
import urllib.error
import urllib.request

from rwthlm_py.errors import InputError
from rwthlm_py.text.textio import atomic_output, open_binary

_PACKAGE = pathlib.Path(__file__).resolve().parents[1]  # rwthlm_py/
_INSTALLED_MANIFESTS = _PACKAGE / "corpus_manifests"  # in a wheel install
MANIFEST_DIR = (_INSTALLED_MANIFESTS if _INSTALLED_MANIFESTS.is_dir()
                else _PACKAGE.parent / "corpora")  # in the source tree
SOURCE_ENVIRONMENT = "RWTHLM_CORPORA"
CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class CorpusFile:
    name: str
    url: str
    sha256: str
    bytes: int
    lines: int
    words: int
    split: str = None
    gzip_sha256: str = None


@dataclasses.dataclass(frozen=True)
class Manifest:
    name: str
    title: str
    folders: tuple
    canonical: str
    licence: str
    citation: str
    files: tuple
    notes: str = ""
    path: str = None

    def file(self, split):
        """The file of a split (train, valid, test)."""
        for corpus_file in self.files:
            if corpus_file.split == split:
                return corpus_file
        raise KeyError(split)


def available():
    """The names of the corpora with a manifest in corpora/."""
    if not MANIFEST_DIR.is_dir():
        return []
    return sorted(path.parent.name for path in MANIFEST_DIR.glob("*/manifest.toml"))


def load_manifest(name_or_path):
    """The manifest of corpus NAME (corpora/NAME/manifest.toml), or of a manifest file."""
    path = pathlib.Path(name_or_path)
    if not path.suffix == ".toml":
        path = MANIFEST_DIR / name_or_path / "manifest.toml"
        if not path.is_file():
            known = ", ".join(available()) or f"none: {MANIFEST_DIR} is missing"
            raise InputError(f"unknown corpus '{name_or_path}' (known: {known})")
    try:
        with open(path, "rb") as handle:
            fields = tomllib.load(handle)
    except FileNotFoundError:
        raise InputError("no such manifest file", path) from None
    except UnicodeDecodeError as error:
        raise InputError(f"not a valid manifest: not UTF-8 text (byte {error.start + 1})", path) from None
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"not a valid manifest: {error}", path) from None
    try:
        files = tuple(_typed(CorpusFile, entry) for entry in fields.pop("files"))
        folders = fields.pop("folders")
        if not isinstance(folders, list) or not all(isinstance(folder, str) for folder in folders):
            raise TypeError("folders must be a list of names")
        return _typed(Manifest, dict(fields, files=files, folders=tuple(folders), path=str(path)))
    except (KeyError, TypeError) as error:
        raise InputError(f"not a valid manifest: {error}", path) from None


def _typed(kind, entry):
    """kind(**entry), each field of the type it is declared with (None where it defaults to None)."""
    if not isinstance(entry, dict):
        raise TypeError(f"expected a table of {kind.__name__} fields, not {entry!r:.40}")
    value = kind(**entry)
    for field in dataclasses.fields(kind):
        given = getattr(value, field.name)
        if given is None and field.default is None:
            continue
        if not isinstance(given, field.type) or isinstance(given, bool):
            raise TypeError(f"{field.name} must be a {field.type.__name__}, not {given!r:.40}")
    return value


@dataclasses.dataclass(frozen=True)
class Verified:
    """What verification found: the text's sha256 and counts."""

    sha256: str
    bytes: int
    lines: int
    words: int


def measure(path):
    """sha256, bytes, lines and whitespace-separated words of a file's text (gunzipped)."""
    digest, size, lines, words = hashlib.sha256(), 0, 0, 0
    inside_word = False
    try:
        with open_binary(path) as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                lines += chunk.count(b"\n")
                # words are runs of non-whitespace; a run may cross a chunk boundary
                pieces = chunk.split()
                words += len(pieces)
                if pieces and inside_word and not chunk[:1].isspace():
                    words -= 1
                inside_word = not chunk[-1:].isspace()
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise InputError(f"cannot read: {error}", path) from None
    return Verified(digest.hexdigest(), size, lines, words)


def verify(path, expected, origin):
    """Raises InputError unless the file's text is what the manifest entry says."""
    found = measure(path)
    if found.sha256 != expected.sha256:
        raise InputError(f"sha256 of the text is {found.sha256}, the manifest says {expected.sha256} "
                         f"({found.bytes:,} bytes, {found.lines:,} lines; expected {expected.bytes:,} "
                         f"and {expected.lines:,}): this is not {expected.name} from {origin}", path)
    for field in ("bytes", "lines", "words"):
        if getattr(found, field) != getattr(expected, field):
            raise InputError(f"{getattr(found, field):,} {field}, the manifest says "
                             f"{getattr(expected, field):,}", path)
    return found


def fetch(manifest, dest, source_dir=None, console=None, download=None):
    """Puts every file of the corpus, verified, into dest (created); returns dest.

    source_dir: a directory with the files, directly or in one of the manifest's folder
    names; without one, files are downloaded from their URLs (download(url, path) does it,
    urllib by default).
    """
    dest = pathlib.Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for corpus_file in manifest.files:
        target = dest / corpus_file.name
        if target.exists() and _verifies(target, corpus_file):
            _say(console, f"{manifest.name}: {corpus_file.name} is already in {dest}, verified")
            continue
        if source_dir is not None:
            source = find_source(manifest, corpus_file, pathlib.Path(source_dir))
            verified = verify(source, corpus_file, source)
            _store(source, target)
            origin = source
        else:
            with tempfile.TemporaryDirectory(dir=dest) as scratch:
                source = pathlib.Path(scratch) / corpus_file.name
                _say(console, f"{manifest.name}: downloading {corpus_file.url}")
                (download or download_url)(corpus_file.url, source)
                verified = verify(source, corpus_file, corpus_file.url)
                _store(source, target)
            origin = corpus_file.url
        _say(console, f"{manifest.name}: {corpus_file.name} from {origin}: sha256 verified, "
                      f"{verified.lines:,} lines, {verified.words:,} words")
    return dest


def _verifies(path, corpus_file):
    try:
        verify(path, corpus_file, path)
    except InputError:
        return False
    return True


def find_source(manifest, corpus_file, source_dir):
    """corpus_file in source_dir, directly or in a folder of the manifest, .gz or not."""
    if not source_dir.is_dir():
        raise InputError("no such directory (the corpora to take the files from)", source_dir)
    names = [corpus_file.name]
    if corpus_file.name.endswith(".gz"):
        names.append(corpus_file.name[:-3])
    folders = [source_dir] + [source_dir / folder for folder in manifest.folders]
    for folder in folders:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    places = " or ".join(str(folder) for folder in folders[:2])
    raise InputError(f"missing {corpus_file.name} of {manifest.name}: put it (or its uncompressed "
                     f"{names[-1]}, sha256 of the text {corpus_file.sha256[:16]}...) into {places}; "
                     f"it can be downloaded from {corpus_file.url}")


def _store(source, target):
    """Writes source's text to target, compressed where target's name ends in .gz."""
    with open_binary(source) as text, atomic_output(target, binary=True) as out:
        shutil.copyfileobj(text, out, CHUNK)


def download_url(url, path):
    """Downloads url to path; a failure is an InputError naming the URL."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(path, "wb") as out:
            shutil.copyfileobj(response, out, CHUNK)
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise InputError(f"cannot download {url}: {reason}; take the files from a directory "
                         f"with --from DIR (or ${SOURCE_ENVIRONMENT}) instead") from None


def default_source():
    """The directory named by $RWTHLM_CORPORA, or None."""
    value = os.environ.get(SOURCE_ENVIRONMENT)
    return pathlib.Path(value) if value else None


def _say(console, line):
    if console is not None:
        console.say(line)
