"""HTK Standard Lattice Format (SLF): reading, and writing back with new LM scores.

Only the file format lives here (the search is elsewhere). A lattice file is a header,
a size line, node lines and link lines, each line `name=value` fields in any order
(values may be "quoted", with backslash escapes), `#` comment lines ignored:

    VERSION=1.0  UTTERANCE=x  lmscale=12  base=2.718282 ...   header (any fields)
    N=4 L=5                                                    size (or NODES= LINKS=)
    I=0 t=0.00 [W=word] [v=1]                                  node (I= names the line)
    J=0 S=0 E=1 [W=word] [v=1] a=-120.5 l=-3.2 [r=...] ...     link (J= names the line)

Field names and their HTK abbreviations: t/time, W/WORD, v/var, S/START, E/END,
a/acoustic, l/language, n/ngram. Scores are log-likelihoods in the header's `base=`
(default e; `base=0` means plain probabilities) and are read as natural logs. A link
without `W=` takes the word of its end node, as HTK defines words on nodes; `!NULL` is
the empty word. rwthlm reads only links with words, `v=` on every link and base e, and
asserts on anything else; here a lattice that breaks the format is an InputError naming
the file and line:

    a malformed field or a field twice on a line, a header after the size line, no size
    line, node or link lines that disagree with N= or L=, a node or link id twice or out
    of range, a link without S= or E=, a link without a word on it or its end node, a node
    without t=, a score that is not a number, a positive LM log-probability (a positive
    acoustic log-likelihood is a density and accepted), sub-lattices

Node and link lines may come in any order of their ids, as HTK reads them (rwthlm needs
node i on the i-th node line).

Reading takes two ways to one result. A decoder writes every node line alike and every
link line alike (`I=12 t=0.35 W=word v=1`): such runs of lines are checked and read a
field at a time, over all their lines at once (_BulkReader), ten times as fast as line by
line. Every other line is read on its own, as before, and a lattice with a problem is read
again line by line (_Reader), so that the error names its first problem and the line.

`rescored_lines` gives the file again with every link's `l=` replaced (rwthlm's `--output
lattice`): the input's lines are kept as they were, only the l= values change (written
like C++'s std::to_string, six decimals, in the file's own base); a link without `l=`
gets one at the end of its line. `slf_lines` writes a new lattice as rwthlm writes its
expanded lattices (base e):

    VERSION=1.0 / UTTERANCE=<name> / lmscale=<scale> / NODES=<n> LINKS=<m>
    I=<k> t=<seconds, 2 decimals>
    J=<k> S=<from> E=<to> W="<word>" v=<pron> a=<%f> l=<%f>
    J=<k> S=<from> E=<to> W="!NULL" v=-1 a=-0 l=-0          (an epsilon link)
"""

import bisect
import dataclasses
import functools
import math
import operator
import re

import numpy

from rwthlm_py.errors import InputError
from rwthlm_py.text.textio import DEFAULT_ENCODING, read_all_lines, read_lines

EPSILON = "!NULL"
QUOTED = r'"(?:[^"\\]|\\.)*"'
FIELD = re.compile(rf'([A-Za-z][A-Za-z0-9]*)=({QUOTED}|\S*)')
QUOTED_VALUE = re.compile(QUOTED)
UNQUOTED_SCORE_FIELD = re.compile(r"(?<![^ \t])(a|acoustic|l|language)=(\S*)")  # in a line without quotes
ESCAPED = re.compile(r"\\(.)")
NODE_FIELDS = {"I": "I", "t": "t", "time": "t", "W": "W", "WORD": "W", "v": "v", "var": "v"}
LINK_FIELDS = {"J": "J", "S": "S", "START": "S", "E": "E", "END": "E", "W": "W", "WORD": "W", "v": "v",
               "var": "v", "a": "a", "acoustic": "a", "l": "l", "language": "l", "n": "n", "ngram": "n"}
SIZE_FIELDS = {"N": "N", "NODES": "N", "L": "L", "LINKS": "L"}
OTHER_ASCII_WHITESPACE = "\r\x0b\x0c\x1c\x1d\x1e\x1f"  # str.split splits at these too
DIGITS_AND_SPACE = b"0123456789 "
INT64_MAX = 2**63 - 1


