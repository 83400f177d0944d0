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

import numpy

from rwthlm_py.errors import InputError


@dataclasses.dataclass
class Topology:
    order: list  # node ids in processing order; order[-1] is the final node
    position: numpy.ndarray  # position[node] = its index in `order`
    outgoing: list  # outgoing[node] = its link ids, in link order
    centiseconds: numpy.ndarray  # each node's time, round(100 t)

    @property
    def final(self):
        return self.order[-1]


def lattice_topology(lattice):
    """The Topology of a lattice (htk_lattice.Lattice), or an InputError."""
    centiseconds = numpy.array([round(100 * node.time) for node in lattice.nodes], dtype=numpy.int64)
    outgoing = [[] for _ in lattice.nodes]
    for link in lattice.links:
        if link.end == 0:
            raise InputError(f"link {link.id} ends in node 0, the start node", lattice.path, link.line)
        if centiseconds[link.end] < centiseconds[link.start]:
            raise InputError(f"link {link.id} goes back in time (from node {link.start} at "
                             f"t={lattice.nodes[link.start].time:g} to node {link.end} at "
                             f"t={lattice.nodes[link.end].time:g})", lattice.path, link.line)
        outgoing[link.start].append(link.id)
    postorder = _depth_first_postorder(lattice, outgoing)
    unreached = sorted(set(range(len(lattice.nodes))) - set(postorder))
    if unreached:
        node = lattice.nodes[unreached[0]]
        raise InputError(f"node {node.id} cannot be reached from node 0 ({len(unreached)} such nodes)",
                         lattice.path, node.line)
    finals = [node for node in range(len(lattice.nodes)) if not outgoing[node]]
    if len(finals) != 1:
        lines = ", ".join(f"{node} (line {lattice.nodes[node].line})" for node in finals[:5])
        raise InputError(f"the lattice needs one final node (without outgoing links), it has {len(finals)}"
                         + (f": {lines}" if finals else ""), lattice.path)
    topological = postorder[::-1]
    order = sorted(topological, key=lambda node: centiseconds[node])  # stable: ties keep the sort
    position = numpy.empty(len(order), dtype=numpy.int64)
    position[order] = numpy.arange(len(order))
    return Topology(order, position, outgoing, centiseconds)


def _depth_first_postorder(lattice, outgoing):
    """The nodes reached from node 0 in depth-first postorder (iteratively: lattices can
    be deeper than Python's recursion limit); a link back to a node on the path is a cycle."""
    state = numpy.zeros(len(lattice.nodes), dtype=numpy.int8)  # 0 new, 1 on the path, 2 done
    postorder = []
    stack = [(0, 0)]  # (node, index of its next outgoing link)
    state[0] = 1
    while stack:
        node, next_link = stack[-1]
        if next_link == len(outgoing[node]):
            stack.pop()
            state[node] = 2
            postorder.append(node)
            continue
        stack[-1] = (node, next_link + 1)
        link = lattice.links[outgoing[node][next_link]]
        if state[link.end] == 1:
            raise InputError(f"link {link.id} closes a cycle (node {link.end} leads back to itself)",
                             lattice.path, link.line)
        if state[link.end] == 0:
            state[link.end] = 1
            stack.append((link.end, 0))
    return postorder
