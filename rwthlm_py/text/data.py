"""Reading text into word ids, cutting it into sequences (word wrapping) and forming batches.

Host numpy only. A text becomes one token `stream`: the ids of every line, each line
followed by `<sb>` (not with --debug-no-sb). An empty line is an empty sentence: only its
`<sb>` is predicted. A word outside the vocabulary is the unknown word (--unk), an error,
or (SRILM's OOV) left out of the stream and counted, as if the line did not hold it. A
sequence is a range [first, end) of the stream whose tokens are the prediction targets;
the input at each target is the token before it in the stream, and before the start of
the stream that is `<sb>`. L = --sequence-length counts the context token too, so a
sequence has at most L-1 targets.

Word wrapping (rwthlm §5.3), for the text "a b" / "c" / "d e f" with B = 2
(s = <sb>; the stream is a b s c s d e f s; [context|targets]):

    verbatim       one sequence per line (L = 5; with L = 4 the third line is an error):
                   [s|a b s] [s|c s] [s|d e f s]
    concatenated   lines joined while they fit in L-1 = 3 targets; a line that does not
                   fit fills the open sequence and goes on in the next:
                   [s|a b s] [s|c s d] [d|e f s]
    fixed          the stream cut into B parts (5 and 4 tokens), each cut into chunks
                   of L-1 = 3; chunk k of part b is sequence k*B+b:
                   [s|a b s] [s|d e f] [s|c s] [f|s]
    stream         fixed's layout, but the recurrent state of column b is carried from
                   one batch to the next (PyTorch word_language_model style), so that
                   context is not cut at chunk borders; not an rwthlm mode

A batch holds B consecutive sequences, time-major and padded to the longest:

    inputs[T,B]  targets[T,B]  lengths[B]  positions[T,B] (stream index of each target,
    -1 on padding)  valid (flat indices t*B+b of the real targets)

With fixed's layout above and B = 2, batch 0 is
    inputs  = [[s, s], [a, d], [b, e]]     targets = [[a, d], [b, e], [s, f]]
"""

import dataclasses
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import numpy

from rwthlm_py.errors import InputError
from rwthlm_py.text.textio import DEFAULT_ENCODING, read_lines, split_words

if TYPE_CHECKING:
    from rwthlm_py.text.vocabulary import Vocabulary

WRAPPING_MODES = ("fixed", "concatenated", "verbatim", "stream")


@dataclasses.dataclass
class Corpus:
    """A text as a token stream; line i covers stream[line_starts[i]:line_starts[i+1]]."""

    path: str
    stream: numpy.ndarray  # int32 word ids
    line_starts: numpy.ndarray  # int64, one more entry than there are lines
    sb: int
    unk_count: int  # tokens mapped to <unk> because they are not in the vocabulary
    line_words: list | None = None  # every line's words in the stream, where the reader was asked to keep them
    oovs: list = dataclasses.field(default_factory=list)  # (stream position it preceded, word) of each word left out

    @property
    def oov_count(self) -> int:
        return len(self.oovs)

    @property
    def num_lines(self) -> int:
        return len(self.line_starts) - 1


@dataclasses.dataclass
class Sequences:
    """Target ranges [first, end) into a corpus stream, in batch order."""

    first: numpy.ndarray
    end: numpy.ndarray

    def __len__(self) -> int:
        return len(self.first)

    def take(self, order: numpy.ndarray) -> "Sequences":
        return Sequences(self.first[order], self.end[order])


@dataclasses.dataclass
class Batch:
    inputs: numpy.ndarray
    targets: numpy.ndarray
    lengths: numpy.ndarray
    positions: numpy.ndarray
    valid: numpy.ndarray

    @property
    def num_targets(self) -> int:
        return len(self.valid)

    @property
    def batch_size(self) -> int:
        return self.inputs.shape[1]


