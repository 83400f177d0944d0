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
from rwthlm_py.rescoring.scores import LN10
from rwthlm_py.textio import read_lines, split_words

LOG_ZERO = -99.0
SECTION = re.compile(r"\\(\d+)-grams:$")


@dataclasses.dataclass
class ArpaModel:
    path: str
    order: int
    word_ids: dict  # word -> id
    ngrams: list  # ngrams[n-1]: {(id, ...): (log10 p, bow)}
    sentence_start: int
    sentence_end: int
    unk: int  # id of <unk>, or -1 when the model has none

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
            values[unknown] -= math.log(num_oovs + 1)
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
                return entry[0] + backoff if entry[0] > LOG_ZERO else -math.inf
            if context:
                context_entry = self.ngrams[len(context) - 1].get(context)
                if context_entry is not None:
                    backoff += context_entry[1]
        return -math.inf


def read_arpa(path, sentence_start="<s>", sentence_end="</s>", unk="<unk>"):
    """Reads an ARPA file; anything malformed is an InputError naming the line: a \\data\\
    count that disagrees with its section, sections out of order, repeated or missing, a
    probability above 1 or not a number, a repeated n-gram, a word without a unigram, an
    n-gram of the wrong order, text after \\end\\."""
    reader = _ArpaReader(path)
    for line_number, text in read_lines(path):
        reader.read_line(text.strip(), line_number)
    ngrams, word_ids = reader.finish()
    for name in (sentence_start, sentence_end):
        if (word_ids.get(name),) not in ngrams[0]:
            raise InputError(f"the model has no unigram {name}", path)
    _check_prefixes(ngrams)
    return ArpaModel(str(path), len(ngrams), word_ids, ngrams, word_ids[sentence_start],
                     word_ids[sentence_end], word_ids.get(unk, -1))


