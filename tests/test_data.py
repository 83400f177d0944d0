"""Word wrapping, batching and reading text: the layouts of data.py's docstring, literally."""

import gzip

import numpy
import pytest

from rwthlm_py.errors import InputError
from rwthlm_py.text import data
from rwthlm_py.text.vocabulary import read_vocabulary

TEXT = "a b\nc\nd e f\n"


@pytest.fixture
def vocab(tmp_path):
    (tmp_path / "vocab").write_text("a\nb\nc\nd\ne\nf\n<unk>\n")
    return read_vocabulary(tmp_path / "vocab")


@pytest.fixture
def corpus(tmp_path, vocab):
    (tmp_path / "text").write_text(TEXT)
    return data.read_corpus(tmp_path / "text", vocab)


def spell(vocab, corpus, sequences):
    """Each sequence as 'context|targets', as in data.py's docstring (s = <sb>)."""
    name = {i: ("s" if w == "<sb>" else w) for i, w in enumerate(vocab.words)}
    context = numpy.concatenate([[corpus.sb], corpus.stream])
    return [name[context[f]] + "|" + " ".join(name[t] for t in corpus.stream[f:e])
            for f, e in zip(sequences.first, sequences.end, strict=True)]


def test_stream_has_a_boundary_after_every_line(vocab, corpus):
    assert [vocab.words[i] for i in corpus.stream] == "a b <sb> c <sb> d e f <sb>".split()
    assert corpus.line_starts.tolist() == [0, 3, 5, 9]


@pytest.mark.parametrize("mode, length, expected", [
    ("verbatim", 5, ["s|a b s", "s|c s", "s|d e f s"]),
    ("concatenated", 4, ["s|a b s", "s|c s d", "d|e f s"]),
    ("fixed", 4, ["s|a b s", "s|d e f", "s|c s", "f|s"]),
    ("stream", 4, ["s|a b s", "s|d e f", "s|c s", "f|s"]),
    ("concatenated", 6, ["s|a b s c s", "s|d e f s"]),
    ("fixed", 100, ["s|a b s c s", "s|d e f s"]),
])
def test_word_wrapping(vocab, corpus, mode, length, expected):
    assert spell(vocab, corpus, data.wrap(corpus, mode, 2, length)) == expected


def test_fixed_split_gives_the_first_parts_one_more_token(vocab, corpus):
    # N = 9, B = 4: parts of 3, 2, 2, 2 tokens
    sequences = data.wrap(corpus, "fixed", 4, 100)
    assert (sequences.end - sequences.first).tolist() == [3, 2, 2, 2]
    # N < B: empty parts disappear
    assert len(data.wrap(corpus, "fixed", 12, 100)) == 9


def test_verbatim_line_too_long_names_the_line(vocab, corpus):
    with pytest.raises(InputError, match=r"text:3: the line has 3 words.*at most 2"):
        data.wrap(corpus, "verbatim", 2, 4)


def test_debug_no_sb(tmp_path, vocab):
    (tmp_path / "text").write_text(TEXT)
    corpus = data.read_corpus(tmp_path / "text", vocab, debug_no_sb=True)
    assert [vocab.words[i] for i in corpus.stream] == "a b c d e f".split()
    # verbatim and concatenated: no context, the first word is input only
    verbatim = data.wrap(corpus, "verbatim", 1, 3, debug_no_sb=True)
    assert spell(vocab, corpus, verbatim) == ["a|b", "d|e f"]
    concatenated = data.wrap(corpus, "concatenated", 1, 3, debug_no_sb=True)
    assert spell(vocab, corpus, concatenated) == ["a|b", "c|d", "e|f"]
    # fixed: every chunk gets a context word, <sb> for the first
    fixed = data.wrap(corpus, "fixed", 1, 4, debug_no_sb=True)
    assert spell(vocab, corpus, fixed) == ["s|a b c", "c|d e f"]


def test_empty_line_is_an_empty_sentence(tmp_path, vocab):
    (tmp_path / "text").write_text("a\n\nb\n")
    corpus = data.read_corpus(tmp_path / "text", vocab)
    assert [vocab.words[i] for i in corpus.stream] == "a <sb> <sb> b <sb>".split()
    sequences = data.wrap(corpus, "verbatim", 1, 10)
    assert spell(vocab, corpus, sequences) == ["s|a s", "s|s", "s|b s"]


