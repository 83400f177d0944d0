"""The node order of rwthlm's lattice search and the checks before it
(rwthlm_py.rescoring.lattice_topology)."""

import pytest

from rwthlm_py.errors import InputError
from rwthlm_py.rescoring.htk_lattice import read_lattice
from rwthlm_py.rescoring.lattice_topology import lattice_topology


def lattice_of(tmp_path, times, links):
    """A lattice file with nodes at `times` and links (start, end) carrying word w<k>."""
    lines = [f"N={len(times)} L={len(links)}"]
    lines += [f"I={node} t={time}" for node, time in enumerate(times)]
    lines += [f"J={k} S={start} E={end} W=w{k} a=-1 l=-1" for k, (start, end) in enumerate(links)]
    path = tmp_path / "x.lat"
    path.write_text("\n".join(lines) + "\n")
    return read_lattice(path)


def test_the_order_is_depth_first_topological_then_stable_by_time(tmp_path):
    # node 3 (t=0.1) is reached depth first before node 1 (t=0.1); 2 and 4 share t=0.2
    lattice = lattice_of(tmp_path, [0, 0.1, 0.2, 0.1, 0.2, 0.3],
                         [(0, 3), (0, 1), (3, 2), (1, 4), (2, 5), (4, 5), (1, 2)])
    topology = lattice_topology(lattice)
    # reverse postorder of the depth-first search (links in link order): 0 1 4 3 2 5;
    # then by time, stable: 0 | 1 3 | 4 2 | 5
    assert topology.order == [0, 1, 3, 4, 2, 5]
    assert topology.final == 5
    assert topology.position.tolist() == [0, 1, 4, 2, 3, 5]
    assert topology.outgoing[1] == [1 + 2, 6] and topology.outgoing[5] == []
    assert topology.centiseconds.tolist() == [0, 10, 20, 10, 20, 30]


def test_a_deep_lattice_needs_no_recursion(tmp_path):
    size = 5000
    lattice = lattice_of(tmp_path, [k / 100 for k in range(size)], [(k, k + 1) for k in range(size - 1)])
    assert lattice_topology(lattice).order == list(range(size))


BROKEN = [
    ([0, 0.1, 0.2], [(0, 1), (1, 0), (1, 2)], 6, "link 1 ends in node 0, the start node"),
    ([0, 0.2, 0.1], [(0, 1), (1, 2)], 6, "link 1 goes back in time (from node 1 at t=0.2 to node 2 at t=0.1)"),
    ([0, 0.1, 0.1, 0.2], [(0, 1), (1, 2), (2, 1), (2, 3)], 8, "link 2 closes a cycle"),
    ([0, 0.1, 0.2, 0.1], [(0, 1), (1, 2), (3, 2)], 5, "node 3 cannot be reached from node 0"),
    ([0, 0.1, 0.2], [(0, 1), (0, 2)], None,
     "one final node (without outgoing links), it has 2: 1 (line 3), 2 (line 4)"),
    ([0, 1e300, 2e300], [(0, 1), (1, 2)], 3, "node 1: t=1e+300 is out of range (more than 2^63 centiseconds)"),
    ([], [], None, "the lattice needs one final node (without outgoing links), it has 0"),
]


@pytest.mark.parametrize("times, links, line, message", BROKEN, ids=[message for *_, message in BROKEN])
def test_a_lattice_rwthlm_would_assert_on_is_one_error(tmp_path, times, links, line, message):
    lattice = lattice_of(tmp_path, times, links)
    with pytest.raises(InputError) as raised:
        lattice_topology(lattice)
    assert raised.value.line == line and message in raised.value.message, str(raised.value)
    assert raised.value.path == lattice.path
