"""Corpora: fetching and verifying by manifest, and reading the real text from
../shared/corpora (skipped, saying why, where it is absent)."""

import gzip
import hashlib

import pytest
from conftest import assert_one_line_error, corpus_file
from test_cli import RWTHLM_PY, call

from rwthlm_py.errors import InputError
from rwthlm_py.text import corpora, data
from rwthlm_py.text.vocabulary import count_words, vocabulary_from_counts


@pytest.mark.corpus
def test_ptb_counts_match_its_source_description():
    train = corpus_file("ptb", "ptb.train.txt.gz")
    counts, lines = count_words(train)
    vocab = vocabulary_from_counts(counts)
    assert lines == 42068
    assert len(vocab) == 10000  # 9,999 word types plus <sb>
    corpus = data.read_corpus(train, vocab)
    assert len(corpus.stream) == 929589
    valid = data.read_corpus(corpus_file("ptb", "ptb.valid.txt.gz"), vocab)
    assert len(valid.stream) == 73760 and valid.unk_count == 0


# -- fetching and verifying by manifest ---------------------------------------------------

TEXTS = {"tiny.train.txt.gz": b" the cat sat \n on the mat \n", "tiny.valid.txt": b"a dog\r\nbarks\r\n"}


def write_manifest(directory, texts=TEXTS, url_base=None):
    """A manifest for `texts` (name -> bytes) in directory/tiny/manifest.toml."""
    lines = ['name = "tiny"', 'title = "a tiny test corpus"', 'folders = ["tiny-folder"]',
             'canonical = "nowhere"', 'licence = "public domain"', 'citation = "none"']
    for name, text in texts.items():
        url = f"{url_base}/{name}" if url_base else f"https://example.invalid/{name}"
        line_count = text.count(b"\n")
        lines += ["[[files]]", f'name = "{name}"', f'url = "{url}"', f'sha256 = "{hashlib.sha256(text).hexdigest()}"',
                  f"bytes = {len(text)}", f"lines = {line_count}", f"words = {len(text.split())}"]
    path = directory / "tiny" / "manifest.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return corpora.load_manifest(path)


def put_sources(directory, texts=TEXTS, compress=()):
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        plain = name[:-3] if name.endswith(".gz") else name
        if name in compress:
            (directory / name).write_bytes(gzip.compress(text))
        else:
            (directory / plain).write_bytes(text)


def stored_texts(dest):
    """name -> text of what fetch stored (gzip-compressed where the name ends in .gz)."""
    stored = {}
    for path in sorted(dest.iterdir()):
        data_bytes = path.read_bytes()
        stored[path.name] = gzip.decompress(data_bytes) if path.name.endswith(".gz") else data_bytes
        assert data_bytes[:2] == b"\x1f\x8b" if path.name.endswith(".gz") else data_bytes[:2] != b"\x1f\x8b"
    return stored


def test_fetch_from_a_directory_verifies_and_stores_gzip(tmp_path):
    manifest = write_manifest(tmp_path)
    put_sources(tmp_path / "src" / "tiny-folder", compress={"tiny.train.txt.gz"})
    dest = corpora.fetch(manifest, tmp_path / "data" / "tiny", tmp_path / "src")
    assert stored_texts(dest) == TEXTS


def test_fetch_downloads_when_no_directory_is_given(tmp_path):
    put_sources(tmp_path / "server")
    manifest = write_manifest(tmp_path, url_base=(tmp_path / "server").as_uri())
    # file:// URLs go through the same urllib download as https://; the plain files stand
    # in for both the .gz and the uncompressed names
    (tmp_path / "server" / "tiny.train.txt.gz").write_bytes(gzip.compress(TEXTS["tiny.train.txt.gz"]))
    dest = corpora.fetch(manifest, tmp_path / "data", None)
    assert stored_texts(dest) == TEXTS


