"""Word error counts as NIST's sclite and SRILM's wordError count them.

The alignment minimises the weighted cost substitution 4, deletion 3, insertion 3, a
match 0; among equally cheap predecessors of a chart cell, a match or substitution wins
over a deletion, and a deletion over an insertion (SRILM's order). The errors of the
chosen alignment are counted (each 1): WER = (sub + del + ins) / reference words.

All hypotheses of an utterance are aligned to its reference at once: the chart is filled
cell by cell of the reference and the longest hypothesis, each cell a vector operation
over the hypotheses. References (`utt-id words` lines) and noise words are read here too.

WordErrorTally sums, for n-best lists and lattices alike, the counts of three hypotheses
of every utterance: the recognizer's 1-best, the rescored 1-best and the oracle (the
hypothesis, or the lattice path, with the fewest errors); each command chooses them.
"""

import dataclasses
import re

import numpy

from rwthlm_py.errors import InputError
from rwthlm_py.text.textio import DEFAULT_ENCODING, open_binary, read_lines, split_words

SUBSTITUTION_COST, DELETION_COST, INSERTION_COST = 4, 3, 3


@dataclasses.dataclass
class ErrorCounts:
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    reference_words: int = 0

    @property
    def errors(self):
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self):
        return 100.0 * self.errors / self.reference_words if self.reference_words else float("nan")

    def add(self, other):
        self.substitutions += other.substitutions
        self.deletions += other.deletions
        self.insertions += other.insertions
        self.reference_words += other.reference_words

    def numbers(self):
        return [self.substitutions, self.deletions, self.insertions, self.reference_words]

    def format(self):
        return (f"{self.rate:.2f}% [ {self.errors} / {self.reference_words}, "
                f"{self.insertions} ins, {self.deletions} del, {self.substitutions} sub ]")


class WordErrorTally:
    """--refs: the summed counts, and the lines that print them. `references` is
    read_references' dict (of the file `references_path`), `noise` the words left out of
    references and hypotheses."""

    def __init__(self, references_path, references, noise):
        self.path, self.references, self.noise = references_path, references, noise
        self.original, self.rescored, self.oracle = ErrorCounts(), ErrorCounts(), ErrorCounts()
        self.utterances = 0

    def reference(self, utterance, naming=None):
        """The reference words of `utterance`, noise removed; `naming` (how the utterance was
        named) completes the message when there is none."""
        if utterance not in self.references:
            how = f" ({naming})" if naming else ""
            raise InputError(f"no reference for utterance '{utterance}'{how}", self.path)
        return remove_noise(self.references[utterance], self.noise)

    def add(self, original, rescored, oracle):
        """The ErrorCounts of one utterance's three hypotheses."""
        self.utterances += 1
        for total, counts in zip((self.original, self.rescored, self.oracle), (original, rescored, oracle),
                                 strict=True):
            total.add(counts)

    def merge_ranks(self, share):
        """The counts summed over the ranks of an MPI job (runtime.jobs.Share), on every rank."""
        if not share.merges:
            return
        totals = share.sum([self.utterances] + [value for errors in self._totals() for value in errors.numbers()])
        self.utterances = totals[0]
        for k, errors in enumerate(self._totals()):
            errors.substitutions, errors.deletions, errors.insertions, errors.reference_words = \
                totals[1 + 4 * k:5 + 4 * k]

    def _totals(self):
        return self.original, self.rescored, self.oracle

    def lines(self):
        """The three WER lines; none where no utterance was counted (every lattice of a run
        failed): a rate of nothing is no figure."""
        if not self.utterances:
            return []
        return error_lines(self.original, self.rescored, self.oracle)


LINE_NAMES = ("original 1-best", "rescored 1-best", "oracle")


def error_lines(original, rescored, oracle):
    """The three WER lines of the ErrorCounts of the original 1-best, the rescored 1-best and the oracle."""
    return [f"{name + ':':17s} WER {errors.format()}"
            for name, errors in zip(LINE_NAMES, (original, rescored, oracle), strict=True)]


# a WER line as error_lines prints it, found again in a job's log
_ERROR_LINE = re.compile(rb"^\s*(original 1-best|rescored 1-best|oracle):\s+WER \S+% \[ (\d+) / (\d+), (\d+) ins, "
                         rb"(\d+) del, (\d+) sub \]\s*$")


