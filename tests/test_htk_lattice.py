"""HTK SLF reading and writing back (rwthlm_py.rescoring.htk_lattice): the fields rwthlm
reads and those it asserts on, words on nodes, log bases, and one clear error per kind of
broken file."""

import gzip
import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from rwthlm_py.errors import InputError
from rwthlm_py.rescoring import htk_lattice
from rwthlm_py.rescoring.htk_lattice import EPSILON, Field, Link, read_lattice, rescored_lines
from rwthlm_py.text.textio import read_lines

# An HVite-style lattice: header fields on one line, a comment, quoted words, fields in
# any order, an extra r= field, a link without v=.
HVITE = """VERSION=1.0
UTTERANCE=testf1.mfc
lmscale=12.00 wdpenalty=-0.50
# a comment line
N=4 L=5
I=0 t=0.00
I=1 t=0.25
I=2 t=0.25
I=3 t=0.60
J=0 S=0 E=1 W=the v=1 a=-120.5 l=-1.5
J=1 E=2 S=0 W="a" v=1 a=-118.25 l=-2.25 r=-0.5
J=2 S=1 E=3 W="cat's" v=2 a=-300.0 l=-4.0
J=3 S=2 E=3 W=\"quoted\\\"word\" a=-310.0 l=-5.0
J=4 S=3 E=3 W=!NULL v=1 a=0 l=0
"""


def write(tmp_path, text, name="x.lat", compress=False):
    path = tmp_path / (name + (".gz" if compress else ""))
    if compress:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("compress", [False, True])
def test_an_hvite_lattice_is_read_field_by_field(tmp_path, compress):
    lattice = read_lattice(write(tmp_path, HVITE, compress=compress))
    assert lattice.header == {"VERSION": "1.0", "UTTERANCE": "testf1.mfc", "lmscale": "12.00", "wdpenalty": "-0.50"}
    assert lattice.base == math.e
    assert [node.time for node in lattice.nodes] == [0.0, 0.25, 0.25, 0.6]
    assert [(link.start, link.end, link.word) for link in lattice.links] == [
        (0, 1, "the"), (0, 2, "a"), (1, 3, "cat's"), (2, 3, 'quoted"word'), (3, 3, EPSILON)]
    assert [link.acoustic for link in lattice.links] == [-120.5, -118.25, -300.0, -310.0, 0.0]
    assert [link.lm for link in lattice.links] == [-1.5, -2.25, -4.0, -5.0, 0.0]
    assert [link.pronunciation for link in lattice.links] == ["1", "1", "2", None, "1"]
    assert [link.line for link in lattice.links] == [10, 11, 12, 13, 14]


def test_words_on_nodes_long_field_names_and_base_10(tmp_path):
    text = ("base=10\nNODES=3 LINKS=2\nI=0 time=0.0 WORD=!NULL\nI=1 time=0.3 WORD=hello var=1\n"
            "I=2 time=0.5 WORD=world\nJ=0 START=0 END=1 acoustic=-2 language=-1\nJ=1 START=1 END=2 l=-0.5\n")
    lattice = read_lattice(write(tmp_path, text))
    assert [link.word for link in lattice.links] == ["hello", "world"]
    assert lattice.links[0].acoustic == pytest.approx(-2 * math.log(10), rel=1e-15)
    assert lattice.links[0].lm == pytest.approx(-math.log(10), rel=1e-15)
    assert lattice.links[1].acoustic == 0.0


def test_plain_probabilities_with_base_0(tmp_path):
    text = "base=0\nN=2 L=1\nI=0 t=0\nI=1 t=1\nJ=0 S=0 E=1 W=a a=0.5 l=0.25\n"
    link = read_lattice(write(tmp_path, text)).links[0]
    assert (link.acoustic, link.lm) == (pytest.approx(math.log(0.5)), pytest.approx(math.log(0.25)))


def test_a_positive_acoustic_score_is_a_density_and_accepted(tmp_path):
    text = "N=2 L=1\nI=0 t=0\nI=1 t=1\nJ=0 S=0 E=1 W=a a=12.5 l=-1\n"
    assert read_lattice(write(tmp_path, text)).links[0].acoustic == 12.5


