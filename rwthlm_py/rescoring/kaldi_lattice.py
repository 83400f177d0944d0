"""Kaldi lattices in text form: reading archives, writing them back, and the symbol table.

Only the file format lives here (the search and the conversion to its lattice are
elsewhere). A text archive, as `lattice-copy ark:1.lat.gz ark,t:-` prints it (Kaldi's
TableWriter writes `key `, the lattice writer a newline, the lattice and an empty line):

    utt-1                               the key, on a line of its own (Kaldi writes `key `)
    0<TAB>1<TAB>3<TAB>1.5,20.25,4_4_9   a CompactLattice arc: src dst word weight
    1<TAB>2<TAB>0<TAB>0.5,3,9           (word 0: epsilon)
    2<TAB>2.25,1,                       a final state with its weight
                                        an empty line ends the lattice

CompactLattice (the default) weights are `graph,acoustic,tids` (transition ids joined
by `_`, none after the last comma), Lattice (`--write-compact=false`) weights
`graph,acoustic`, arcs then `src dst tid word [weight]` (tid 0: no frame). Both costs
are negated natural logs: the graph cost (LM, transition and pronunciation costs) and
the unscaled acoustic cost. A weight of 0,0 with no tids is written nowhere (a line
without weight has it), a final state without weight is a bare `state`; `Infinity`
stands for an infinite cost (the weight Zero, a state that is not final). Fields are
separated by tabs or spaces; the first line's state is the start state; the states may
come in any order. An empty lattice is a key followed by the empty line. (Kaldi:
src/fstext/lattice-weight.h, src/lat/kaldi-lattice.cc, src/util/kaldi-table-inl.h.)

Read as Kaldi's LatticeReader reads them (a lattice is compact unless one of its lines
is plain), but strictly: each of these is an InputError naming the file and line

    a key line with more than the key, a line of more than 5 fields or one that fits
    neither form, plain and compact lines in one lattice, a state, word or transition
    id that is not a whole number >= 0, a weight that is not `g,a` (or `g,a,tids`), a
    cost that is no number (NaN, Kaldi's BadNumber), an arc with an infinite cost, a
    final weight with one infinite cost, a binary archive (not text: convert it with
    `lattice-copy ark:IN ark,t:OUT`)

Written (`lattice_lines`) as Kaldi's FstPrinter writes them: the start state's lines
first, then the other states in number order, each state's arcs followed by its final
line; tabs; costs as C++ streams print floats at Kaldi's precision 7 (`%.7g`).
"""

import dataclasses
import gzip
import math
import re

from rwthlm_py.errors import InputError
from rwthlm_py.text.textio import DEFAULT_ENCODING, decode_line, open_binary, split_words

FST_MAGIC = b"\xd6\xfd\xb2\x7e"  # OpenFst's binary header (2125659606, little-endian)
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
INFINITIES = {"infinity": math.inf, "inf": math.inf, "-infinity": -math.inf, "-inf": -math.inf}
TRANSITION_IDS = re.compile(r"(?:\d+(?:_\d+)*)?")
EPSILON_ID = 0


@dataclasses.dataclass(slots=True)
class Arc:
    source: int
    target: int
    word: int  # the word id (the output label); 0: epsilon
    graph: float  # graph cost
    acoustic: float  # acoustic cost
    transitions: str  # compact: the transition ids as written (`4_4_9`, or ''); plain: the input label
    frames: int  # frames the arc takes: compact, its transition ids; plain, 1 where its input label is not 0
    line: int


@dataclasses.dataclass(slots=True)
class Final:
    state: int
    graph: float
    acoustic: float
    transitions: str  # compact: the final weight's transition ids; plain: ''
    frames: int
    line: int


@dataclasses.dataclass
class KaldiLattice:
    key: str
    path: str
    line: int  # the key's line
    compact: bool  # CompactLattice (else Lattice)
    start: int  # the start state; None for an empty lattice
    arcs: list  # Arc, in the order read
    finals: list  # Final, for the states with a weight other than Zero


# -- words.txt ----------------------------------------------------------------------------------

def read_symbols(path, encoding=DEFAULT_ENCODING):
    """A symbol table (words.txt, `word id` lines) as {id: word}; a line that is not two
    fields, an id that is not a whole number >= 0 and a word or id given twice are
    InputErrors naming the line."""
    words, ids = {}, {}
    for line, text in _lines(path, encoding):
        fields = split_words(text)
        if not fields:
            continue
        if len(fields) != 2 or not fields[1].isdigit():
            raise InputError("expected `word id` (a symbol table such as words.txt)", path, line)
        word, number = fields[0], int(fields[1])
        if number in words:
            raise InputError(f"id {number} is given twice (first to '{words[number]}' on line {ids[words[number]]})",
                             path, line)
        if word in ids:
            raise InputError(f"'{word}' is given twice (first on line {ids[word]})", path, line)
        words[number], ids[word] = word, line
    if not words:
        raise InputError("the symbol table is empty", path)
    return words


