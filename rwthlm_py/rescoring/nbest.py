"""Reading and writing n-best lists: SRILM's three formats and Kaldi's text with cost files.

Only file formats live here; the scores are converted to one unit on reading, log10
probabilities (higher is better), and back on writing:

    SRILM plain     `ascore lscore nwords w1 w2 ...`, log10, no header; written `%.7g %.7g %d`
                    (SRILM's LogP_Precision); nwords is the count the word penalty uses,
                    read as given (recognizers leave pauses and noise out of it)
    NBestList1.0    header, then `(score) w1 w2 ...`, score = recognizer total in bytelog;
                    read as the acoustic score with LM score 0 (as SRILM reads it)
    NBestList2.0    header, then `(score) w ( st: S et: E g: G a: A ) ...`, 11 fields per
                    token; acoustic = sum of a:, LM = sum of g: over the words; a token is a
                    phone or state, not a word, when its start time is not after the previous
                    word's end or its name ends in `-<digit>` (SRILM's rules); such tokens are
                    kept and written back unchanged
    Kaldi           `<utt-id>-<n> w1 w2 ...` lines with `key cost` files for the acoustic and
                    the LM cost (negated natural logs); utterance = key cut at the last `-`
                    (utterances.kaldi_utterance)

    bytelog = rint(log10p * ln(10) * 10000.5 / 1024),   log10p = bytelog * 1024 / 10000.5 / ln(10)
    log10p = -cost / ln(10)

Read as SRILM's NBestHyp::parse reads them: bytelog scores may have decimals (SRILM
writes `%.6f` where a score is not whole), a log10 score may be -inf (SRILM writes it for a
hypothesis of probability 0) and a Kaldi cost inf, and a list may have no hypotheses (a
recognizer found none). Refused, naming the line: a score that is no number, NaN or a
probability above 1 that is infinite, a negative or fractional word count, and an
NBestList2.0 token that is not `w ( st: S et: E g: G a: A )`.

An SRILM list is one file per utterance, named after it: the utterance id is the file name
without its directory and without everything from its first dot (as SRILM's tools derive it;
utterances.utterance_id).
"""

import dataclasses
import math
import os
import re

from rwthlm_py.errors import InputError
from rwthlm_py.log_probs import LN10
from rwthlm_py.rescoring.utterances import kaldi_utterance, utterance_id
from rwthlm_py.text.textio import DEFAULT_ENCODING, atomic_output, read_lines, split_words

BYTELOG_SCALE = 10000.5 / 1024.0  # bytelog units per natural-log unit
HEADER_1 = "NBestList1.0"
HEADER_2 = "NBestList2.0"
FORMATS = ("srilm", "nbest1", "nbest2", "kaldi")
FIELDS_PER_TOKEN = 11  # w ( st: S et: E g: G a: A )
NON_WORD_NAME = re.compile(r"-[0-9]$")


@dataclasses.dataclass
class Token:
    """One NBestList2.0 token with its fields as written; `is_word` after SRILM's rules."""

    name: str
    start: str
    end: str
    lm: str
    acoustic: str
    is_word: bool


@dataclasses.dataclass
class Hypothesis:
    words: list  # the words the LM scores
    acoustic: float  # log10
    lm: float  # the list's own LM score, log10
    num_words: int  # the list's word count (SRILM's nwords column)
    line: int  # line in the list file, for messages
    key: str = None  # Kaldi key `<utt-id>-<n>`
    tokens: list = None  # NBestList2.0 tokens, words and others


@dataclasses.dataclass
class NBestList:
    utterance: str
    path: str
    format: str
    hypotheses: list


def bytelog_to_log10(bytelog):
    return bytelog / BYTELOG_SCALE / LN10


def log10_to_bytelog(log10p):
    """The bytelog of a log10 probability, rounded to a whole number (-inf stays -inf)."""
    bytelog = log10p * LN10 * BYTELOG_SCALE
    return float(round(bytelog)) if math.isfinite(bytelog) else bytelog


def format_bytelog(bytelog):
    """A bytelog score as SRILM writes it: no decimals when whole, else six."""
    return f"{bytelog:.0f}" if float(bytelog).is_integer() else f"{bytelog:.6f}"


# -- reading SRILM lists -----------------------------------------------------------------------