class _ArpaReader:
    """The reading state: the \\data\\ counts, the section being read and its first line,
    the n-grams read so far."""

    def __init__(self, path):
        self.path = path
        self.declared, self.ngrams, self.word_ids = {}, None, {}
        self.section = self.section_line = None
        self.seen_data = self.ended = False

    def read_line(self, text, line_number):
        if not text:
            return
        if self.ended:
            raise InputError(f"text after \\end\\: '{text[:40]}'", self.path, line_number)
        if text == "\\end\\":
            self._end_section()
            if self.ngrams is not None and self.section != len(self.ngrams):
                raise InputError(f"\\end\\ before section \\{self.section + 1}-grams: that \\data\\ declares",
                                 self.path, line_number)
            self.ended = True
        elif text == "\\data\\":
            if self.seen_data:
                raise InputError("a second \\data\\ section", self.path, line_number)
            self.seen_data = True
        elif not self.seen_data:
            raise InputError(f"expected \\data\\ before '{text}' (not an ARPA file?)", self.path, line_number)
        elif match := SECTION.match(text):
            self._start_section(int(match.group(1)), line_number)
        elif self.section is None:
            self._declare(text, line_number)
        else:
            self._add_ngram(split_words(text), line_number)

    def finish(self):
        if not self.ended:
            raise InputError("no \\end\\ line: the file is truncated or not an ARPA file", self.path)
        if self.ngrams is None:
            raise InputError("no n-gram sections", self.path)
        return self.ngrams, self.word_ids

    def _declare(self, text, line_number):
        """Reads an `ngram N=count` line of the \\data\\ section."""
        fields = text.replace("=", " ").split()
        if len(fields) != 3 or fields[0] != "ngram" or not fields[1].isdigit() or not fields[2].isdigit() \
                or int(fields[1]) < 1:
            raise InputError(f"expected `ngram N=count` in \\data\\, not '{text}'", self.path, line_number)
        order = int(fields[1])
        if order in self.declared:
            raise InputError(f"ngram {order} is declared twice", self.path, line_number)
        self.declared[order] = int(fields[2])

    def _start_section(self, order, line_number):
        self._end_section()
        if order not in self.declared:
            raise InputError(f"section \\{order}-grams: is not declared in \\data\\", self.path, line_number)
        expected = 1 if self.section is None else self.section + 1
        if order != expected:
            raise InputError(f"section \\{order}-grams: where \\{expected}-grams: should come (sections go "
                             "in order, each once)", self.path, line_number)
        if self.ngrams is None:
            if sorted(self.declared) != list(range(1, max(self.declared) + 1)):
                raise InputError(f"\\data\\ declares orders {sorted(self.declared)}, not 1 to {max(self.declared)}",
                                 self.path, line_number)
            self.ngrams = [dict() for _ in range(max(self.declared))]
        self.section, self.section_line = order, line_number

    def _end_section(self):
        """Checks the section just read against its \\data\\ count."""
        if self.section is not None:
            count, declared = len(self.ngrams[self.section - 1]), self.declared[self.section]
            if count != declared:
                raise InputError(f"section \\{self.section}-grams: has {count:,} n-grams; \\data\\ declares "
                                 f"{declared:,}", self.path, self.section_line)

    def _add_ngram(self, fields, line_number):
        order = self.section
        log10p, bow = self._numbers(fields, order, line_number)
        words = fields[1:order + 1]
        if order == 1:
            key = (self.word_ids.setdefault(words[0], len(self.word_ids)),)
        else:
            key = tuple(self._known_word(word, line_number) for word in words)
        table = self.ngrams[order - 1]
        if key in table:
            raise InputError(f"the {order}-gram '{' '.join(words)}' is listed twice in its section", self.path,
                             line_number)
        table[key] = (log10p, bow)

    def _numbers(self, fields, order, line_number):
        """(log10 p, bow) of an n-gram line `log10p w1 .. wN [bow]`."""
        if len(fields) not in (order + 1, order + 2):
            raise InputError(f"a {order}-gram line has `log10p w1 .. w{order} [bow]`; this one has "
                             f"{len(fields)} fields", self.path, line_number)
        log10p = _number(fields[0], "probability", self.path, line_number)
        bow = 0.0
        if len(fields) == order + 2:
            wrong_order = (f"a {order}-gram line has `log10p w1 .. w{order} [bow]`: '{fields[-1]}' is no back-off "
                           f"weight (a {order + 1}-gram in the {order}-grams section?)")
            bow = _number(fields[-1], "back-off weight", self.path, line_number, not_a_number=wrong_order)
        if log10p > 0:
            raise InputError(f"log10 p = {fields[0]} is above 0: a probability above 1", self.path, line_number)
        if math.isinf(bow):
            raise InputError(f"the back-off weight {fields[-1]} is not finite", self.path, line_number)
        return log10p, bow

    def _known_word(self, word, line_number):
        word_id = self.word_ids.get(word)
        if word_id is None:
            raise InputError(f"'{word}' has no unigram (every word of an n-gram must be in \\1-grams:)",
                             self.path, line_number)
        return word_id


def _number(text, what, path, line_number, not_a_number=None):
    """A log10 value: a number, not NaN (-inf, as some tools write log 0, is accepted);
    `not_a_number` is the message where the text is none."""
    try:
        value = float(text)
    except ValueError:
        raise InputError(not_a_number or f"the {what} '{text}' is not a number", path, line_number) from None
    if math.isnan(value) or value == math.inf:
        raise InputError(f"the {what} is {text}", path, line_number)
    return value


def _check_prefixes(ngrams):
    """Adds the missing (n-1)-gram context of an n-gram as a context only (NaN probability,
    bow 0), so that back-off never mistakes it for a listed n-gram."""
    for n in range(1, len(ngrams)):
        for key in list(ngrams[n]):
            ngrams[n - 1].setdefault(key[:-1], (math.nan, 0.0))