# -- reading archives ---------------------------------------------------------------------------

def read_archive(path, encoding=DEFAULT_ENCODING, wanted=None):
    """Yields the KaldiLattice of every key of a text archive (plain or gzip), in order;
    with `wanted` (a range of their places, from 0) only those, the lines of the others
    skipped unread (a job's part of an archive)."""
    path = str(path)
    lattice, place, skipping = None, -1, False
    for line, text in _lines(path, encoding):
        fields = split_words(text)
        if skipping:
            skipping = bool(fields)
            continue
        if lattice is None:
            if not fields:
                continue  # Kaldi skips whitespace before a key
            place += 1
            if wanted is not None and place not in wanted:
                skipping = True
                continue
            if len(fields) != 1:
                raise InputError(f"expected a key on a line of its own (as `ark,t:` archives have it), not "
                                 f"'{text.strip()}'", path, line)
            lattice = _LatticeReader(fields[0], path, line)
        elif not fields:
            yield lattice.finish()
            lattice = None
        else:
            lattice.add(fields, line)
    if lattice is not None:  # Kaldi reads a last lattice without its empty line
        yield lattice.finish()


def count_lattices(path):
    """How many lattices an archive holds, for a progress line (lattice_sizes)."""
    return len(lattice_sizes(path))


def lattice_sizes(path):
    """The lines of every lattice of an archive, the measure of its work: its keys, found
    fast in the raw bytes as the lines that follow an empty line or begin the file, as
    read_archive finds them (exact for archives written by Kaldi; broken ones are reported
    by read_archive)."""
    sizes, after_empty = [], True
    try:
        with open_binary(path) as handle:
            for raw in handle:
                empty = not raw.strip()
                if after_empty and not empty:
                    sizes.append(1)
                    after_empty = False
                elif empty:
                    after_empty = True
                else:
                    sizes[-1] += 1
    except (InputError, OSError, EOFError, gzip.BadGzipFile):
        pass  # read_archive says what is wrong, when the archive's turn comes
    return sizes


def _lines(path, encoding):
    """(line number, text) of a text file, refusing a binary Kaldi file in one line."""
    line_number = 0
    try:
        with open_binary(path) as handle:
            for line_number, raw in enumerate(handle, start=1):
                if FST_MAGIC in raw or b"\0" in raw:
                    raise InputError("a binary Kaldi archive: rwthlm-py reads text archives (convert it with "
                                     "`lattice-copy ark:IN ark,t:OUT`)", path, line_number)
                yield line_number, decode_line(raw, path, line_number, encoding)
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise InputError(f"cannot read past this line: {error}", path, line_number) from None


