"""The one exception type for bad input and bad options, and the signal that ends a run.

Every problem a user can cause (a missing or malformed file, an unknown word, a bad network
string, a mismatched model, a nonsensical option) is raised as `InputError`. The command
lines catch it and print its message as one line, without a traceback, and exit non-zero.
The line stays short whatever the input quoted in it (`shortened`) and shows what is
invisible (`visible`).
"""

import re

LONGEST_WORD = 300  # characters of one word (a run without whitespace) shown in full, more than a URL or path takes
WORD_START, WORD_END = 100, 40  # what a longer one keeps
LONGEST_MESSAGE = 1000  # characters of a message shown in full
MESSAGE_START, MESSAGE_END = 700, 200  # what a longer one keeps
OPENING, CLOSING = "'\"`([{<", "'\"`)]}>,.;:!?"  # around a quoted word, kept as they are
_LONG_WORD = re.compile(r"\S{%d,}" % (LONGEST_WORD + 1))


class InputError(Exception):
    """A user-facing error; `str()` is the one line to print.

    `path` and `line` (1-based) locate the problem where there is a file to point to.
    """

    def __init__(self, message, path=None, line=None):
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        super().__init__(self.format())

    def format(self):
        message = visible(shortened(self.message))
        if self.path is None:
            return message
        if self.line is None:
            return f"{self.path}: {message}"
        return f"{self.path}:{self.line}: {message}"


class WriteError(InputError):
    """A file could not be written (a full disk, a quota, an I/O error). It ends the run
    even where bad input ends only one item (a lattice) and the others go on."""


def shortened(text):
    """`text` with every word longer than LONGEST_WORD characters shown as its start, an
    ellipsis, its end and its length, and then, where it is still longer than
    LONGEST_MESSAGE (a quoted line of many words), its middle left out: an unknown token of
    10 MB in a text, or a line of a million words, gives a line that names the place, not
    one as long as the input. A path longer than that keeps its end, the file's name."""
    if len(text) <= LONGEST_WORD:
        return text
    text = _LONG_WORD.sub(lambda match: _shortened_word(match.group()), text)
    if len(text) > LONGEST_MESSAGE:
        left_out = len(text) - MESSAGE_START - MESSAGE_END
        text = f"{text[:MESSAGE_START]} ... ({left_out:,} characters left out) ... {text[-MESSAGE_END:]}"
    return text


def _shortened_word(word):
    """`'abc...xyz' (N characters)`: up to three quotes, brackets or punctuation marks on
    either side stay, N counts the characters between them. A word of at most LONGEST_WORD
    characters between them (a quoted URL of 300) stays whole."""
    start = word[:3]
    opening = start[:len(start) - len(start.lstrip(OPENING))]
    rest = word[len(opening):]
    end = rest[-3:]
    closing = end[len(end.rstrip(CLOSING)):]
    inner = rest[:len(rest) - len(closing)]
    if len(inner) <= LONGEST_WORD:
        return word
    return f"{opening}{inner[:WORD_START]}...{inner[-WORD_END:]}{closing} ({len(inner):,} characters)"


def visible(text):
    """`text` with every character that prints as nothing (a control, a byte-order mark, a
    zero-width space) escaped, so that an error never names an invisible word."""
    if text.isprintable():
        return text
    return "".join(character if character.isprintable() else ascii(character)[1:-1] for character in text)


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: unwinds like Ctrl-C (temporary files are removed on the
    way), and the command line exits with 128 + the signal's number."""

    def __init__(self, signal_number, name):
        self.signal_number, self.name = signal_number, name
        super().__init__(name)