@dataclasses.dataclass
class Field:
    """One `name=value` of a line: the value unquoted, and where its text is in the line."""

    name: str
    value: str
    start: int
    end: int


@dataclasses.dataclass(slots=True)
class Node:
    id: int
    time: float  # seconds
    word: str  # None where words are on links
    pronunciation: str
    line: int


class Link:
    """One link: Link(id, start, end, word, pronunciation, acoustic, lm, line, lm_field,
    acoustic_field), attributes of those names (a class with slots: a lattice has tens of
    thousands of links)."""

    __slots__ = ("id", "start", "end", "word", "pronunciation", "acoustic", "lm", "line", "_lm_field",
                 "_acoustic_field", "_text")
    ATTRIBUTES = ("id", "start", "end", "word", "pronunciation", "acoustic", "lm", "line", "lm_field", "acoustic_field")

    def __init__(self, id, start, end, word, pronunciation, acoustic, lm, line, lm_field, acoustic_field):
        self.id = id
        self.start, self.end = start, end
        self.word = word  # the link's word, or its end node's
        self.pronunciation = pronunciation  # v=, or None
        self.acoustic = acoustic  # natural log; 0 where the line has no a=
        self.lm = lm  # natural log; 0 where the line has no l=
        self.line = line  # 1-based line number
        self._lm_field, self._acoustic_field = lm_field, acoustic_field
        self._text = None  # the line, where its fields are still to be found in it (_LinkOnLine)

    @property
    def lm_field(self):
        """The l= field as written (a Field), or None."""
        self._find_fields()
        return self._lm_field

    @lm_field.setter
    def lm_field(self, field):
        self._find_fields()
        self._lm_field = field

    @property
    def acoustic_field(self):
        """The a= field as written (a Field), or None."""
        self._find_fields()
        return self._acoustic_field

    @acoustic_field.setter
    def acoustic_field(self, field):
        self._find_fields()
        self._acoustic_field = field

    def _find_fields(self):
        if self._text is None:
            return
        if '"' in self._text:
            fields = {LINK_FIELDS.get(field.name): field for field in line_fields(self._text)}
            self._lm_field, self._acoustic_field = fields.get("l"), fields.get("a")
        else:  # a read line without quotes: name=value fields between blanks, a= and l= found by one scan
            self._lm_field = self._acoustic_field = None
            for match in UNQUOTED_SCORE_FIELD.finditer(self._text):
                field = Field(match.group(1), match.group(2), match.start(2), match.end(2))
                if field.name[0] == "l":
                    self._lm_field = field
                else:
                    self._acoustic_field = field
        self._text = None

    def __eq__(self, other):  # as the dataclass it was
        if not isinstance(other, Link):
            return NotImplemented
        return self._values() == other._values()

    def _values(self):
        return tuple(getattr(self, name) for name in self.ATTRIBUTES)

    def __repr__(self):
        return "Link(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in self.ATTRIBUTES) + ")"


class _LinkOnLine(Link):
    """A link read in bulk: its l= and a= fields are found in its line only when asked for
    (to write the lattice back); finding them for every link would cost as much as reading
    it."""

    __slots__ = ()

    def __init__(self, id, start, end, word, pronunciation, acoustic, lm, line, text):
        # the attributes set here, not by Link.__init__, each on its own: the fastest way, for the many links
        self.id = id
        self.start = start
        self.end = end
        self.word = word
        self.pronunciation = pronunciation
        self.acoustic = acoustic
        self.lm = lm
        self.line = line
        self._text = text


@dataclasses.dataclass
class Lattice:
    path: str
    header: dict  # header field name -> value (as written, unquoted)
    base: float  # the scores' log base (math.e unless the header says otherwise)
    nodes: list  # Node by id
    links: list  # Link by id
    lines: list  # the file's lines, for writing it back
    link_runs: list = dataclasses.field(default_factory=list)  # the _LinkRuns read in bulk, to write back in bulk


@dataclasses.dataclass
class _LinkRun:
    """Link lines read at once (_BulkReader): lines[start:start + len(ids)] hold the links
    `ids` in their order, each line its fields between blanks in one layout, whose l= field
    is named `lm_name` (None: the layout has none)."""

    start: int
    ids: list
    lm_name: str