BROKEN = [
    ("N=2 L=1\nI=0 t=0\nI=1 t=1\nJ=0 S=0 E=1 W=a l=-1 junk\n", 4, "malformed field 'junk'"),
    ("N=2 L=1\nI=0 t=0\nI=1 t=1\nJ=0 S=0 E=1 W=a l=-1 \u00a0\n", 4, "malformed field '\u00a0'"),
    ("N=2 L=1\nI=0 t=0\nI=1 t=1\nJ=0 S=0 E=1 W=a l=-1 l=-2\n", 4, "field l= twice"),
    ("N=2 L=1\nI=0 t=0\nI=1 t=1\nJ=0 S=0 E=1 W=a l=-1 language=-2\n", 4, "name the same field"),
    ("N=2 L=1\nI=0 t=0\nI=1 t=1\nJ=0 S=0 E=1 W=\"a l=-1\n", 4, "unterminated quote in W="),
    ("N=2 L=1\nI=0 t=0\nI=1 t=1\nJ=0 S=0 W=a l=-1\n", 4, "link 0 has no E="),
    ("N=2 L=1\nI=0 t=0\nI=1 t=1\nJ=0 E=1 W=a l=-1\n", 4, "link 0 has no S="),
    ("N=2 L=1\nI=0 t=0\nI=1 t=1\nJ=0 S=0 E=2 W=a l=-1\n", 4, "E=2: no such node (N=2)"),
    ("N=2 L=1\nI=0 t=0\nI=1 t=1\nJ=0 S=0 E=1 l=-1\n", 4, "link 0 has no word"),
    ("N=2 L=1\nI=0 t=0\nI=1 t=1\nJ=0 S=0 E=1 W=a a=x l=-1\n", 4, "a=x is not a number"),
    ("N=2 L=1\nI=0 t=0\nI=1 t=1\nJ=0 S=0 E=1 W=a l=0.5\n", 4, "positive LM log-probability"),
    ("N=2 L=1\nI=0 t=0\nI=1\nJ=0 S=0 E=1 W=a l=-1\n", 3, "node 1 has no time"),
    ("N=2 L=1\nI=1 t=0\nI=1 t=1\nJ=0 S=0 E=1 W=a l=-1\n", 3, "node I=1 twice (first on line 2)"),
    ("N=2 L=1\nI=0 t=0\nI=1 t=1\nI=2 t=1\nJ=0 S=0 E=1 W=a l=-1\n", 4, "node id I=2 out of range (N=2)"),
    ("N=3 L=1\nI=0 t=0\nI=2 t=1\nJ=0 S=0 E=2 W=a l=-1\n", 4, "2 node lines, but N=3 (line 1); node I=1 is missing"),
    ("N=2 L=2\nI=0 t=0\nI=1 t=1\nJ=0 S=0 E=1 W=a l=-1\n", 4, "1 link lines, but L=2 (line 1); link J=1 is missing"),
    ("N=2 L=1\nI=0 t=0\nI=1 t=1\nJ=1 S=0 E=1 W=a l=-1\n", 4, "link id J=1 out of range (L=1)"),
    # a declared size is never allocated: only counted against the lines
    ("N=2 L=99999999999999999999\nI=0 t=0\nI=1 t=1\nJ=0 S=0 E=1 W=a l=-1\n", 4,
     "1 link lines, but L=99999999999999999999 (line 1); link J=1 is missing"),
    ("N=2 L=2\nI=0 t=0\nI=1 t=1\nJ=0 S=0 E=1 W=a\nJ=0 S=0 E=1 W=b\n", 5, "link J=0 twice (first on line 4)"),
    ("I=0 t=0\n", 1, "a node line before the size line"),
    ("N=2 L=1\nVERSION=1.0\n", 2, "a header line after the size line"),
    ("VERSION=1.0\n", 1, "no size line"),
    ("N=2\nI=0 t=0\n", 1, "needs both N= (NODES=) and L= (LINKS=)"),
    ("N=-2 L=1\n", 1, "N=-2 is negative"),
    ("base=1\nN=1 L=0\nI=0 t=0\n", 1, "not 1"),
    ("SUBLAT=x\n", 1, "sub-lattices"),
    ("N=2 L=1\nI=0 t=0\nI=1 t=1\nJ=0 I=1 S=0 E=1 W=a\n", 4, "I= (a node) and J= (a link) on one line"),
]


