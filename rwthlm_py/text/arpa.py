"""ARPA back-off n-gram models (`ngram-format(5)`): reading, and log10 p of sentences.

    log10 p(w | h) = log10 p*(w | h)                       when the n-gram (h, w) is listed
                   = bow(h) + log10 p(w | h')               otherwise, h' = h without its
                                                            oldest word (bow(h) = 0 if h
                                                            is not listed)

A sentence is scored as SRILM scores it: the history starts with <s>, and </s> is
predicted after the last word. A word the model does not know is scored as <unk> when the
model has it; otherwise it has probability 0 (SRILM's OOV). Probabilities and back-off
weights are log10; -99 is log 0. Each order's n-grams are a dict from word-id tuples to
(log10 p, bow).
"""

import dataclasses
import math
import re

import numpy

from rwthlm_py.errors import InputError
from rwthlm_py.log_probs import LN10, unk_penalty
from rwthlm_py.text.textio import DEFAULT_ENCODING, read_lines, split_words

LOG_ZERO = -99.0
MAX_ORDER = 100  # SRILM's maxNgramOrder: a declared order above it is an error there too
SECTION = re.compile(r"\\(\d+)-grams:?$")


@dataclasses.dataclass
class ArpaModel:
    path: str
    order: int
    word_ids: dict  # word -> id
    ngrams: list  # ngrams[n-1]: {(id, ...): (log10 p, bow)}
    sentence_start: int
    sentence_end: int
    unk: int  # id of <unk>, or -1 when the model has none
    warnings: list = dataclasses.field(default_factory=list)  # what the reader accepted with a warning

    def sentence_log10_probs(self, words):
        """log10 p of every word and of </s>; -inf for a word of probability 0.

        Returns (values, number of words not in the model's vocabulary).
        """
        values, unknown = self._scores(words)
        return values, len(unknown)

    def sentence_log_probs(self, words, num_oovs=0):
        """ln p of every word and of </s>, p(<unk>) divided by num_oovs + 1 for each word the
        model does not know (rwthlm's --num-oovs); and the number of such words."""
        values, unknown = self._scores(words)
        values *= LN10
        if unknown and num_oovs and self.unk >= 0:
            values[unknown] -= unk_penalty(num_oovs)
        return values, len(unknown)

    def _scores(self, words):
        """log10 p of the words and </s>, and the positions of the words the model does not know."""
        ids = [self.word_ids.get(word, self.unk) for word in words] + [self.sentence_end]
        unknown = [k for k, word in enumerate(words) if word not in self.word_ids]
        history = [self.sentence_start] if self.order > 1 else []  # a unigram model has no context
        values = numpy.empty(len(ids))
        for position, word in enumerate(ids):
            values[position] = self._log10_prob(word, history) if word >= 0 else -math.inf
            history = (history + [word])[-(self.order - 1):] if self.order > 1 else []
        return values, unknown

    def _log10_prob(self, word, history):
        backoff = 0.0
        for start in range(len(history) + 1):
            context = tuple(history[start:])
            entry = self.ngrams[len(context)].get(context + (word,))
            if entry is not None and not math.isnan(entry[0]):
                return entry[0] + backoff
            if context:
                context_entry = self.ngrams[len(context) - 1].get(context)
                if context_entry is not None:
                    backoff += context_entry[1]
        return -math.inf


def read_arpa(path, sentence_start="<s>", sentence_end="</s>", unk="<unk>", encoding=DEFAULT_ENCODING):
    """Reads an ARPA file as SRILM's `ngram` reads it (`Ngram::read`).

    Accepted as SRILM accepts them, with a warning in `ArpaModel.warnings` where SRILM warns
    too: text before \\data\\ and after \\end\\ (ignored), \\data\\ counts that disagree
    with their sections, sections in any order or repeated, a log10 p above 0, a repeated
    n-gram (the later line counts; SRILM says nothing), words without a unigram, a
    back-off weight on the highest order (ignored), and a model without <s> or </s> (<s>
    is then an unlisted context, and </s> has probability 0). -99 is log 0.

    Refused, naming the line, where SRILM refuses the file or would compute with a NaN or
    an infinite back-off weight: no \\data\\ or no \\end\\, a malformed `ngram N=count`
    line, a section of an undeclared order, an n-gram line with the wrong number of fields,
    a probability or back-off weight that is not a number, NaN, or +inf.
    """
    reader = _ArpaReader(path)
    for line_number, text in read_lines(path, encoding):
        if reader.read_line(text.strip(), line_number):
            break
    ngrams, word_ids = reader.finish()
    for name in (sentence_start, sentence_end):
        word_ids.setdefault(name, len(word_ids))  # an unlisted word, as SRILM's vocabulary has it
    _check_prefixes(ngrams)
    return ArpaModel(str(path), len(ngrams), word_ids, ngrams, word_ids[sentence_start],
                     word_ids[sentence_end], word_ids.get(unk, -1), reader.warnings.lines())


class _Warnings:
    """The reader's warnings: the first MAX_SHOWN in full, then their number."""

    MAX_SHOWN = 10

    def __init__(self, path):
        self.path, self.shown, self.count = path, [], 0

    def add(self, message, line_number=None):
        self.count += 1
        if len(self.shown) < self.MAX_SHOWN:
            self.shown.append(str(InputError(f"warning: {message}", self.path, line_number)))

    def lines(self):
        hidden = self.count - len(self.shown)
        return self.shown + ([f"{self.path}: {hidden} more warnings"] if hidden else [])