def read_lattice(path, encoding=DEFAULT_ENCODING):
    """The lattice in `path` (plain or gzip)."""
    lines = read_all_lines(path, encoding)
    if lines is None:  # standard input, or a file that breaks off: line by line, as far as it goes, and why not
        return _Reader(str(path)).read(read_lines(path, encoding))
    try:
        return _BulkReader(str(path), lines).read()
    except (_NotInBulk, InputError):
        return _Reader(str(path)).read(enumerate(lines, start=1))  # says what is wrong, and where first


def line_fields(text):
    """The fields of a line; a malformed field, an unterminated quote or a field name twice
    is a ValueError saying so."""
    fields, position = [], 0
    while True:
        while position < len(text) and text[position] in " \t":
            position += 1
        if position >= len(text):
            return fields
        match = FIELD.match(text, position)
        if match is None or (match.end() < len(text) and text[match.end()] not in " \t"):
            rest = text[position:]
            raise ValueError(f"malformed field '{(rest.split() or [rest])[0]}' (expected name=value)")
        name, raw = match.group(1), match.group(2)
        if raw.startswith('"') and QUOTED_VALUE.fullmatch(raw) is None:
            raise ValueError(f"unterminated quote in {name}=")
        if any(field.name == name for field in fields):
            raise ValueError(f"field {name}= twice on one line")
        fields.append(Field(name, _unquote(raw), match.start(2), match.end(2)))
        position = match.end()