@pytest.mark.parametrize("text, line, message", BROKEN, ids=[message for _, _, message in BROKEN])
def test_a_broken_lattice_is_one_error_naming_file_and_line(tmp_path, text, line, message):
    path = write(tmp_path, text)
    with pytest.raises(InputError) as raised:
        read_lattice(path)
    assert raised.value.path == str(path) and raised.value.line == line, str(raised.value)
    assert message in raised.value.message


def test_nodes_and_links_in_any_order_of_their_ids(tmp_path):
    """HTK reads node and link lines by their ids, whatever their order (rwthlm needs node
    i on the i-th node line)."""
    ordered = read_lattice(write(tmp_path, "N=3 L=2\nI=0 t=0\nI=1 t=1 W=a\nI=2 t=2 W=b\nJ=0 S=0 E=1\nJ=1 S=1 E=2\n"))
    shuffled = read_lattice(write(tmp_path, "N=3 L=2\nI=2 t=2 W=b\nI=0 t=0\nJ=1 S=1 E=2\nI=1 t=1 W=a\nJ=0 S=0 E=1\n"))
    for lattice in (ordered, shuffled):
        assert [(node.id, node.time, node.word) for node in lattice.nodes] == [(0, 0, None), (1, 1, "a"), (2, 2, "b")]
        links = [(link.id, link.start, link.end, link.word) for link in lattice.links]
        assert links == [(0, 0, 1, "a"), (1, 1, 2, "b")]


def test_a_truncated_gzip_lattice_names_the_last_line_read(tmp_path):
    path = tmp_path / "x.lat.gz"
    path.write_bytes(gzip.compress(HVITE.encode())[:-12])
    with pytest.raises(InputError, match="cannot read past this line"):
        read_lattice(path)


def test_rescored_lines_replace_only_the_lm_scores(tmp_path):
    """The input's lines as they were, l= rewritten with six decimals (std::to_string),
    a= of a cleared initial link written as given, a missing l= appended, an unchanged
    link kept."""
    text = ("VERSION=1.0\nN=3 L=3\nI=0 t=0.00\nI=1 t=0.10\nI=2 t=0.20\n"
            "J=0 S=0 E=1 W=<s> v=0 a=-5.0 l=-1.0\n"
            "J=1   S=1  E=2 l=-2.5 W=\"b c\" a=-7.25   r=-0.5\n"
            "J=2 S=0 E=2 W=d a=-9\n")
    lattice = read_lattice(write(tmp_path, text))
    lines = rescored_lines(lattice, [0.0, -1.23456789, -3.5], new_acoustic={0: "0.0"})
    assert lines == ["VERSION=1.0", "N=3 L=3", "I=0 t=0.00", "I=1 t=0.10", "I=2 t=0.20",
                     "J=0 S=0 E=1 W=<s> v=0 a=0.0 l=0.000000",
                     "J=1   S=1  E=2 l=-1.234568 W=\"b c\" a=-7.25   r=-0.5",
                     "J=2 S=0 E=2 W=d a=-9 l=-3.500000"]
    assert rescored_lines(lattice, [None, None, None]) == text.splitlines()


def test_rescored_lines_keep_the_lattice_base(tmp_path):
    text = "base=10\nN=2 L=1\nI=0 t=0\nI=1 t=1\nJ=0 S=0 E=1 W=a l=-1\n"
    lattice = read_lattice(write(tmp_path, text))
    assert rescored_lines(lattice, [-2 * math.log(10)])[-1] == "J=0 S=0 E=1 W=a l=-2.000000"


# -- two ways to one result: runs of lines alike read at once, every other line on its own ----------

def careful(path):
    """The lattice as the careful reader reads it, line by line: what read_lattice must give."""
    return htk_lattice._Reader(str(path)).read(read_lines(path))


def outcome(read, path):
    """Everything a reader gives, to compare: the lattice (floats by repr, so -0.0 is not
    0.0; the links' l= and a= Fields too) or the InputError's file, line and message."""
    try:
        lattice = read(path)
    except InputError as error:
        return ("error", error.path, error.line, error.message)
    return (lattice.path, lattice.header, repr(lattice.base), repr(lattice.nodes), repr(lattice.links), lattice.lines)


