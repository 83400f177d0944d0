"""The one exception type for bad input and bad options, and the signal that ends a run.

Every problem a user can cause (a missing or malformed file, an unknown word, a bad network
string, a mismatched model, a nonsensical option) is raised as `InputError`. The command
lines catch it and print its message as one line, without a traceback, and exit non-zero.
"""


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
        message = visible(self.message)
        if self.path is None:
            return message
        if self.line is None:
            return f"{self.path}: {message}"
        return f"{self.path}:{self.line}: {message}"


class WriteError(InputError):
    """A file could not be written (a full disk, a quota, an I/O error). It ends the run
    even where bad input ends only one item (a lattice) and the others go on."""


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
