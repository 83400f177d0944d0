"""The shape of a lattice as rwthlm's search needs it: its node order, and the checks that
make the search well defined.

rwthlm (§7.2) orders the nodes by a depth-first topological sort from node 0 followed by a
stable sort by time (centiseconds, round(100 t)), and takes the last node as the final one.
Here the sort is the reverse postorder of a depth-first search that follows each node's
outgoing links in link order. Where rwthlm asserts (or silently misbehaves), a lattice is
an InputError naming its file and the line of the offending node or link:

    a link into node 0 (the start node)        a link that goes back in time
    a cycle                                    a node that node 0 does not reach
    no node, or more than one, without outgoing links (the final node must be unique)

Every node then reaches the final node, which is last in the order.
"""

import dataclasses
import operator

import numpy

from rwthlm_py.errors import InputError


@dataclasses.dataclass
class Topology:
    order: list  # node ids in processing order; order[-1] is the final node
    position: numpy.ndarray  # position[node] = its index in `order`
    outgoing: list  # outgoing[node] = its link ids, in link order
    centiseconds: numpy.ndarray  # each node's time, round(100 t)
    link_start: numpy.ndarray  # each link's start node
    link_end: numpy.ndarray  # each link's end node

    @property
    def final(self):
        return self.order[-1]


def lattice_topology(lattice):
    """The Topology of a lattice (htk_lattice.Lattice), or an InputError."""
    nodes, links = lattice.nodes, lattice.links
    centiseconds = _centiseconds(lattice)
    starts = list(map(operator.attrgetter("start"), links))
    ends = list(map(operator.attrgetter("end"), links))
    link_start, link_end = numpy.array(starts, dtype=numpy.int64), numpy.array(ends, dtype=numpy.int64)
    _check_links(lattice, link_start, link_end, centiseconds)
    outgoing = [[] for _ in nodes]
    for link_id, start in enumerate(starts):
        outgoing[start].append(link_id)
    postorder, state = _depth_first_postorder(lattice, outgoing, ends)
    unreached = state.count(0)
    if unreached:
        node = nodes[state.index(0)]
        raise InputError(f"node {node.id} cannot be reached from node 0 ({unreached} such nodes)",
                         lattice.path, node.line)
    finals = [node for node, leaving in enumerate(outgoing) if not leaving]
    if len(finals) != 1:
        lines = ", ".join(f"{node} (line {nodes[node].line})" for node in finals[:5])
        raise InputError(f"the lattice needs one final node (without outgoing links), it has {len(finals)}"
                         + (f": {lines}" if finals else ""), lattice.path)
    order = sorted(reversed(postorder), key=centiseconds.tolist().__getitem__)  # stable: ties keep the sort
    position = numpy.empty(len(order), dtype=numpy.int64)
    position[order] = numpy.arange(len(order))
    return Topology(order, position, outgoing, centiseconds, link_start, link_end)


def _centiseconds(lattice):
    """Each node's time as round(100 t) (halves to even, as Python's round); a time that is
    no 64-bit number of centiseconds is an InputError."""
    times = numpy.fromiter(map(operator.attrgetter("time"), lattice.nodes), dtype=numpy.float64,
                           count=len(lattice.nodes))
    with numpy.errstate(over="ignore"):
        scaled = 100 * times
    out_of_range = numpy.abs(scaled) >= 2.0**63
    if out_of_range.any():
        node = lattice.nodes[int(out_of_range.argmax())]
        raise InputError(f"node {node.id}: t={node.time:g} is out of range (more than 2^63 centiseconds)",
                         lattice.path, node.line)
    return numpy.rint(scaled).astype(numpy.int64)


def _check_links(lattice, starts, ends, centiseconds):
    """The first link (in link order) into node 0 or back in time is an InputError."""
    wrong = (ends == 0) | (centiseconds[ends] < centiseconds[starts])
    if not wrong.any():
        return
    link = lattice.links[int(wrong.argmax())]
    if link.end == 0:
        raise InputError(f"link {link.id} ends in node 0, the start node", lattice.path, link.line)
    raise InputError(f"link {link.id} goes back in time (from node {link.start} at "
                     f"t={lattice.nodes[link.start].time:g} to node {link.end} at "
                     f"t={lattice.nodes[link.end].time:g})", lattice.path, link.line)


def _depth_first_postorder(lattice, outgoing, ends):
    """The nodes reached from node 0 in depth-first postorder, and a bytearray that is 0 for
    each node not reached; iteratively: lattices can be deeper than Python's recursion
    limit. A link back to a node on the path is a cycle."""
    state = bytearray(len(lattice.nodes))  # 0 new, 1 on the path, 2 done
    postorder = []
    if not lattice.nodes:
        return postorder, state
    path, leaving = [0], [iter(outgoing[0])]  # the nodes on the path, and the links each has yet to follow
    state[0] = 1
    while path:
        for link_id in leaving[-1]:
            end = ends[link_id]
            if state[end] == 0:
                state[end] = 1
                path.append(end)
                leaving.append(iter(outgoing[end]))
                break
            if state[end] == 1:
                link = lattice.links[link_id]
                raise InputError(f"link {link.id} closes a cycle (node {link.end} leads back to itself)",
                                 lattice.path, link.line)
        else:
            node = path.pop()
            leaving.pop()
            state[node] = 2
            postorder.append(node)
    return postorder, state