def lines_read_alone(path, monkeypatch):
    """How many lines of the lattice in `path` read_lattice reads on their own, not in a
    run of lines alike (the fast way)."""
    alone = []
    add_line = htk_lattice._Reader.add_line
    monkeypatch.setattr(htk_lattice._Reader, "add_line", lambda reader, number, text: (alone.append(number),
                                                                                       add_line(reader, number, text)))
    read_lattice(path)
    monkeypatch.undo()
    return len(alone)


# One lattice, words on nodes, as an HTK decoder writes it (node and link lines all alike) ...
TIMES = [0.0, 0.12, 0.12, 0.31, 0.5, 0.73, 0.73, 0.9]
NODE_WORDS = ["!NULL", "the", "a", "cat's", 'say"hi', "ca\u00f1a", "dog", "</s>"]
LINKS = [(0, 1, -120.5, -1.5), (0, 2, -118.25, -2.25), (1, 3, -300.0, -4.0), (2, 3, -310.0, -5.0), (3, 4, -0.0, -0.0),
         (3, 5, -77.75, -3.125), (4, 6, -50.5, -0.75), (5, 6, -20.0, -2.0), (5, 7, -40.0, -1.0), (6, 7, -10.5, -0.5)]


def decoder_layout():
    nodes = [f"I={k} t={time:.2f} W={as_written(word)} v=1" for k, (time, word) in enumerate(zip(TIMES, NODE_WORDS,
                                                                                                 strict=True))]
    links = [f"J={k} S={s} E={e} a={a:.2f} l={lm:.3f}" for k, (s, e, a, lm) in enumerate(LINKS)]
    return ["VERSION=1.0", "UTTERANCE=u1", f"N={len(TIMES)} L={len(LINKS)}"] + nodes + links


def long_names_reordered_and_quoted():
    """... and the same lattice with the fields' long names in another order, every value
    quoted (with escapes), tabs and runs of spaces between the fields."""
    nodes = [f"time=\"{time:.2f}\"\tI={k}  WORD={htk_lattice.quoted(word)}\tvar=\"1\""
             for k, (time, word) in enumerate(zip(TIMES, NODE_WORDS, strict=True))]
    links = [f"END={e}  START={s}\tJ={k} language=\"{lm:.3f}\" acoustic={a:.2f}  r=0.5  "
             for k, (s, e, a, lm) in enumerate(LINKS)]
    return ["VERSION=1.0", "UTTERANCE=u1", f"NODES={len(TIMES)} LINKS={len(LINKS)}"] + nodes + links


def every_line_its_own():
    """... and with lines that no run shares: comments and blank lines among them, the
    lines in another order of their ids, links before nodes, a space before a line,
    node 0 without v=, a link with a field more."""
    layout = decoder_layout()
    nodes, links = layout[3:3 + len(TIMES)], layout[3 + len(TIMES):]
    nodes[0] = nodes[0].replace(" v=1", "")
    links[4] = links[4] + " n=2"
    body = links[5:] + ["# the nodes", ""] + nodes[::-1] + ["", " " + links[0]] + links[1:5] + [""]
    return layout[:3] + body


def as_written(word):
    """A word as a decoder writes it: quoted where it holds a quote."""
    return htk_lattice.quoted(word) if '"' in word else word


LAYOUTS = {"decoder": decoder_layout, "long names": long_names_reordered_and_quoted, "lines alone": every_line_its_own}


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_lattice_reads_as_the_careful_reader_reads_it_whatever_its_layout(tmp_path, monkeypatch, layout, compress):
    path = write(tmp_path, "\n".join(LAYOUTS[layout]()) + "\n", compress=compress)
    lattice = read_lattice(path)
    assert outcome(read_lattice, path) == outcome(careful, path)
    # the fast way where the lines allow it: all but the header's three lines (and in the last
    # layout the lines unlike the others, and some of those around them)
    alone = lines_read_alone(path, monkeypatch)
    assert alone == 3 if layout != "lines alone" else alone > 3 + 8
    assert [(node.id, node.time, node.word, node.pronunciation) for node in lattice.nodes] == [
        (k, time, word, None if (layout == "lines alone" and k == 0) else "1")
        for k, (time, word) in enumerate(zip(TIMES, NODE_WORDS, strict=True))]
    assert [(link.start, link.end, link.word, link.acoustic, link.lm) for link in lattice.links] == [
        (s, e, NODE_WORDS[e], a, lm) for s, e, a, lm in LINKS]