def read_corpus(path: str, vocab: "Vocabulary", use_unk: bool = False, debug_no_sb: bool = False,
                keep_words: bool = False, encoding: str = DEFAULT_ENCODING, skip_unknown: bool = False) -> Corpus:
    """Reads a text file (in `encoding`) into a Corpus of ids of `vocab`, with every line's
    words too when `keep_words` (for a second model that needs them: a pipe cannot be read
    twice).

    Unknown words are mapped to the vocabulary's unknown word when `use_unk` is set, else
    left out and counted when `skip_unknown` is set (SRILM's OOVs), else an error naming
    the line.
    """
    return corpus_from_lines(read_lines(path, encoding), path, vocab, use_unk, debug_no_sb, keep_words,
                             skip_unknown)


def corpus_from_lines(numbered_lines: Iterable[tuple[int, str]], path: str, vocab: "Vocabulary",
                      use_unk: bool = False, debug_no_sb: bool = False, keep_words: bool = False,
                      skip_unknown: bool = False) -> Corpus:
    """The Corpus of (line number, text) pairs, read as read_corpus reads a file; `path`
    names them in errors."""
    ids: list[int] = []
    starts, unk_count, oovs = [0], 0, []
    line_words: list[list[str]] = []
    index, sb_name = vocab.index, vocab.sb_name
    unk = vocab.unk if use_unk else None
    for line_number, text in numbered_lines:
        words = split_words(text)
        _check_line(text, words, sb_name, path, line_number)
        kept = []
        for word in words:
            word_id = index.get(word)
            if word_id is None:
                if unk is not None:
                    word_id, unk_count = unk, unk_count + 1
                elif skip_unknown:
                    oovs.append((len(ids), word))
                    continue
                else:
                    raise InputError(
                        f"unknown word '{word}' (not in the vocabulary; --unk maps unknown words to "
                        f"{vocab.unk_name or '<unk>'})",
                        path, line_number,
                    )
            ids.append(word_id)
            kept.append(word)
        if keep_words:
            line_words.append(kept)
        if not debug_no_sb:
            ids.append(vocab.sb)
        starts.append(len(ids))
    return Corpus(str(path), numpy.asarray(ids, dtype=numpy.int32),
                  numpy.asarray(starts, dtype=numpy.int64), vocab.sb, unk_count, line_words if keep_words else None,
                  oovs)


def _check_line(text: str, words: list[str], sb_name: str, path: str, line_number: int) -> None:
    stripped = text.strip()
    if stripped.startswith("<s>") or stripped.endswith("</s>"):
        raise InputError(
            "the line has <s> or </s>; remove them: sentence boundaries are added as "
            f"{sb_name} to every line", path, line_number,
        )
    if words and words[-1] == sb_name:
        raise InputError(
            f"the line ends in {sb_name}, which is added to every line already", path, line_number
        )


def wrap(corpus: Corpus, mode: str, batch_size: int, sequence_length: int, debug_no_sb: bool = False) -> Sequences:
    """Cuts a corpus into sequences with rwthlm's word wrapping (see the module docstring)."""
    if mode in ("fixed", "stream"):
        return _wrap_fixed(len(corpus.stream), batch_size, sequence_length - 1)
    if mode == "verbatim":
        return _wrap_verbatim(corpus, sequence_length, debug_no_sb)
    if mode == "concatenated":
        return _wrap_concatenated(corpus, sequence_length - 1, debug_no_sb)
    raise InputError(f"unknown word wrapping '{mode}' (choose from {', '.join(WRAPPING_MODES)})")