def test_batch_matrices_match_the_docstring(vocab, corpus):
    batch = next(data.batches(corpus, data.wrap(corpus, "fixed", 2, 4), 2))
    word = {w: i for i, w in enumerate(vocab.words)}
    s = word["<sb>"]
    assert batch.inputs.tolist() == [[s, s], [word["a"], word["d"]], [word["b"], word["e"]]]
    assert batch.targets.tolist() == [[word["a"], word["d"]], [word["b"], word["e"]], [s, word["f"]]]
    assert batch.lengths.tolist() == [3, 3]
    assert batch.positions.tolist() == [[0, 5], [1, 6], [2, 7]]


def test_padding_is_marked(vocab, corpus):
    batch = next(data.batches(corpus, data.wrap(corpus, "verbatim", 3, 10), 3))
    assert batch.lengths.tolist() == [3, 2, 4]
    assert batch.positions[:, 1].tolist() == [3, 4, -1, -1]
    assert batch.valid.tolist() == [0, 1, 2, 3, 4, 5, 6, 8, 11]
    assert batch.num_targets == 9


def test_shuffling_permutes_by_seed_epoch_and_count_only():
    sequences = data.Sequences(numpy.arange(0, 400, 10), numpy.arange(5, 405, 10))
    once = data.shuffled(sequences, 7, 3)
    assert sorted(once.first.tolist()) == sequences.first.tolist()
    assert numpy.array_equal(once.end - once.first, sequences.end - sequences.first)
    assert numpy.array_equal(once.first, data.shuffled(sequences, 7, 3).first)  # no state carried over
    permutation = [sequences.first.tolist().index(first) for first in once.first.tolist()]
    reordered = data.shuffled(sequences, 1, 1)  # another input order: the same permutation of it
    assert data.shuffled(reordered, 7, 3).first.tolist() == reordered.first[permutation].tolist()
    other_epochs = {tuple(data.shuffled(sequences, 7, epoch).first.tolist()) for epoch in range(4, 12)}
    other_seeds = {tuple(data.shuffled(sequences, seed, 3).first.tolist()) for seed in range(8, 16)}
    assert tuple(once.first.tolist()) not in other_epochs | other_seeds
    assert len(other_epochs) == len(other_seeds) == 8


def test_unknown_words(tmp_path, vocab):
    (tmp_path / "text").write_text("a b\na zz b\n")
    with pytest.raises(InputError, match=r"text:2: unknown word 'zz'.*--unk"):
        data.read_corpus(tmp_path / "text", vocab)
    corpus = data.read_corpus(tmp_path / "text", vocab.with_unk("<unk>"), use_unk=True)
    assert corpus.unk_count == 1
    assert vocab.words[corpus.stream[4]] == "<unk>"


@pytest.mark.parametrize("line, message", [
    ("<s> a b", "<s> or </s>"),
    ("a b </s>", "<s> or </s>"),
    ("a b <sb>", "ends in <sb>"),
])
def test_sentence_markers_in_text_are_errors(tmp_path, vocab, line, message):
    (tmp_path / "text").write_text(f"a\n{line}\n")
    with pytest.raises(InputError, match=f"text:2: .*{message}"):
        data.read_corpus(tmp_path / "text", vocab)


def test_non_utf8_text_names_line_and_byte(tmp_path, vocab):
    (tmp_path / "text").write_bytes(b"a b\nc \xe9 d\n")
    with pytest.raises(InputError, match=r"text:2: not UTF-8 text \(byte 0xe9 at column 3\)"):
        data.read_corpus(tmp_path / "text", vocab)


def test_gzip_text_and_ascii_whitespace(tmp_path, vocab):
    path = tmp_path / "text.gz"
    with gzip.open(path, "wb") as handle:
        handle.write("a\tb\r\nc\u00a0d e\n".encode())
    vocab2 = vocab.with_unk("<unk>")
    corpus = data.read_corpus(path, vocab2, use_unk=True)
    # a no-break space is part of a word, so 'c\u00a0d' is one (unknown) word
    assert [vocab.words[i] for i in corpus.stream] == "a b <sb> <unk> e <sb>".split()


def test_truncated_gzip_is_an_error(tmp_path, vocab):
    path = tmp_path / "text.gz"
    rng = numpy.random.default_rng(0)
    text = "\n".join(" ".join(rng.choice(list("abcdef"), size=8)) for _ in range(2000)) + "\n"
    compressed = gzip.compress(text.encode())
    path.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(InputError, match="text.gz"):
        data.read_corpus(path, vocab)


def test_time_slices_cover_every_target(vocab, corpus):
    batch = next(data.batches(corpus, data.wrap(corpus, "verbatim", 3, 10), 3))
    seen = []
    for step, flat in data.time_slices(batch):
        assert step.inputs.shape == (1, 3)
        seen += flat.tolist()
    assert sorted(seen) == batch.valid.tolist()