class _LatticeReader:
    """The lines of one lattice; its form (compact or plain) is fixed by the first line
    that fits only one of them."""

    def __init__(self, key, path, line):
        self.lattice = KaldiLattice(key, path, line, True, None, [], [])
        self.form = None  # "compact", "plain", or None while every line fits both
        self.form_line = None  # the line that fixed it
        self.final_lines = {}  # state -> the line of its final weight
        self.path = path

    def add(self, fields, line):
        if len(fields) > 5:
            raise InputError(f"{len(fields)} fields: a lattice line has at most 5 (src dst tid word weight)",
                             self.path, line)
        state = self.whole_number(fields[0], "state", line)
        if self.lattice.start is None:
            self.lattice.start = state
        if len(fields) == 1:
            self.add_final_state(Final(state, 0.0, 0.0, "", 0, line))
        elif len(fields) == 2:
            self.add_final(state, fields[1], line)
        else:
            self.add_arc(state, fields, line)

    def add_final(self, state, text, line):
        if text.count(",") not in (1, 2):
            raise InputError(f"final weight '{text}' is not `graph,acoustic,tids` (or `graph,acoustic`)", self.path,
                             line)
        compact = text.count(",") == 2
        self.fix_form("compact" if compact else "plain", line)
        graph, acoustic, transitions = self.weight(text, compact, line)
        if math.isinf(graph) and math.isinf(acoustic) and graph > 0 and acoustic > 0:
            return  # the weight Zero: not final (FstPrinter writes it for a state without arcs)
        if math.isinf(graph) or math.isinf(acoustic):
            raise InputError(f"final weight '{text}' has an infinite cost", self.path, line)
        frames = transitions.count("_") + 1 if transitions else 0
        self.add_final_state(Final(state, graph, acoustic, transitions, frames, line))

    def add_final_state(self, final):
        if final.state in self.final_lines:
            raise InputError(f"state {final.state} has a second final weight (the first is on line "
                             f"{self.final_lines[final.state]})", self.path, final.line)
        self.final_lines[final.state] = final.line
        self.lattice.finals.append(final)

    def add_arc(self, state, fields, line):
        if len(fields) == 3 or (len(fields) == 4 and "," in fields[3]):
            self.fix_form("compact", line)
            word = self.whole_number(fields[2], "word id", line)
            weight = fields[3] if len(fields) == 4 else None
            graph, acoustic, transitions = self.weight(weight, True, line) if weight else (0.0, 0.0, "")
            frames = transitions.count("_") + 1 if transitions else 0
        else:
            self.fix_form("plain", line)
            tid = self.whole_number(fields[2], "transition id", line)
            word = self.whole_number(fields[3], "word id", line)
            graph, acoustic, _ = self.weight(fields[4], False, line) if len(fields) == 5 else (0.0, 0.0, "")
            transitions, frames = str(tid), int(tid != 0)
        if math.isinf(graph) or math.isinf(acoustic):
            raise InputError(f"arc weight '{fields[-1]}' has an infinite cost", self.path, line)
        target = self.whole_number(fields[1], "state", line)
        self.lattice.arcs.append(Arc(state, target, word, graph, acoustic, transitions, frames, line))

    def fix_form(self, form, line):
        if self.form is None:
            self.form, self.form_line = form, line
        elif self.form != form:
            names = {"compact": "CompactLattice", "plain": "Lattice (--write-compact=false)"}
            raise InputError(f"a {names[form]} line in a {names[self.form]} (so read from line {self.form_line})",
                             self.path, line)

    def weight(self, text, compact, line):
        """(graph, acoustic, transition ids) of `g,a,tids` (compact) or `g,a`."""
        parts = text.split(",")
        if len(parts) != (3 if compact else 2):
            form = "`graph,acoustic,tids`" if compact else "`graph,acoustic`"
            raise InputError(f"weight '{text}' is not {form}", self.path, line)
        graph, acoustic = (self.cost(part, text, line) for part in parts[:2])
        transitions = parts[2] if compact else ""
        if TRANSITION_IDS.fullmatch(transitions) is None:
            raise InputError(f"weight '{text}': transition ids '{transitions}' are not whole numbers joined by `_`",
                             self.path, line)
        return graph, acoustic, transitions

    def cost(self, text, weight, line):
        if NUMBER.fullmatch(text):
            return float(text)
        if text.lower() in INFINITIES:
            return INFINITIES[text.lower()]
        raise InputError(f"weight '{weight}': '{text}' is not a number", self.path, line)

    def whole_number(self, text, what, line):
        if not text.isdigit() or not text.isascii():
            raise InputError(f"{what} '{text}' is not a whole number >= 0", self.path, line)
        return int(text)

    def finish(self):
        self.lattice.compact = self.form != "plain"
        return self.lattice


# -- writing ------------------------------------------------------------------------------------

def format_cost(cost):
    """A cost as Kaldi writes it (a C++ stream at precision 7; `Infinity`)."""
    if math.isinf(cost):
        return "Infinity" if cost > 0 else "-Infinity"
    return f"{cost:.7g}"


def lattice_lines(key, compact, arcs, finals):
    """A lattice as Kaldi writes it in a text archive, its key line first and the empty line
    last. `arcs` are (source, target, word, graph, acoustic, transitions) with state 0 the
    start state, `finals` {state: (graph, acoustic, transitions)}."""
    by_state = {}
    for arc in arcs:
        by_state.setdefault(arc[0], []).append(arc)
    states = sorted(set(by_state) | set(finals) | {0}) if arcs or finals else []
    lines = [f"{key} "]
    for state in states:
        for source, target, word, graph, acoustic, transitions in by_state.get(state, ()):
            if compact:
                labels = f"{source}\t{target}\t{word}"
                weight = _compact_weight(graph, acoustic, transitions)
            else:
                labels = f"{source}\t{target}\t{transitions}\t{word}"
                weight = _weight(graph, acoustic)
            lines.append(labels if weight is None else f"{labels}\t{weight}")
        if state in finals:
            graph, acoustic, transitions = finals[state]
            weight = _compact_weight(graph, acoustic, transitions) if compact else _weight(graph, acoustic)
            lines.append(f"{state}" if weight is None else f"{state}\t{weight}")
    return lines + [""]


def _weight(graph, acoustic):
    """A Lattice weight `g,a`; None for One (0,0), which is not written."""
    if graph == 0 and acoustic == 0:
        return None
    return f"{format_cost(graph)},{format_cost(acoustic)}"


def _compact_weight(graph, acoustic, transitions):
    """A CompactLattice weight `g,a,tids`; None for One (0,0 without transition ids)."""
    if graph == 0 and acoustic == 0 and not transitions:
        return None
    return f"{format_cost(graph)},{format_cost(acoustic)},{transitions}"