def read_srilm_list(path, encoding=DEFAULT_ENCODING):
    """Reads one SRILM n-best list in any of its three formats (gzip allowed); an empty
    file is an empty list in the plain format."""
    lines = [(number, text) for number, text in read_lines(path, encoding) if text.strip()]
    first = lines[0][1].strip() if lines else ""
    if first.startswith(HEADER_1):
        kind, parse, body = "nbest1", _parse_nbest1, lines[1:]
    elif first.startswith(HEADER_2):
        kind, parse, body = "nbest2", _parse_nbest2, lines[1:]
    elif first.startswith("NBestList"):
        raise InputError(f"unknown n-best format '{first.split()[0]}' (known: {HEADER_1}, {HEADER_2}, "
                         "and SRILM's `ascore lscore nwords words` lines)", path, 1)
    else:
        kind, parse, body = "srilm", _parse_srilm, lines
    hypotheses = [parse(split_words(text), path, number) for number, text in body]
    return NBestList(utterance_id(path), os.fspath(path), kind, hypotheses)


def _parse_srilm(fields, path, line):
    if len(fields) < 3:
        raise InputError("expected `ascore lscore nwords word...`", path, line)
    acoustic = _log_score(fields[0], "acoustic score", path, line)
    lm = _log_score(fields[1], "LM score", path, line)
    if not fields[2].isdigit():
        raise InputError(f"word count '{fields[2]}' is not a whole number >= 0", path, line)
    return Hypothesis(fields[3:], acoustic, lm, int(fields[2]), line)


def _parse_nbest1(fields, path, line):
    score = _bytelog_field(fields[0] if fields else "", path, line)
    words = fields[1:]
    return Hypothesis(words, bytelog_to_log10(score), 0.0, len(words), line)


def _parse_nbest2(fields, path, line):
    _bytelog_field(fields[0] if fields else "", path, line)
    token_fields = fields[1:]
    if len(token_fields) % FIELDS_PER_TOKEN:
        raise InputError(f"an NBestList2.0 hypothesis has {FIELDS_PER_TOKEN} fields per token "
                         f"(`w ( st: S et: E g: G a: A )`); this line has {len(token_fields)} after the score",
                         path, line)
    tokens, acoustic, lm, previous_end = [], 0, 0, -1.0
    for start in range(0, len(token_fields), FIELDS_PER_TOKEN):
        token = _parse_token(token_fields[start:start + FIELDS_PER_TOKEN], path, line)
        begin, end = _time(token.start, "start time", path, line), _time(token.end, "end time", path, line)
        token.is_word = begin > previous_end and not NON_WORD_NAME.search(token.name)
        if token.is_word:
            acoustic += _log_score(token.acoustic, "a:", path, line)
            lm += _log_score(token.lm, "g:", path, line)
            previous_end = end
        tokens.append(token)
    words = [token.name for token in tokens if token.is_word]
    return Hypothesis(words, bytelog_to_log10(acoustic), bytelog_to_log10(lm), len(words), line,
                      tokens=tokens)


def _parse_token(fields, path, line):
    name, open_, st, start, et, end, g, lm, a, acoustic, close = fields
    if (open_, st, et, g, a, close) != ("(", "st:", "et:", "g:", "a:", ")"):
        raise InputError(f"token '{name}' is not followed by `( st: S et: E g: G a: A )`", path, line)
    return Token(name, start, end, lm, acoustic, True)


def _bytelog_field(text, path, line):
    if not (text.startswith("(") and text.endswith(")")):
        raise InputError(f"expected the hypothesis score in parentheses, `(-1234)`, not '{text}'", path, line)
    return _log_score(text[1:-1], "bytelog score", path, line)


def _float(text, what, path, line):
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{what} '{text}' is not a number", path, line) from None
    if math.isnan(value):
        raise InputError(f"{what} '{text}' is not a number", path, line)
    return value


def _log_score(text, what, path, line):
    """A log probability (or bytelog): -inf is probability 0, as SRILM writes it; +inf is
    no probability."""
    value = _float(text, what, path, line)
    if value == math.inf:
        raise InputError(f"{what} '{text}' is an infinite log probability", path, line)
    return value


def _time(text, what, path, line):
    value = _float(text, what, path, line)
    if not math.isfinite(value):
        raise InputError(f"{what} '{text}' is not a finite number", path, line)
    return value


def _cost(text, path, line):
    """A Kaldi cost, -ln p: inf is probability 0."""
    value = _float(text, "cost", path, line)
    if value == -math.inf:
        raise InputError(f"cost '{text}' is a negative infinite cost (a probability above 1)", path, line)
    return value


# -- reading Kaldi lists -----------------------------------------------------------------------