class _ArpaReader:
    """The reading state: the \\data\\ counts, the section being read, the n-grams and
    the n-gram lines read so far per order."""

    def __init__(self, path):
        self.path = path
        self.declared, self.ngrams, self.word_ids, self.lines_read = {}, None, {}, {}
        self.section = None
        self.seen_data = self.ended = False
        self.warnings = _Warnings(path)

    def read_line(self, text, line_number):
        """Reads one stripped line; True at \\end\\, after which nothing is read."""
        if not self.seen_data:
            self.seen_data = text == "\\data\\"  # SRILM ignores whatever comes before
            return False
        if not text:
            return False
        if text == "\\end\\":
            if self.ngrams is None:
                raise InputError("\\end\\ before any n-gram section", self.path, line_number)
            self._compare_counts(line_number)
            return True
        if text == "\\data\\":
            raise InputError("a second \\data\\ section", self.path, line_number)
        if match := SECTION.match(text):
            self._start_section(int(match.group(1)), line_number)
        elif self.section is None:
            self._declare(text, line_number)
        else:
            self._add_ngram(split_words(text), line_number)
        return False

    def finish(self):
        if not self.seen_data:
            raise InputError("no \\data\\ line: not an ARPA file", self.path)
        if self.ngrams is None:
            raise InputError("no n-gram sections", self.path)
        if not self.ended:
            raise InputError("no \\end\\ line: the file is truncated or not an ARPA file", self.path)
        return self.ngrams, self.word_ids

    def _declare(self, text, line_number):
        """Reads an `ngram N=count` line of the \\data\\ section."""
        fields = text.replace("=", " ").split()
        if len(fields) != 3 or fields[0] != "ngram" or not fields[1].isdigit() or not fields[2].isdigit() \
                or int(fields[1]) < 1:
            raise InputError(f"expected `ngram N=count` in \\data\\, not '{text}'", self.path, line_number)
        order = int(fields[1])
        if order > MAX_ORDER:  # each order up to the highest gets its table
            raise InputError(f"ngram order {order:,} is out of range (1 to {MAX_ORDER}, as in SRILM)", self.path,
                             line_number)
        if order in self.declared:
            raise InputError(f"ngram {order} is declared twice", self.path, line_number)
        self.declared[order] = int(fields[2])

    def _start_section(self, order, line_number):
        if not self.declared or order > max(self.declared):
            raise InputError(f"section \\{order}-grams: is not declared in \\data\\", self.path, line_number)
        if self.ngrams is None:
            self.ngrams = [{} for _ in range(max(self.declared))]
        self.section = order

    def _compare_counts(self, line_number):
        self.ended = True
        for order in range(1, len(self.ngrams) + 1):
            declared, read = self.declared.get(order, 0), self.lines_read.get(order, 0)
            if declared != read:
                self.warnings.add(f"{read:,} {order}-grams read; \\data\\ declares {declared:,}", line_number)

    def _add_ngram(self, fields, line_number):
        order = self.section
        log10p, bow = self._numbers(fields, order, line_number)
        words = fields[1:order + 1]
        key = tuple(self.word_ids.setdefault(word, len(self.word_ids)) for word in words)
        table = self.ngrams[order - 1]
        if key in table:
            self.warnings.add(f"the {order}-gram '{' '.join(words)}' is listed again; this line counts",
                              line_number)
        table[key] = (log10p, bow)
        self.lines_read[order] = self.lines_read.get(order, 0) + 1

    def _numbers(self, fields, order, line_number):
        """(log10 p, bow) of an n-gram line `log10p w1 .. wN [bow]`; -99 is log 0."""
        if len(fields) not in (order + 1, order + 2):
            raise InputError(f"a {order}-gram line has `log10p w1 .. w{order} [bow]`; this one has "
                             f"{len(fields)} fields", self.path, line_number)
        log10p = _number(fields[0], "probability", self.path, line_number)
        if log10p > 0:
            self.warnings.add(f"log10 p = {fields[0]} is above 0: a probability above 1", line_number)
        bow = 0.0
        if len(fields) == order + 2:
            if order == len(self.ngrams):
                if not fields[-1].startswith("0"):
                    self.warnings.add(f"the back-off weight {fields[-1]} of a highest-order n-gram is ignored",
                                      line_number)
            else:
                wrong_order = (f"a {order}-gram line has `log10p w1 .. w{order} [bow]`: '{fields[-1]}' is no "
                               f"back-off weight (a {order + 1}-gram in the {order}-grams section?)")
                bow = _number(fields[-1], "back-off weight", self.path, line_number, not_a_number=wrong_order)
        return _from_pseudo_zero(log10p), _from_pseudo_zero(bow)


def _number(text, what, path, line_number, not_a_number=None):
    """A log10 value: a number, not NaN and not +inf (-inf, as some tools write log 0, is
    accepted); `not_a_number` is the message where the text is none."""
    try:
        value = float(text)
    except ValueError:
        raise InputError(not_a_number or f"the {what} '{text}' is not a number", path, line_number) from None
    if math.isnan(value) or value == math.inf:
        raise InputError(f"the {what} is {text}", path, line_number)
    return value


def _from_pseudo_zero(log10_value):
    """SRILM's log 0: exactly -99 (LogP_PseudoZero) is -inf."""
    return -math.inf if log10_value == LOG_ZERO else log10_value


def _check_prefixes(ngrams):
    """Adds the missing (n-1)-gram context of an n-gram as a context only (NaN probability,
    bow 0), so that back-off never mistakes it for a listed n-gram."""
    for n in range(1, len(ngrams)):
        for key in list(ngrams[n]):
            ngrams[n - 1].setdefault(key[:-1], (math.nan, 0.0))