def test_the_lines_of_a_run_can_say_what_careful_reading_says(tmp_path, monkeypatch):
    """Values that int and float read, as the careful reader does: leading zeros, a plus
    sign, digits of other scripts, underscores; ids past 64 bits; -0."""
    lines = decoder_layout()
    lines[3 + 1] = lines[3 + 1].replace("I=1 ", "I=+1 ")
    lines[3 + 2] = lines[3 + 2].replace("I=2 ", "I=0002 ").replace("t=0.12", "t=1_2e-2")
    lines[-1] = lines[-1].replace("S=6", "S=\u0666").replace("J=9", "J=0_9")
    lines[-2] = lines[-2].replace("E=7", "E=000000000000000000000000007")
    path = write(tmp_path, "\n".join(lines) + "\n")
    lattice = read_lattice(path)
    assert outcome(read_lattice, path) == outcome(careful, path) and lines_read_alone(path, monkeypatch) == 3
    assert (lattice.links[9].start, lattice.links[8].end, lattice.nodes[2].time) == (6, 7, 0.12)
    assert math.copysign(1, lattice.links[4].lm) == -1  # l=-0.000 is -0.0


# A broken lattice read in runs is the same error as line by line: the first problem, its line.
# (line, text replaced, by what, the error or None); the nodes are lines 4-11, the links 12-21.
BROKEN_IN_RUNS = [
    (6, "I=2 ", "I=9 ", "node id I=9 out of range (N=8)"),
    (6, "I=2 ", "I=1 ", "node I=1 twice (first on line 5)"),
    (6, "I=2 ", "I=-2 ", "I=-2 is negative"),
    (6, "I=2 ", "I=99999999999999999999 ", "node id I=99999999999999999999 out of range (N=8)"),
    (6, "t=0.12", "t=inf", "t=inf is not a finite number"),
    (6, "t=0.12", "t=0,12", "t=0,12 is not a number"),
    (6, "W=a", 'W="a', "unterminated quote in W="),
    (6, "W=a", 'W="a"b', "malformed field"),
    (6, "W=a", 'W="a"', None),  # a quoted word is no problem
    (6, "t=0.12 W=a", "W=a t=0.12", None),  # nor fields in another order than the other lines'
    (15, "a=-310.00 l=-5.000", "l=-5.000 a=-310.00", None),
    (15, "a=-310.00", 'a="-310 x"', "a=-310 x is not a number"),
    (5, "W=the ", "", "link 0 has no word: no W= on it or on its end node 1"),
    (15, "J=3 ", "J=12 ", "link id J=12 out of range (L=10)"),
    (15, "J=3 ", "J=2 ", "link J=2 twice (first on line 14)"),
    (15, "S=2", "S=8", "S=8: no such node (N=8)"),
    (15, "E=3", "E=1.0", "E=1.0 is not a whole number"),
    (15, "a=-310.00", "a=nan", "a=nan is not a finite number"),
    (15, "l=-5.000", "l=5", "l=5 is a positive LM log-probability"),
    (15, "l=-5.000", "l=-5 l=-5", "field l= twice"),
    (15, "l=-5.000", "l=-5 language=-5", "l= and language= name the same field"),
    (15, "l=-5.000", "l=-5\x0b", "malformed field"),
    (15, "l=-5.000", "l=-5 \u00a0", "malformed field '\u00a0'"),
    (15, "S=2", "S=2 I=2", "I= (a node) and J= (a link) on one line"),
    (3, "L=10", "L=9223372036854775808", "10 link lines, but L=9223372036854775808 (line 3)"),
    (1, "VERSION=1.0", "base=0", "a=-120.50 is a negative probability (base=0)"),
]


@pytest.mark.parametrize("line, old, new, message", BROKEN_IN_RUNS,
                         ids=[f"{line}: {new}" for line, _, new, _ in BROKEN_IN_RUNS])
