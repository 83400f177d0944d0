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
    """Reads an ARPA file; malformed lines are an InputError naming the line."""
    declared, ngrams, word_ids = {}, None, {}
    section, ended, seen_data = None, False, False
    for line_number, text in read_lines(path):
        text = text.strip()
        if not text:
            continue
        if text == "\\end\\":
            ended = True
            break
        if text == "\\data\\":
            seen_data = True
            continue
        if not seen_data:
            raise InputError(f"expected \\data\\ before '{text}' (not an ARPA file?)", path, line_number)
        match = SECTION.match(text)
        if match:
            section = int(match.group(1))
            if section not in declared:
                raise InputError(f"section \\{section}-grams: is not declared in \\data\\", path, line_number)
            if ngrams is None:
                ngrams = [dict() for _ in range(max(declared))]
        elif section is None:
            _declare(declared, text, path, line_number)
        else:
            _add_ngram(ngrams, word_ids, split_words(text), section, path, line_number)
    if not ended:
        raise InputError("no \\end\\ line: the file is truncated or not an ARPA file", path)
    if ngrams is None:
        raise InputError("no n-gram sections", path)
    for name in (sentence_start, sentence_end):
        if (word_ids.get(name),) not in ngrams[0]:
            raise InputError(f"the model has no unigram {name}", path)
    _check_prefixes(ngrams)
    return ArpaModel(str(path), len(ngrams), word_ids, ngrams, word_ids[sentence_start],
                     word_ids[sentence_end], word_ids.get(unk, -1))


def _declare(declared, text, path, line_number):
    """Reads an `ngram N=count` line of the \\data\\ section."""
    fields = text.replace("=", " ").split()
    if len(fields) != 3 or fields[0] != "ngram" or not fields[1].isdigit() or not fields[2].isdigit() \
            or int(fields[1]) < 1:
        raise InputError(f"expected `ngram N=count` in \\data\\, not '{text}'", path, line_number)
    declared[int(fields[1])] = int(fields[2])


def _add_ngram(ngrams, word_ids, fields, order, path, line_number):
    if len(fields) not in (order + 1, order + 2):
        raise InputError(f"a {order}-gram line has `log10p w1 .. w{order} [bow]`; this one has "
                         f"{len(fields)} fields", path, line_number)
    try:
        log10p = float(fields[0])
        bow = float(fields[order + 1]) if len(fields) == order + 2 else 0.0
    except ValueError:
        raise InputError("a probability or back-off weight is not a number", path, line_number) from None
    key = tuple(word_ids.setdefault(word, len(word_ids)) for word in fields[1:order + 1])
    ngrams[order - 1][key] = (log10p, bow)


def _check_prefixes(ngrams):
    """Adds the missing (n-1)-gram context of an n-gram as a context only (NaN probability,
    bow 0), so that back-off never mistakes it for a listed n-gram."""
    for n in range(1, len(ngrams)):
        for key in list(ngrams[n]):
            ngrams[n - 1].setdefault(key[:-1], (math.nan, 0.0))