def _wrap_fixed(num_tokens: int, batch_size: int, chunk: int) -> Sequences:
    """B contiguous parts (the first N mod B one token longer), each cut into chunks. Parts
    beyond the N-th would be empty and disappear, so no more than N are made (a batch size
    far above the text's length allocates nothing for them)."""
    parts = max(min(batch_size, num_tokens), 1)
    part_sizes = numpy.full(parts, num_tokens // parts, dtype=numpy.int64)
    part_sizes[: num_tokens % parts] += 1
    part_ends = numpy.cumsum(part_sizes)
    part_starts = part_ends - part_sizes
    num_chunks = -(-int(part_sizes.max()) // chunk) if num_tokens else 0
    first = part_starts[None, :] + chunk * numpy.arange(num_chunks)[:, None]
    end = numpy.minimum(first + chunk, part_ends[None, :])
    keep = (first < end).ravel()
    return Sequences(first.ravel()[keep], end.ravel()[keep])


def _wrap_verbatim(corpus: Corpus, sequence_length: int, debug_no_sb: bool) -> Sequences:
    """One sequence per line; lines too long for one sequence are an error."""
    starts, ends = corpus.line_starts[:-1], corpus.line_starts[1:]
    lengths = ends - starts
    limit = sequence_length if debug_no_sb else sequence_length - 1
    too_long = numpy.flatnonzero(lengths > limit)
    if len(too_long):
        line = int(too_long[0])
        words = int(lengths[line]) - (0 if debug_no_sb else 1)
        most = limit - (0 if debug_no_sb else 1)
        raise InputError(
            f"the line has {words} words, more than verbatim word wrapping allows with "
            f"--sequence-length {sequence_length} (at most {most}); raise --sequence-length "
            "or use --word-wrapping fixed or concatenated",
            corpus.path, line + 1,
        )
    first = starts + 1 if debug_no_sb else starts
    keep = first < ends
    return Sequences(first[keep], ends[keep])


def _wrap_concatenated(corpus: Corpus, capacity: int, debug_no_sb: bool) -> Sequences:
    """Lines joined into sequences of at most `capacity` tokens; long lines are split."""
    cuts, used = [0], 0
    starts = corpus.line_starts
    for line_start, size in zip(starts[:-1].tolist(), numpy.diff(starts).tolist(), strict=True):
        if size == 0:
            continue
        if used + size <= capacity:
            used += size
        elif size <= capacity:
            cuts.append(line_start)
            used = size
        else:
            used += size
            while used > capacity:
                cuts.append(cuts[-1] + capacity)
                used -= capacity
    cuts.append(len(corpus.stream))
    first = numpy.asarray(cuts[:-1], dtype=numpy.int64)
    end = numpy.asarray(cuts[1:], dtype=numpy.int64)
    if debug_no_sb:
        first = first + 1
    keep = first < end
    return Sequences(first[keep], end[keep])


def shuffled(sequences: Sequences, seed: int, epoch: int) -> Sequences:
    """The sequences permuted by a permutation that depends on (seed, epoch) and their
    number alone: no random state carries over from earlier epochs, so that a resumed run
    sees the order an uninterrupted one saw. The trainer passes the sequences in their
    order from `wrap`; the result is that order permuted (shuffling a shuffled order gives
    another one)."""
    generator = numpy.random.default_rng([seed, epoch])
    return sequences.take(generator.permutation(len(sequences)))


def batches(corpus: Corpus, sequences: Sequences, batch_size: int) -> Iterator[Batch]:
    """Yields the Batch of every `batch_size` consecutive sequences."""
    context = numpy.concatenate([[corpus.sb], corpus.stream]).astype(numpy.int32)
    for start in range(0, len(sequences), batch_size):
        yield make_batch(corpus.stream, context, sequences.first[start:start + batch_size],
                         sequences.end[start:start + batch_size])


def make_batch(stream: numpy.ndarray, context: numpy.ndarray, first: numpy.ndarray, end: numpy.ndarray) -> Batch:
    """The padded time-major batch of sequences [first, end); context[i] == stream[i-1]."""
    lengths = end - first
    steps = numpy.arange(int(lengths.max()))[:, None]
    mask = steps < lengths[None, :]
    positions = numpy.where(mask, first[None, :] + steps, first[None, :])
    valid = numpy.flatnonzero(mask.ravel())
    return Batch(
        inputs=context[positions],
        targets=stream[positions],
        lengths=lengths,
        positions=numpy.where(mask, positions, -1),
        valid=valid,
    )


def time_slices(batch: Batch) -> Iterator[tuple[Batch, numpy.ndarray]]:
    """Yields (one-step Batch, flat indices t*B+b of its targets in `batch`) for every step t.

    Used by --feedforward, which processes one time slice at a time.
    """
    T, B = batch.inputs.shape
    for t in range(T):
        valid = numpy.flatnonzero(batch.positions[t] >= 0)
        step = Batch(inputs=batch.inputs[t:t + 1], targets=batch.targets[t:t + 1],
                     lengths=numpy.ones(B, dtype=numpy.int64),
                     positions=batch.positions[t:t + 1], valid=valid)
        yield step, t * B + valid