def test_a_broken_line_in_a_run_is_the_error_line_by_line_reading_gives(tmp_path, monkeypatch, line, old, new,
                                                                         message):
    lines = decoder_layout()
    assert old in lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old, new)
    path = write(tmp_path, "\n".join(lines) + "\n")
    assert outcome(read_lattice, path) == outcome(careful, path)
    if message is None:
        return
    with pytest.raises(InputError) as raised:
        read_lattice(path)
    assert message in raised.value.message, str(raised.value)


# Lattices in every layout, with values the careful reader takes or refuses, and lines out of place
NODE_LAYOUTS = [("I", "t", "W", "v"), ("I", "t"), ("time", "I", "WORD"), ("I", "t", "W", "v", "x1")]
LINK_LAYOUTS = [("J", "S", "E", "a", "l"), ("J", "S", "E", "W", "v", "a", "l"), ("START", "J", "END", "language",
                                                                                   "acoustic", "r"), ("J", "S", "E")]
WORDS = ["a", "the", "!NULL", "</s>", "cat's", "ca\u00f1a", '"a\\"b"', '"x"', "al=b"]  # (no field in al=b)
ODD_VALUES = ["0", "-1", "+2", "007", "1_0", "1.5", "-0", "1e3", "1e400", "nan", "", "x", "\u0663", "9" * 20, "9" * 19,
              '"a b"', '"a\\"b"', '"a', 'a"b', "!NULL", "-5", "5"]
ODD_LINES = ["", "# a comment", "  ", ".", "SUBLAT=x", "N=1 L=1", "VERSION=2", "I=0 J=0", "I=0", "J=0 S=0"]


@st.composite
def lattice_texts(draw):
    num_nodes, num_links = draw(st.integers(1, 10)), draw(st.integers(0, 20))
    node_names, link_names = draw(st.sampled_from(NODE_LAYOUTS)), draw(st.sampled_from(LINK_LAYOUTS))
    separator = draw(st.sampled_from([" ", " ", "  ", "\t", " \t"]))
    node = st.integers(0, num_nodes - 1).map(str)
    score = st.floats(-500, 0).map(lambda value: f"{value:.2f}")
    drawn = {"W": st.sampled_from(WORDS), "WORD": st.sampled_from(WORDS), "v": st.just("1"), "x1": st.just("z"),
             "S": node, "START": node, "E": node, "END": node, "a": score, "acoustic": score, "l": score,
             "language": score, "r": st.just("0.5")}

    def value(name, number):
        if name in ("I", "J"):
            return str(number)
        return f"{number / 10:.2f}" if name in ("t", "time") else draw(drawn[name])

    def line(names, number):
        return separator.join(f"{name}={value(name, number)}" for name in names)

    lines = [line(node_names, k) for k in range(num_nodes)] + [line(link_names, k) for k in range(num_links)]
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(lines)))
        edit = draw(st.sampled_from(["value", "odd line", "twice", "drop", "swap", "field more", "space before"]))
        if edit == "odd line":
            lines.insert(at, draw(st.sampled_from(ODD_LINES)))
        elif at == len(lines):
            continue
        elif edit == "value" and "=" in lines[at]:
            fields = lines[at].split(separator)
            position = draw(st.integers(0, len(fields) - 1))
            fields[position] = fields[position].split("=")[0] + "=" + draw(st.sampled_from(ODD_VALUES))
            lines[at] = separator.join(fields)
        elif edit == "swap":  # two fields of a line
            fields = lines[at].split(separator)
            first, second = draw(st.integers(0, len(fields) - 1)), draw(st.integers(0, len(fields) - 1))
            fields[first], fields[second] = fields[second], fields[first]
            lines[at] = separator.join(fields)
        elif edit == "twice":
            lines.insert(at, lines[at])
        elif edit == "drop":
            del lines[at]
        else:
            lines[at] = lines[at] + " r=1" if edit == "field more" else " " + lines[at]
    header = ["VERSION=1.0", draw(st.sampled_from(["", "base=10", "base=0", "base=2.718282"])),
              f"N={num_nodes} L={num_links}"]
    return "\n".join(header + lines) + "\n"


