"""HTK SLF reading and writing back (rwthlm_py.rescoring.htk_lattice): the fields rwthlm
reads and those it asserts on, words on nodes, log bases, and one clear error per kind of
broken file."""

import gzip
import math

import pytest

from rwthlm_py.errors import InputError
from rwthlm_py.rescoring.htk_lattice import EPSILON, read_lattice, rescored_lines

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