def read_kaldi_lists(text_path, acoustic_cost_path, lm_cost_path, encoding=DEFAULT_ENCODING):
    """Reads Kaldi `<utt-id>-<n> words` lines and their two cost files into NBestLists.

    Utterances keep the order in which they first appear in the text; every key of the text
    must have exactly one cost in each cost file and the other way round.
    """
    acoustic = _read_costs(acoustic_cost_path, encoding)
    lm = _read_costs(lm_cost_path, encoding)
    lists, seen = {}, set()
    for line, text in read_lines(text_path, encoding):
        fields = split_words(text)
        if not fields:
            continue
        key = fields[0]
        if key in seen:
            raise InputError(f"key '{key}' appears twice", text_path, line)
        seen.add(key)
        utterance = kaldi_utterance(key)
        if utterance is None:
            raise InputError(f"key '{key}' is not `<utt-id>-<n>` (as lattice-to-nbest writes them)",
                             text_path, line)
        for costs, cost_path in ((acoustic, acoustic_cost_path), (lm, lm_cost_path)):
            if key not in costs:
                raise InputError(f"key '{key}' has no cost in '{cost_path}'", text_path, line)
        hypothesis = Hypothesis(fields[1:], -acoustic[key][0] / LN10, -lm[key][0] / LN10,
                                len(fields) - 1, line, key=key)
        if utterance not in lists:
            lists[utterance] = NBestList(utterance, os.fspath(text_path), "kaldi", [])
        lists[utterance].hypotheses.append(hypothesis)
    for costs, cost_path in ((acoustic, acoustic_cost_path), (lm, lm_cost_path)):
        for key, (_, line) in costs.items():
            if key not in seen:
                raise InputError(f"key '{key}' is not in the n-best text '{text_path}'", cost_path, line)
    if not lists:
        raise InputError("the n-best text has no hypotheses", text_path)
    return list(lists.values())


def _read_costs(path, encoding):
    """{key: (cost, line)} of a `key cost` file."""
    costs = {}
    for line, text in read_lines(path, encoding):
        fields = split_words(text)
        if not fields:
            continue
        if len(fields) != 2:
            raise InputError("expected `key cost`", path, line)
        if fields[0] in costs:
            raise InputError(f"key '{fields[0]}' appears twice", path, line)
        costs[fields[0]] = (_cost(fields[1], path, line), line)
    return costs


# -- finding list files ------------------------------------------------------------------------

def list_files(paths=(), listing=None):
    """The list files named by `paths` (files, or directories whose files are taken in name
    order) and by the file `listing` (one path per line)."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            names = sorted(name for name in os.listdir(path) if not name.startswith("."))
            files += [os.path.join(path, name) for name in names if os.path.isfile(os.path.join(path, name))]
        else:
            files.append(path)
    if listing is not None:
        files += [text.strip() for _, text in read_lines(listing) if text.strip()]
    return files


# -- writing -------------------------------------------------------------------------------------

def write_list(nbest, path, order, lm_scores, totals, encoding=DEFAULT_ENCODING):
    """Writes one list in its own format, hypotheses in `order`, with the new LM scores.

    lm_scores[h] is the new LM score (log10) of hypothesis h, totals[h] its combined score;
    for NBestList2.0, lm_scores[h] is a list of one log10 score per word.
    """
    with atomic_output(path, encoding=encoding) as out:
        if nbest.format == "nbest1":
            out.write(HEADER_1 + "\n")
        elif nbest.format == "nbest2":
            out.write(HEADER_2 + "\n")
        for h in order:
            out.write(format_hypothesis(nbest.format, nbest.hypotheses[h], lm_scores[h], totals[h]) + "\n")


def format_hypothesis(kind, hypothesis, lm_score, total):
    if kind == "srilm":
        return " ".join([f"{hypothesis.acoustic:.7g} {lm_score:.7g} {hypothesis.num_words}"] + hypothesis.words)
    if kind == "nbest1":
        return " ".join([f"({format_bytelog(log10_to_bytelog(total))})"] + hypothesis.words)
    if kind == "nbest2":
        return _format_nbest2(hypothesis, lm_score)
    raise ValueError(f"no single-line form for format {kind}")


def _format_nbest2(hypothesis, word_lm_scores):
    """Words get their new g: (bytelog); the score in parentheses is sum a: + sum g: over the
    words, which SRILM's reader checks."""
    new_lm = iter(word_lm_scores)
    parts, total = [], 0.0
    for token in hypothesis.tokens:
        lm = token.lm
        if token.is_word:
            bytelog = log10_to_bytelog(next(new_lm))
            lm = format_bytelog(bytelog)
            total += float(token.acoustic) + bytelog
        parts.append(f"{token.name} ( st: {token.start} et: {token.end} g: {lm} a: {token.acoustic} )")
    return " ".join([f"({format_bytelog(total)})"] + parts)


def format_cost(log10p):
    """A negated natural log, as Kaldi's cost files hold it (Kaldi writes float costs)."""
    return f"{-log10p * LN10:.7g}"