@pytest.mark.parametrize("bulk_run", [1, htk_lattice.BULK_RUN])
@given(text=lattice_texts())
def test_any_lattice_reads_as_the_careful_reader_reads_it(tmp_path, monkeypatch, bulk_run, text):
    """Read in runs where its lines allow it, or line by line: the same lattice, or the
    same error (the shortest run read at once is one line or BULK_RUN lines)."""
    monkeypatch.setattr(htk_lattice, "BULK_RUN", bulk_run)
    path = write(tmp_path, text)
    assert outcome(read_lattice, path) == outcome(careful, path)


@pytest.mark.parametrize("bulk_run", [1, htk_lattice.BULK_RUN])
@given(text=lattice_texts(), data=st.data())
def test_any_lattice_is_written_back_as_the_careful_reader_writes_it(tmp_path, monkeypatch, bulk_run, text, data):
    """The runs of link lines read at once are written back at once (their l= values
    replaced in the run's text): the same lines as written a link at a time from the
    careful reader's fields, whatever the new scores (None keeps the old one) and the a=
    set (--clear-initial-links)."""
    monkeypatch.setattr(htk_lattice, "BULK_RUN", bulk_run)
    path = write(tmp_path, text)
    try:
        lattice, expected = read_lattice(path), careful(path)
    except InputError:
        assume(False)  # a broken lattice, written back by neither
    count = len(lattice.links)
    scores = st.one_of(st.none(), st.floats(-1e4, 0), st.sampled_from([-0.0, -4e-7, -5e-7, -1e-300, -2.5]))
    new_lm = data.draw(st.lists(scores, min_size=count, max_size=count))
    new_acoustic = dict.fromkeys(data.draw(st.sets(st.integers(0, count - 1))) if count else [], "0.0")
    assert rescored_lines(lattice, new_lm, new_acoustic) == rescored_lines(expected, new_lm, new_acoustic)


def test_a_run_of_link_lines_is_written_back_at_once(tmp_path, monkeypatch):
    """A decoder's lattice is written back with no link line on its own."""
    path = write(tmp_path, "\n".join(decoder_layout()) + "\n")
    lattice = read_lattice(path)
    monkeypatch.setattr(htk_lattice, "_replaced", None)  # the way of a line on its own: not taken
    lines = rescored_lines(lattice, [-1.0] * len(LINKS))
    assert lines[-len(LINKS):] == [f"J={k} S={s} E={e} a={a:.2f} l=-1.000000" for k, (s, e, a, _) in enumerate(LINKS)]


def test_links_read_at_once_find_their_scores_in_their_lines_to_write_them_back(tmp_path, monkeypatch):
    """Where a link's l= and a= are on its line is found only when the lattice is written
    back; as for a link read on its own, l= changes in place, a missing one is appended."""
    text = ("N=3 L=8\nI=0 t=0.00\nI=1 t=0.10\nI=2 t=0.20\n"
            'J=0 S=0 E=1 W="x\\"y" a=-5.0 language=-1.0\n'
            "J=1 S=1 E=2 W=b a=-7.25 language=-2.5\n"
            "J=2 S=0 E=2 W=c a=-9 language=-3\n"
            "J=3 S=1 E=2 W=d a=-1 language=-0.5\n"
            "J=4  S=0\tE=1 W=e acoustic=-2\n"
            "J=5  S=0\tE=2 W=f acoustic=-3.5\n"
            "J=6  S=1\tE=2 W=g acoustic=-4\n"
            "J=7  S=0\tE=2 W=h acoustic=-5\n")
    path = write(tmp_path, text)
    assert lines_read_alone(path, monkeypatch) == 1 + 3  # the size line, the nodes (too few for a run)
    lattice = read_lattice(path)
    assert lattice.links[0] == Link(0, 0, 1, 'x"y', None, -5.0, -1.0, 5, Field("language", "-1.0", 37, 41),
                                    Field("a", "-5.0", 23, 27))
    assert lattice.links[4].lm_field is None and lattice.links[4].acoustic_field == Field("acoustic", "-2", 26, 28)
    lines = rescored_lines(lattice, [-0.25, None, -3.5, -1, -2, None, -1.5, -1.25], new_acoustic={0: "0.0", 4: "0.0"})
    assert lines[4:] == ['J=0 S=0 E=1 W="x\\"y" a=0.0 language=-0.250000',
                         "J=1 S=1 E=2 W=b a=-7.25 language=-2.5",
                         "J=2 S=0 E=2 W=c a=-9 language=-3.500000",
                         "J=3 S=1 E=2 W=d a=-1 language=-1.000000",
                         "J=4  S=0\tE=1 W=e acoustic=0.0 l=-2.000000",
                         "J=5  S=0\tE=2 W=f acoustic=-3.5",
                         "J=6  S=1\tE=2 W=g acoustic=-4 l=-1.500000",
                         "J=7  S=0\tE=2 W=h acoustic=-5 l=-1.250000"]
    assert rescored_lines(lattice, [None] * 8) == text.splitlines()
    assert rescored_lines(lattice, [-1.0] * 8) == rescored_lines(careful(path), [-1.0] * 8)