def read_error_lines(path):
    """The three ErrorCounts (original 1-best, rescored 1-best, oracle) of the WER lines in
    the file `path` (a job's log or saved output, gzip allowed; any other lines ignored),
    or None where it holds none (a job that counted no utterance); a file with one of the
    lines twice, or not all three, is an error."""
    found = {}
    with open_binary(path) as handle:
        for number, raw in enumerate(handle, start=1):
            match = _ERROR_LINE.match(raw)
            if match is None:
                continue
            name = match.group(1).decode()
            if name in found:
                raise InputError(f"a second '{name}:' WER line (one run's lines a file)", path, number)
            errors, words, insertions, deletions, substitutions = (int(value) for value in match.groups()[1:])
            if insertions + deletions + substitutions != errors:
                raise InputError(f"the '{name}:' WER line's errors are not its ins + del + sub", path, number)
            found[name] = ErrorCounts(substitutions, deletions, insertions, words)
    if not found:
        return None
    missing = [name for name in LINE_NAMES if name not in found]
    if missing:
        raise InputError(f"no '{missing[0]}:' WER line beside the others", path)
    return [found[name] for name in LINE_NAMES]


def sum_error_lines(paths):
    """The WER lines of the counts summed over the files `paths` (read_error_lines), and
    the files that held none."""
    totals, without = [ErrorCounts(), ErrorCounts(), ErrorCounts()], []
    for path in paths:
        counts = read_error_lines(path)
        if counts is None:
            without.append(path)
            continue
        for total, part in zip(totals, counts, strict=True):
            total.add(part)
    if len(without) == len(paths):
        raise InputError("no WER lines (`original 1-best: WER ...`, as nbest and lattice print them with --refs) "
                         "in any of the files", paths[0] if len(paths) == 1 else None)
    return error_lines(*totals), without


def align_counts(reference, hypotheses):
    """ErrorCounts of every hypothesis (a list of words) against `reference`."""
    ids = {}
    ref = numpy.asarray([ids.setdefault(word, len(ids)) for word in reference], dtype=numpy.int64)
    lengths = numpy.asarray([len(words) for words in hypotheses], dtype=numpy.int64)
    width = int(lengths.max()) if len(hypotheses) else 0
    hyp = numpy.full((len(hypotheses), width), -1, dtype=numpy.int64)
    for h, words in enumerate(hypotheses):
        hyp[h, :len(words)] = [ids.get(word, -2) for word in words]
    # previous[j] (the chart row of ref[:i]): (cost, sub, del, ins) of the best alignment of
    # ref[:i] and each hypothesis's first j words, one array over the hypotheses each
    previous = [_first_row(j, len(hypotheses)) for j in range(width + 1)]
    for i in range(1, len(ref) + 1):
        current = [tuple(value + add for value, add in zip(previous[0], (DELETION_COST, 0, 1, 0), strict=True))]
        for j in range(1, width + 1):
            current.append(_best_step(previous[j - 1], previous[j], current[j - 1], hyp[:, j - 1] == ref[i - 1]))
        previous = current
    rows = numpy.arange(len(hypotheses))
    substitutions, deletions, insertions = (
        numpy.stack([previous[j][k] for j in range(width + 1)], axis=1)[rows, lengths] for k in (1, 2, 3))
    return [ErrorCounts(int(s), int(d), int(n), len(ref))
            for s, d, n in zip(substitutions.tolist(), deletions.tolist(), insertions.tolist(), strict=True)]


def _first_row(j, count):
    return (numpy.full(count, INSERTION_COST * j), numpy.zeros(count, dtype=numpy.int64),
            numpy.zeros(count, dtype=numpy.int64), numpy.full(count, j))


def _best_step(diagonal, up, left, match):
    """The cell from its three neighbours, SRILM's preference order on equal costs."""
    cost = diagonal[0] + numpy.where(match, 0, SUBSTITUTION_COST)
    sub, dele, ins = diagonal[1] + ~match, diagonal[2].copy(), diagonal[3].copy()
    deletion_cost = up[0] + DELETION_COST
    take = deletion_cost < cost
    cost = numpy.where(take, deletion_cost, cost)
    sub, dele, ins = (numpy.where(take, up[1], sub), numpy.where(take, up[2] + 1, dele),
                      numpy.where(take, up[3], ins))
    insertion_cost = left[0] + INSERTION_COST
    take = insertion_cost < cost
    return (numpy.where(take, insertion_cost, cost), numpy.where(take, left[1], sub),
            numpy.where(take, left[2], dele), numpy.where(take, left[3] + 1, ins))


def remove_noise(words, noise):
    return [word for word in words if word not in noise]


def read_references(path, encoding=DEFAULT_ENCODING):
    """Reference transcripts, `utt-id w1 w2 ...` lines, as {utt-id: words}."""
    references = {}
    for line, text in read_lines(path, encoding):
        fields = split_words(text)
        if not fields:
            continue
        if fields[0] in references:
            raise InputError(f"utterance '{fields[0]}' has a second reference", path, line)
        references[fields[0]] = fields[1:]
    return references


def read_noise_words(path, encoding=DEFAULT_ENCODING):
    """The words of a noise vocabulary file (any layout), to leave out of error counts."""
    return {word for _, text in read_lines(path, encoding) for word in split_words(text)} if path else set()