class _Reader:
    """The careful reader: line by line, every check in the order of the lines, so that a
    broken lattice is an InputError at its first problem."""

    def __init__(self, path):
        self.path = path
        self.header, self.base = {}, math.e
        self.num_nodes = self.num_links = None
        self.size_line = None
        self.nodes, self.links, self.lines = {}, {}, []
        self.line = 0

    def read(self, numbered_lines):
        """The lattice of (line number, text) pairs."""
        for line_number, text in numbered_lines:
            self.lines.append(text)
            self.add_line(line_number, text)
        return self.finish()

    def error(self, message, line=None):
        return InputError(message, self.path, self.line if line is None else line)

    def add_line(self, line_number, text):
        self.line = line_number
        stripped = text.strip()
        if not stripped or stripped.startswith("#"):
            return
        fields = self.fields(text)
        names = {field.name for field in fields}
        if "SUBLAT" in names or stripped == ".":
            raise self.error("sub-lattices (SUBLAT=) are not supported")
        if "I" in names and "J" in names:
            raise self.error("I= (a node) and J= (a link) on one line")
        if "I" in names:
            self.add_node(fields)
        elif "J" in names:
            self.add_link(fields)
        elif names & SIZE_FIELDS.keys():
            self.set_size(fields)
        elif self.size_line is not None:
            raise self.error(f"a header line after the size line (line {self.size_line}): '{stripped}'")
        else:
            self.add_header(fields)

    def fields(self, text):
        """The line's fields; a field name twice is an error."""
        try:
            return line_fields(text)
        except ValueError as error:
            raise self.error(str(error)) from None

    def add_header(self, fields):
        for field in fields:
            self.header[field.name] = field.value
            if field.name == "base":
                self.base = self.number(field, "base")
                if self.base < 0 or self.base == 1:
                    raise self.error(f"base={field.value}: the log base must be 0 (probabilities) or positive, not 1")

    def set_size(self, fields):
        if self.size_line is not None:
            raise self.error(f"a second size line (the first is line {self.size_line})")
        self.size_line = self.line
        sizes = {}
        for field in fields:
            key = SIZE_FIELDS.get(field.name)
            if key is None:
                raise self.error(f"unknown field {field.name}= on the size line")
            if key in sizes:
                raise self.error(f"{field.name}= given twice (as N=/NODES= or L=/LINKS=)")
            sizes[key] = self.count(field)
        if "N" not in sizes or "L" not in sizes:
            raise self.error("the size line needs both N= (NODES=) and L= (LINKS=)")
        self.num_nodes, self.num_links = sizes["N"], sizes["L"]
        self.links = {}  # by id: the declared count is checked at the end, never allocated

    def add_node(self, fields):
        values = self.named(fields, NODE_FIELDS, "node")
        node_id = self.count(values["I"])
        if node_id >= self.num_nodes:
            raise self.error(f"node id I={node_id} out of range (N={self.num_nodes})")
        if node_id in self.nodes:
            raise self.error(f"node I={node_id} twice (first on line {self.nodes[node_id].line})")
        if "t" not in values:
            raise self.error(f"node {node_id} has no time (t=)")
        time = self.number(values["t"], "t")
        word = values["W"].value if "W" in values else None
        pronunciation = values["v"].value if "v" in values else None
        self.nodes[node_id] = Node(node_id, time, word, pronunciation, self.line)

    def add_link(self, fields):
        values = self.named(fields, LINK_FIELDS, "link")
        link_id = self.count(values["J"])
        if link_id >= self.num_links:
            raise self.error(f"link id J={link_id} out of range (L={self.num_links})")
        if link_id in self.links:
            raise self.error(f"link J={link_id} twice (first on line {self.links[link_id].line})")
        for name in ("S", "E"):
            if name not in values:
                raise self.error(f"link {link_id} has no {name}=")
        start, end = self.node_id(values["S"]), self.node_id(values["E"])
        acoustic = self.score(values.get("a"), "a")
        lm = self.score(values.get("l"), "l")
        if lm > 0:
            raise self.error(f"link {link_id}: l={values['l'].value} is a positive LM log-probability")
        word = values["W"].value if "W" in values else None
        pronunciation = values["v"].value if "v" in values else None
        self.links[link_id] = Link(link_id, start, end, word, pronunciation, acoustic, lm, self.line,
                                   values.get("l"), values.get("a"))

    def named(self, fields, known, kind):
        """The fields under their short names; unknown names (r=, d=, x1= ...) are kept in
        the line only. A long and a short name for the same field is an error."""
        if self.size_line is None:
            raise self.error(f"a {kind} line before the size line (N= L=)")
        values = {}
        for field in fields:
            key = known.get(field.name)
            if key is None:
                continue
            if key in values:
                raise self.error(f"{values[key].name}= and {field.name}= name the same field")
            values[key] = field
        return values

    def node_id(self, field):
        node = self.count(field)
        if node >= self.num_nodes:
            raise self.error(f"{field.name}={node}: no such node (N={self.num_nodes})")
        return node

    def count(self, field):
        try:
            value = int(field.value)
        except ValueError:
            raise self.error(f"{field.name}={field.value} is not a whole number") from None
        if value < 0:
            raise self.error(f"{field.name}={field.value} is negative")
        return value

    def number(self, field, name):
        try:
            value = float(field.value)
        except ValueError:
            raise self.error(f"{name}={field.value} is not a number") from None
        if not math.isfinite(value):
            raise self.error(f"{name}={field.value} is not a finite number")
        return value

    def score(self, field, name):
        """A score as a natural log (0 where absent)."""
        if field is None:
            return 0.0
        value = self.number(field, name)
        if self.base == 0:  # plain probabilities
            if value < 0:
                raise self.error(f"{name}={field.value} is a negative probability (base=0)")
            return math.log(value) if value > 0 else -math.inf
        return value * math.log(self.base)

    def finish(self):
        if self.size_line is None:
            raise self.error("no size line (N= L=)")
        if len(self.nodes) != self.num_nodes:
            missing = next(node_id for node_id in range(self.num_nodes) if node_id not in self.nodes)
            raise self.error(f"{len(self.nodes)} node lines, but N={self.num_nodes} (line {self.size_line}); "
                             f"node I={missing} is missing")
        self.nodes = [self.nodes[node_id] for node_id in range(self.num_nodes)]
        if len(self.links) != self.num_links:
            missing = next(link_id for link_id in range(self.num_links) if link_id not in self.links)
            raise self.error(f"{len(self.links)} link lines, but L={self.num_links} "
                             f"(line {self.size_line}); link J={missing} is missing")
        self.links = [self.links[link_id] for link_id in range(self.num_links)]
        for link in self.links:
            if link.word is None:
                link.word = self.nodes[link.end].word
                if link.word is None:
                    raise self.error(f"link {link.id} has no word: no W= on it or on its end node {link.end}",
                                     link.line)
        return Lattice(self.path, self.header, self.base, self.nodes, self.links, self.lines)