def test_a_link_is_built_from_its_fields_and_changed_as_any_object(tmp_path):
    """Other modules build links (Link(...)) and change them (--clear-initial-links)."""
    field = Field("l", "-2", 20, 22)
    link = Link(3, 0, 1, "a", None, -1.5, -2.0, 7, field, None)
    assert (link.id, link.start, link.end, link.word, link.pronunciation, link.acoustic, link.lm, link.line,
            link.lm_field, link.acoustic_field) == (3, 0, 1, "a", None, -1.5, -2.0, 7, field, None)
    link.lm = link.acoustic = 0.0
    link.acoustic_field = Field("a", "0", 10, 11)
    assert (link.lm, link.acoustic, link.acoustic_field.value) == (0.0, 0.0, "0")
    assert link == Link(3, 0, 1, "a", None, 0.0, 0.0, 7, field, Field("a", "0", 10, 11))
    assert link != Link(3, 0, 1, "a", None, 0.0, 0.0, 7, None, Field("a", "0", 10, 11))
    assert repr(link).startswith("Link(id=3, start=0, end=1, word='a', pronunciation=None, acoustic=0.0, lm=0.0")


def test_a_line_unlike_the_others_leaves_the_rest_of_its_run_read_at_once(tmp_path, monkeypatch):
    """A line in another layout amid a long run (its fields in another order, a quoted word
    with a space) is read on its own, with a few lines around it, and the rest at once."""
    links = [f"J={k} S=0 E=1 W=w{k} v=1 a=-{k}.5 l=-1.25" for k in range(100)]
    links[40] = 'J=40 E=1 S=0 W=w40 v=1 a=-40.5 l=-1.25'
    links[70] = 'J=70 S=0 E=1 W="w 70" v=1 a=-70.5 l=-1.25'
    path = write(tmp_path, "\n".join(["N=2 L=100", "I=0 t=0", "I=1 t=1"] + links) + "\n")
    assert outcome(read_lattice, path) == outcome(careful, path)
    assert read_lattice(path).links[70].word == "w 70"
    assert lines_read_alone(path, monkeypatch) <= 3 + 2 * (2 * htk_lattice.BULK_RUN)


@pytest.mark.parametrize("line, value, message", [(5, 'x1="a', "unterminated quote in x1="),
                                                  (5, 'x1="a"b', "malformed field 'x1=\"a\"b'"),
                                                  (10, 'n="2', "unterminated quote in n="),
                                                  (10, 'n="2"', None)])
def test_a_field_the_reader_leaves_aside_is_checked_as_any(tmp_path, line, value, message):
    """Fields that give a node or link nothing (x1=, n=) are still whole fields, in a run too."""
    nodes = [f"I={k} t=0.{k} W=w{k} x1=z" for k in range(5)]
    links = [f"J={k} S={k} E={k + 1} n=2 a=-1 l=-2" for k in range(4)]
    lines = ["N=5 L=4"] + nodes + links
    name = value.split("=")[0]
    lines[line - 1] = lines[line - 1].replace(f"{name}=z" if name == "x1" else f"{name}=2", value)
    path = write(tmp_path, "\n".join(lines) + "\n")
    assert outcome(read_lattice, path) == outcome(careful, path)
    if message is None:
        assert read_lattice(path).links[3].word == "w4"
        return
    with pytest.raises(InputError) as raised:
        read_lattice(path)
    assert raised.value.line == line and message in raised.value.message, str(raised.value)
