"""Console output: rwthlm's result lines on stdout, progress on stderr.

`Console.say` prints one line to stdout (rwthlm's printed lines, which scripts parse).
`Console.progress` gives a Progress that shows words/s, ETA and the running perplexity:
a line redrawn in place on a terminal, and a plain line every `log_interval` seconds when
stderr is not a terminal, so that CI logs stay readable.

A batch's -ln p may be handed over unread (a `Deferred`: a loss still on the GPU), so that
training need not wait for the device after every batch: Progress reads what it holds
unread, all at once, only when a figure needs it (a line shown, its totals asked for),
and adds the numbers in the order they came, so that every figure is the one that reading
each at once would give.
"""

import math
import os
import sys
import time

MAX_EXPONENT = math.log(sys.float_info.max)  # exp of more overflows


def perplexity_of(neg_log_prob, count):
    """exp(-ln p / count): inf where that overflows (a diverged model; never a 300-digit
    number or an OverflowError), nan for no tokens."""
    if not count:
        return math.nan
    exponent = neg_log_prob / count
    return math.exp(exponent) if exponent < MAX_EXPONENT else math.inf


class Deferred:
    """A number not read yet. `read_together(values)` (a class method of the concrete
    type) reads a list of them at once and returns their floats, in order."""

    @classmethod
    def read_together(cls, values):
        raise NotImplementedError


def read_numbers(values):
    """The floats of `values` (numbers, or Deferred of one type: read at once), in order."""
    deferred = [value for value in values if isinstance(value, Deferred)]
    if not deferred:
        return [float(value) for value in values]
    numbers = iter(type(deferred[0]).read_together(deferred))
    return [next(numbers) if isinstance(value, Deferred) else float(value) for value in values]


class Console:
    def __init__(self, out=None, err=None, log_interval=30.0):
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.log_interval = log_interval

    def silence(self):
        """Nothing more is printed through this console (an MPI rank other than 0: rank 0
        speaks for the job; errors are printed apart)."""
        self.out = self.err = open(os.devnull, "w")  # held for the process's life

    def say(self, line=""):
        self.out.write(f"{line}\n")
        self.out.flush()

    def note(self, line):
        """A diagnostic line on stderr."""
        self.err.write(f"{line}\n")
        self.err.flush()

    def progress(self, label, total_words, unit="words"):
        return Progress(self, label, total_words, unit)


class Progress:
    """Running totals of words (or other units) and -ln p, shown every so often; the
    running perplexity only where the unit is words."""

    def __init__(self, console, label, total_words, unit="words"):
        self.console, self.label, self.total = console, label, max(int(total_words), 1)
        self.unit = unit
        self.words, self._neg_log_prob = 0, 0.0
        self._unread = []  # Deferred -ln p of the last updates, to be added to _neg_log_prob in order
        self.words_before = 0  # done before this run (a resumed epoch): not counted in words/s
        self.start = self.last_shown = time.perf_counter()
        self.interactive = hasattr(console.err, "isatty") and console.err.isatty()
        self.shown = False

    def update(self, words, neg_log_prob=0.0):
        """Adds a batch: its words and its -ln p (a number, or a Deferred read when a
        figure needs it)."""
        self.words += words
        if isinstance(neg_log_prob, Deferred):
            self._unread.append(neg_log_prob)
        else:
            self.neg_log_prob += neg_log_prob
        now = time.perf_counter()
        interval = 0.5 if self.interactive else self.console.log_interval
        if now - self.last_shown >= interval:
            self.last_shown = now
            self._show(now)

    @property
    def neg_log_prob(self):
        """-ln p of the updates so far (reading those left unread)."""
        if self._unread:
            for value in read_numbers(self._unread):
                self._neg_log_prob += value
            self._unread = []
        return self._neg_log_prob

    @neg_log_prob.setter
    def neg_log_prob(self, value):
        if self._unread:
            raise ValueError("the running -ln p has unread parts")
        self._neg_log_prob = value

    @property
    def perplexity(self):
        return perplexity_of(self.neg_log_prob, self.words)

    def resume(self, words, neg_log_prob, seconds=None):
        """Starts from the totals of work done before: by an earlier run (a resumed epoch;
        not counted in words/s), or, given the `seconds` it took, by this process (counted)."""
        self._unread = []
        self.words, self.neg_log_prob = words, neg_log_prob
        if seconds is None:
            self.words_before = words
        else:
            self.start -= seconds

    @property
    def words_per_second(self):
        elapsed = time.perf_counter() - self.start
        return (self.words - self.words_before) / elapsed if elapsed > 0 else 0.0

    def _show(self, now):
        rate = self.words_per_second
        remaining = (self.total - self.words) / rate if rate > 0 else math.inf
        line = (f"{self.label}: {100.0 * self.words / self.total:5.1f}% | {rate:,.0f} {self.unit}/s | "
                f"ETA {format_duration(remaining)}")
        if self.unit == "words":
            line += f" | ppl {self.perplexity:.2f}"
        if self.interactive:
            self.console.err.write(f"\r{line}\x1b[K")
            self.shown = True
        else:
            self.console.err.write(line + "\n")
        self.console.err.flush()

    def close(self):
        if self.shown:
            self.console.err.write("\r\x1b[K")
            self.console.err.flush()


def format_duration(seconds):
    """h:mm:ss, or ? for an unknown (infinite) time."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