class _NotInBulk(Exception):
    """The bulk reader met a broken lattice: the careful reader says what is wrong."""


@dataclasses.dataclass
class _Layout:
    """The fields of a node or link line, in their order on the line."""

    kind: str  # "node" or "link"
    names: tuple  # as written
    keys: tuple  # their short names (NODE_FIELDS, LINK_FIELDS), None for a field the reader ignores


BULK_RUN = 4  # fewer lines than this in one layout are read line by line
VALUES_READ = {"node": {"I", "t", "W", "v"}, "link": {"J", "S", "E", "W", "v", "a", "l"}}


class _BulkReader(_Reader):
    """Reads a lattice in runs of lines written alike. A decoder writes every node line and
    every link line in one layout (`I=12 t=0.35 W=word v=1`); each run of such lines is
    checked to be in its first line's layout with a few operations on all of its text at
    once, and its values are converted a column at a time. Every other line (a comment, a
    line in a layout of its own, a quoted value with a space in it, a line that starts with
    a space) is read line by line as the careful reader reads it.

    A broken lattice is _NotInBulk or an InputError, not necessarily at its first problem:
    the careful reader then reads it again (read_lattice), and says what is wrong where."""

    def __init__(self, path, lines):
        super().__init__(path)
        self.lines = lines
        self.node_runs = []  # (ids, nodes) of each run of node lines
        self.link_runs = []  # the columns of each run of link lines, made Links once the node words are known
        self.written_runs = []  # a _LinkRun of each

    def read(self):
        start = self.read_header()
        while start < len(self.lines):
            end = _run_end(self.lines, start)
            self.read_part(start, end)
            start = end
        return self.finish()

    def read_header(self):
        """Reads the lines up to the size line, line by line; the index of the line after it."""
        for index, text in enumerate(self.lines):
            self.add_line(index + 1, text)
            if self.size_line is not None:
                return index + 1
        return len(self.lines)

    def read_part(self, start, stop):
        """Reads lines[start:stop]: at once where they are alike, else half by half, down to
        parts too short to read at once, which it reads line by line (so that a line unlike
        the others costs a few more passes over the lines around it, not reading them all
        line by line)."""
        if self.read_run(start, stop):
            return
        if stop - start < 2 * BULK_RUN:
            for index in range(start, stop):
                self.add_line(index + 1, self.lines[index])
            return
        middle = (start + stop) // 2
        self.read_part(start, middle)
        self.read_part(middle, stop)

    def read_run(self, start, stop):
        """Reads lines[start:stop] at once where they are node or link lines in the layout of
        the first; returns whether they were."""
        if stop - start < BULK_RUN:
            return False
        lines = self.lines[start:stop]
        layout = _layout(lines[0])
        columns = None if layout is None else _columns(lines, layout.names)
        if columns is None:
            return False
        read = VALUES_READ[layout.kind]
        for key, column in zip(layout.keys, columns, strict=True):
            if key not in read:
                column.check_quotes()  # of a field left aside (r=, n= ...), as line_fields checks them
        columns = {key: column for key, column in zip(layout.keys, columns, strict=True) if key in read}
        if layout.kind == "node":
            self.add_nodes(columns, start + 1, len(lines))
        else:
            self.add_links(columns, start + 1, lines)
            lm_names = [name for name, key in zip(layout.names, layout.keys, strict=True) if key == "l"]
            self.written_runs.append(_LinkRun(start, self.link_runs[-1][0], (lm_names or [None])[0]))
        return True

    def add_nodes(self, columns, first_line, count):
        ids = columns["I"].whole_numbers(self.num_nodes)
        times = columns["t"].finite_numbers()
        words, pronunciations = _strings(columns.get("W"), count), _strings(columns.get("v"), count)
        nodes = list(map(Node, ids, times, words, pronunciations, range(first_line, first_line + count)))
        self.node_runs.append((ids, nodes))

    def add_links(self, columns, first_line, lines):
        count = len(lines)
        ids = columns["J"].whole_numbers(self.num_links)
        starts, ends = columns["S"].whole_numbers(self.num_nodes), columns["E"].whole_numbers(self.num_nodes)
        acoustic, lm = self.scores(columns.get("a"), count), self.scores(columns.get("l"), count)
        if max(lm) > 0:
            raise _NotInBulk  # a positive LM log-probability
        words = None if "W" not in columns else columns["W"].strings()
        self.link_runs.append((ids, starts, ends, words, _strings(columns.get("v"), count), acoustic, lm,
                               range(first_line, first_line + count), lines))

    def scores(self, column, count):
        """A column of scores as natural logs (0 where the layout has none), as `score` gives each."""
        if column is None:
            return [0.0] * count
        numbers = column.finite_numbers()
        if self.base == 0:  # plain probabilities
            if min(numbers) < 0:
                raise _NotInBulk
            return [math.log(value) if value > 0 else -math.inf for value in numbers]
        factor = math.log(self.base)
        return numbers if factor == 1 else [value * factor for value in numbers]

    def finish(self):
        if self.size_line is None:
            raise _NotInBulk
        nodes = _by_id(self.nodes, self.node_runs, self.num_nodes)
        node_words = list(map(operator.attrgetter("word"), nodes))
        for link in self.links.values():  # those read line by line
            if link.word is None:
                link.word = node_words[link.end]
                if link.word is None:
                    raise _NotInBulk  # a link without a word on it or its end node
        link_runs = []
        for ids, starts, ends, words, pronunciations, acoustic, lm, line_numbers, lines in self.link_runs:
            if words is None:  # words on nodes
                words = list(map(node_words.__getitem__, ends))
                if None in words:
                    raise _NotInBulk
            link_runs.append((ids, list(map(_LinkOnLine, ids, starts, ends, words, pronunciations, acoustic, lm,
                                            line_numbers, lines))))
        links = _by_id(self.links, link_runs, self.num_links)
        return Lattice(self.path, self.header, self.base, nodes, links, self.lines, self.written_runs)