def test_a_changed_byte_is_refused_and_nothing_is_written(tmp_path):
    manifest = write_manifest(tmp_path)
    changed = dict(TEXTS, **{"tiny.valid.txt": b"a dog\r\nbarkz\r\n"})
    put_sources(tmp_path / "src", changed)
    with pytest.raises(InputError, match=r"tiny\.valid\.txt: sha256 of the text is .* this is not tiny.valid.txt"):
        corpora.fetch(manifest, tmp_path / "data", tmp_path / "src")
    assert sorted(path.name for path in (tmp_path / "data").iterdir()) == ["tiny.train.txt.gz"]


def test_a_missing_file_says_what_to_put_where(tmp_path):
    manifest = write_manifest(tmp_path)
    put_sources(tmp_path / "src", {"tiny.train.txt.gz": TEXTS["tiny.train.txt.gz"]})
    with pytest.raises(InputError, match=r"missing tiny\.valid\.txt of tiny: put it .* into .*src or .*tiny-folder"):
        corpora.fetch(manifest, tmp_path / "data", tmp_path / "src")


def test_a_verified_file_in_place_is_kept(tmp_path):
    manifest = write_manifest(tmp_path)
    put_sources(tmp_path / "src")
    dest = corpora.fetch(manifest, tmp_path / "data", tmp_path / "src")
    before = {path.name: path.stat().st_mtime_ns for path in dest.iterdir()}
    corpora.fetch(manifest, dest, tmp_path / "nowhere")  # would fail if it looked for sources
    assert {path.name: path.stat().st_mtime_ns for path in dest.iterdir()} == before


def test_word_counts_do_not_depend_on_chunk_boundaries(tmp_path, monkeypatch):
    text = b"alpha  beta\tgamma\n delta epsilon\n\nzeta"
    path = tmp_path / "t.txt"
    path.write_bytes(text)
    for chunk in (1, 2, 3, 5, 7, 1 << 20):
        monkeypatch.setattr(corpora, "CHUNK", chunk)
        assert corpora.measure(path).words == 6


def test_every_manifest_loads_with_licence_citation_and_splits():
    names = corpora.available()
    assert names == ["gutenberg", "ptb", "wikitext2"]
    for name in names:
        manifest = corpora.load_manifest(name)
        assert manifest.licence and manifest.citation and manifest.canonical
        assert all(len(f.sha256) == 64 and f.url.startswith("https://") for f in manifest.files)
    for name in ("ptb", "wikitext2"):
        assert {corpora.load_manifest(name).file(split).split for split in ("train", "valid", "test")} == \
               {"train", "valid", "test"}


@pytest.mark.corpus
@pytest.mark.parametrize("name", ["ptb", "wikitext2", "gutenberg"])
def test_the_shared_corpora_match_their_manifests(tmp_path, name):
    manifest = corpora.load_manifest(name)
    source = corpus_file(manifest.folders[0]).parent
    dest = corpora.fetch(manifest, tmp_path / name, source)
    assert sorted(path.name for path in dest.iterdir()) == sorted(f.name for f in manifest.files)


def test_corpora_command_line_errors(tmp_path):
    assert_one_line_error(call(RWTHLM_PY, "corpora", "fetch", "nosuch", cwd=tmp_path), "rwthlm-py",
                          "unknown corpus 'nosuch'", "ptb")
    assert_one_line_error(call(RWTHLM_PY, "corpora", "fetch", "ptb", "--from", tmp_path / "empty", cwd=tmp_path),
                          "rwthlm-py", "no such directory")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(call(RWTHLM_PY, "corpora", "fetch", "ptb", "--from", tmp_path / "empty", cwd=tmp_path),
                          "rwthlm-py", "missing ptb.test.txt.gz of ptb: put it")
    assert not any((tmp_path / "data").rglob("*.gz"))
    status, out, _ = call(RWTHLM_PY, "corpora", "list", cwd=tmp_path)
    assert status == 0 and "CC BY-SA 3.0" in out
