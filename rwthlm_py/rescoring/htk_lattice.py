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

import dataclasses
import math
import re

from rwthlm_py.errors import InputError
from rwthlm_py.text.textio import DEFAULT_ENCODING, read_lines

EPSILON = "!NULL"
QUOTED = r'"(?:[^"\\]|\\.)*"'
FIELD = re.compile(rf'([A-Za-z][A-Za-z0-9]*)=({QUOTED}|\S*)')
NODE_FIELDS = {"I": "I", "t": "t", "time": "t", "W": "W", "WORD": "W", "v": "v", "var": "v"}
LINK_FIELDS = {"J": "J", "S": "S", "START": "S", "E": "E", "END": "E", "W": "W", "WORD": "W", "v": "v",
               "var": "v", "a": "a", "acoustic": "a", "l": "l", "language": "l", "n": "n", "ngram": "n"}
SIZE_FIELDS = {"N": "N", "NODES": "N", "L": "L", "LINKS": "L"}


@dataclasses.dataclass
class Field:
    """One `name=value` of a line: the value unquoted, and where its text is in the line."""

    name: str
    value: str
    start: int
    end: int


@dataclasses.dataclass
class Node:
    id: int
    time: float  # seconds
    word: str  # None where words are on links
    pronunciation: str
    line: int


@dataclasses.dataclass
class Link:
    id: int
    start: int
    end: int
    word: str  # the link's word, or its end node's
    pronunciation: str  # v=, or None
    acoustic: float  # natural log; 0 where the line has no a=
    lm: float  # natural log; 0 where the line has no l=
    line: int  # 1-based line number
    lm_field: Field  # the l= field as written, or None
    acoustic_field: Field  # the a= field as written, or None


@dataclasses.dataclass
class Lattice:
    path: str
    header: dict  # header field name -> value (as written, unquoted)
    base: float  # the scores' log base (math.e unless the header says otherwise)
    nodes: list  # Node by id
    links: list  # Link by id
    lines: list  # the file's lines, for writing it back


def read_lattice(path, encoding=DEFAULT_ENCODING):
    """The lattice in `path` (plain or gzip)."""
    reader = _Reader(str(path))
    for line_number, text in read_lines(path, encoding):
        reader.add_line(line_number, text)
    return reader.finish()


class _Reader:
    def __init__(self, path):
        self.path = path
        self.header, self.base = {}, math.e
        self.num_nodes = self.num_links = None
        self.size_line = None
        self.nodes, self.links, self.lines = {}, {}, []
        self.node_words = {}
        self.line = 0

    def error(self, message, line=None):
        return InputError(message, self.path, self.line if line is None else line)

    def add_line(self, line_number, text):
        self.line = line_number
        self.lines.append(text)
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
        fields, position = [], 0
        while True:
            while position < len(text) and text[position] in " \t":
                position += 1
            if position >= len(text):
                return fields
            match = FIELD.match(text, position)
            if match is None or (match.end() < len(text) and text[match.end()] not in " \t"):
                raise self.error(f"malformed field '{text[position:].split()[0]}' (expected name=value)")
            name, raw = match.group(1), match.group(2)
            if raw.startswith('"') and re.fullmatch(QUOTED, raw) is None:
                raise self.error(f"unterminated quote in {name}=")
            if any(field.name == name for field in fields):
                raise self.error(f"field {name}= twice on one line")
            fields.append(Field(name, _unquote(raw), match.start(2), match.end(2)))
            position = match.end()

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


def _unquote(raw):
    if raw.startswith('"'):
        return re.sub(r"\\(.)", r"\1", raw[1:-1])
    return raw


def format_score(natural_log, base):
    """A log score in the lattice's base, as rwthlm writes it (std::to_string: %f)."""
    if base == 0:
        return f"{math.exp(natural_log):f}"
    return f"{natural_log / math.log(base):f}"


def rescored_lines(lattice, new_lm, new_acoustic=None):
    """The lattice file's lines with link k's l= set to new_lm[k] (natural logs; None keeps
    the old value), and a= set to the text new_acoustic[k] where given (--clear-initial-links)."""
    lines = list(lattice.lines)
    for link in lattice.links:
        replacements = []
        if new_lm[link.id] is not None:
            replacements.append((link.lm_field, "l", new_lm[link.id]))
        if new_acoustic is not None and new_acoustic.get(link.id) is not None:
            replacements.append((link.acoustic_field, "a", new_acoustic[link.id]))
        lines[link.line - 1] = _replaced(lines[link.line - 1], replacements, lattice.base)
    return lines


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