def _run_end(lines, start):
    """The end of the run of lines from `start` that begin with the character lines[start]
    begins with, found by bisection as though such lines came together (where they do not,
    the run holds lines of another kind, which _columns finds)."""
    first = lines[start][:1]
    following = range(start + 1, len(lines))
    return following.start + bisect.bisect_left(following, True, key=lambda index: lines[index][:1] != first)


def _layout(text):
    """The _Layout of a node or link line that the bulk reader can read, else None."""
    try:
        names = tuple(field.name for field in line_fields(text))
    except ValueError:
        return None
    if "SUBLAT" in names or ("I" in names) == ("J" in names):
        return None
    kind, known, needed = ("node", NODE_FIELDS, {"I", "t"}) if "I" in names else ("link", LINK_FIELDS, {"J", "S", "E"})
    keys = tuple(known.get(name) for name in names)
    given = [key for key in keys if key is not None]
    if len(set(given)) < len(given) or not needed <= set(given):
        return None  # a long and a short name of one field, a field missing
    return _Layout(kind, names, keys)


def _columns(lines, names):
    """Each field's _Column in `lines`, where every line is exactly `names[0]=value
    names[1]=value ...` with spaces or tabs between the fields, none before the first and no
    other white space; else None.

    Why the checks suffice: the words of all lines (split at white space) are as many as
    the lines have fields, and start with `names[0]=`, `names[1]=`, ... in turn; every line
    starts with `names[0]=`, so a line starts where a first field does (a word cannot start
    with two names); so each line holds exactly these fields, which line_fields reads."""
    text = "\n".join(lines)
    words = text.split()
    width, count = len(names), len(lines)
    first = names[0] + "="
    if (len(words) != width * count or not text.startswith(first) or text.count("\n" + first) != count - 1
            or not _spaces_and_tabs_only(text, words)):
        return None  # a line with fields more or less, a space before it, or other white space than space and tab
    columns = []
    for position, name in enumerate(names):
        prefix = name + "="
        column = " ".join(words[position::width])
        if not column.startswith(prefix) or column.count(" " + prefix) != count - 1:
            return None  # a field in another place
        columns.append(_Column(column[len(prefix):], " " + prefix, count))
    return columns


@dataclasses.dataclass
class _Column:
    """The values of one field in a run of lines: `text` is the values with `separator`
    (" name=") between them; each value holds no white space and no separator."""

    text: str
    separator: str
    count: int

    def strings(self):
        """The values, unquoted as `line_fields` unquotes them; a value that starts with a
        quote but is no whole quoted value is _NotInBulk (line_fields says why)."""
        values = self.text.split(self.separator)
        if '"' not in self.text:
            return values
        unquoted = []
        for value in values:
            if value.startswith('"'):
                if QUOTED_VALUE.fullmatch(value) is None:
                    raise _NotInBulk
                value = _unquote(value)
            unquoted.append(value)
        return unquoted

    def check_quotes(self):
        """_NotInBulk where a value starts with a quote but is no whole quoted value."""
        if '"' in self.text:
            self.strings()

    def whole_numbers(self, limit):
        """The values as numbers in range(limit), as `count` reads each. Where they are ASCII
        digits, numpy reads them all at once, as int reads them (in decimal, leading zeros and
        all; a number past 64 bits as the largest 64-bit one, out of range)."""
        if limit <= INT64_MAX and self._digits_only():
            numbers = numpy.fromstring(self.text, dtype=numpy.int64, sep=self.separator)
            if len(numbers) == self.count and numbers.max() < limit:
                return numbers.tolist()
        try:
            numbers = list(map(int, self.strings()))
        except ValueError:
            raise _NotInBulk from None
        if min(numbers) < 0 or max(numbers) >= limit:
            raise _NotInBulk
        return numbers

    def _digits_only(self):
        """Whether every value is one or more ASCII digits: all else in the text is separators."""
        separator, text = self.separator, self.text
        if (not text or not text.isascii() or text.startswith(separator) or text.endswith(separator)
                or separator * 2 in text):
            return False  # (an empty value)
        others = separator.encode().translate(None, DIGITS_AND_SPACE)
        return text.encode().translate(None, DIGITS_AND_SPACE) == others * (self.count - 1)

    def finite_numbers(self):
        """The values as finite floats, as `number` reads each."""
        try:
            numbers = list(map(float, self.strings()))
        except ValueError:
            raise _NotInBulk from None
        if not math.isfinite(sum(numbers)) and not all(map(math.isfinite, numbers)):
            raise _NotInBulk  # (a sum is not finite where a number is not, or where large numbers add up past 1e308)
        return numbers


def _spaces_and_tabs_only(text, words):
    """Whether the white space between the words of the lines in `text` is spaces and tabs
    (str.split splits at any, line_fields at these only)."""
    if text.isascii():
        return not any(character in text for character in OTHER_ASCII_WHITESPACE)
    return sum(map(len, words)) + text.count(" ") + text.count("\t") + text.count("\n") == len(text)


def _strings(column, count):
    """The column's values; None each where there is no such column."""
    return [None] * count if column is None else column.strings()


def _by_id(read_singly, runs, count):
    """The nodes or links by id, 0 to count-1: those read line by line (a dict by id) and
    the (ids, items) of the runs read in bulk; an id missing or twice is _NotInBulk."""
    if not read_singly and len(runs) == 1 and len(runs[0][0]) == count and runs[0][0] == list(range(count)):
        return runs[0][1]  # as decoders write them
    table = dict(read_singly)
    for ids, items in runs:
        table.update(zip(ids, items, strict=True))
    if len(table) != len(read_singly) + sum(len(ids) for ids, _ in runs) or len(table) != count:
        raise _NotInBulk
    return list(map(table.__getitem__, range(count)))


def _unquote(raw):
    if not raw.startswith('"'):
        return raw
    inner = raw[1:-1]
    return ESCAPED.sub(r"\1", inner) if "\\" in inner else inner


def format_score(natural_log, base):
    """A log score in the lattice's base, as rwthlm writes it (std::to_string: %f)."""
    if base == 0:
        return f"{math.exp(natural_log):f}"
    return f"{natural_log / math.log(base):f}"


def rescored_lines(lattice, new_lm, new_acoustic=None):
    """The lattice file's lines with link k's l= set to new_lm[k] (natural logs; None keeps
    the old value), and a= set to the text new_acoustic[k] where given (--clear-initial-links).

    The runs of link lines read at once are written back at once (_rescored_run); the
    other links, and those whose a= changes, a line at a time, by where their fields are."""
    lines = list(lattice.lines)
    new_acoustic = {link_id: text for link_id, text in (new_acoustic or {}).items() if text is not None}
    singly = numpy.ones(len(lattice.links), dtype=bool)
    for run in lattice.link_runs:
        if run.lm_name is not None:
            stop = run.start + len(run.ids)
            lines[run.start:stop] = _rescored_run(lattice.lines[run.start:stop], run, new_lm, lattice.base)
            singly[run.ids] = False
    for link_id in sorted(set(numpy.flatnonzero(singly).tolist()) | new_acoustic.keys()):
        link = lattice.links[link_id]
        replacements = []
        if new_lm[link.id] is not None:
            replacements.append((link.lm_field, "l", new_lm[link.id]))
        if link.id in new_acoustic:
            replacements.append((link.acoustic_field, "a", new_acoustic[link.id]))
        lines[link.line - 1] = _replaced(lattice.lines[link.line - 1], replacements, lattice.base)
    return lines


def _rescored_run(lines, run, new_lm, base):
    """The lines of a _LinkRun with their l= values replaced, all at once: every blank-
    separated word of these lines is one field (the bulk reader checked it), so the value
    of the one word per line that starts with `<lm_name>=` is the l= value."""
    pieces = _run_lm_field(run.lm_name).split("\n" + "\n".join(lines))  # text, value, text, value, ..., text
    if len(pieces) != 2 * len(lines) + 1:
        raise AssertionError(f"{len(pieces) // 2} {run.lm_name}= fields in {len(lines)} link lines read at once")
    values = [new_lm[link_id] for link_id in run.ids]
    if None in values:  # links no hypothesis reached keep their l=
        written = [(position, value) for position, value in enumerate(values) if value is not None]
        for position, text in zip([position for position, _ in written],
                                  format_scores([value for _, value in written], base), strict=True):
            pieces[2 * position + 1] = text
    else:
        pieces[1::2] = format_scores(values, base)
    return "".join(pieces)[1:].split("\n")


@functools.cache
def _run_lm_field(name):
    """The value of a word `<name>=value` of lines, each after a newline, whose fields are
    blank-separated words."""
    return re.compile(rf"(?<=[ \t\n]{re.escape(name)}=)(\S*)")


def format_scores(natural_logs, base):
    """format_score of each, at once (one %-format of them all)."""
    if base == 0 or not natural_logs:
        return [format_score(value, base) for value in natural_logs]
    factor = math.log(base)
    values = tuple(natural_logs) if factor == 1 else tuple(value / factor for value in natural_logs)
    return ("%f\n" * len(values) % values).split("\n")[:-1]


def _replaced(text, replacements, base):
    """`text` with each (field, name, value) written in (a number as a score, a string as
    it is); a missing field is appended."""
    appended = []
    for field, name, value in sorted(replacements, key=lambda item: -(item[0].start if item[0] else -1)):
        written = value if isinstance(value, str) else format_score(value, base)
        if field is None:
            appended.append(f"{name}={written}")
        else:
            text = text[:field.start] + written + text[field.end:]
    return " ".join([text.rstrip()] + appended) if appended else text


def quoted(word):
    """A word as an SLF value in double quotes (backslash before a quote or backslash)."""
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def slf_lines(utterance, lm_scale, times, links):
    """A new base-e lattice: `times` in centiseconds per node, `links` as (start, end, word,
    pronunciation, acoustic, lm) with natural-log scores, or (start, end) for an epsilon link."""
    lines = ["VERSION=1.0", f"UTTERANCE={utterance}", f"lmscale={lm_scale:g}", f"NODES={len(times)} LINKS={len(links)}"]
    lines += [f"I={node} t={time / 100:.2f}" for node, time in enumerate(times)]
    for k, link in enumerate(links):
        if len(link) == 2:
            lines.append(f"J={k} S={link[0]} E={link[1]} W=\"{EPSILON}\" v=-1 a=-0 l=-0")
            continue
        start, end, word, pronunciation, acoustic, lm = link
        pron = "" if pronunciation is None else f" v={pronunciation}"
        lines.append(f"J={k} S={start} E={end} W={quoted(word)}{pron} a={acoustic:f} l={lm:f}")
    return lines
