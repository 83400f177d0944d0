"""ln p of every token of many sentences, with shared prefixes computed once.

Each sentence is scored as perplexity scores a line with verbatim wrapping: the inputs
start with <sb>, the targets are the words and a final <sb>, from the zero state, through
`Network.log_probs`. With y the targets and x the inputs (x[0] = <sb>, x[d] = y[d-1]),
step d (input x[d], target y[d]) depends on y[0..d] alone, so sentences that agree in
their first L targets have the same first L steps.

The distinct sentences are sorted. Without sharing, they are scored `batch_size` at a time
as one [T, B] batch of whole sentences each, exactly as `ppl` forms it. With sharing (a
prefix tree), sentence k agrees with sentence k-1 in its first L_k targets and adds only
the steps d >= L_k as new tree nodes. Of these, only those of depth < L_{k+1} can be
shared (by later sentences); the rest, from e_k = max(L_k, L_{k+1}) on, is k's tail:

    sorted targets   L   e   shared nodes   tail          run
    a b c <sb>       0   2   a b            c <sb>        depth 0: a   depth 1: b   depth 2: d
    a b d <sb>       2   3   d              <sb>          then the tails, each from the state
    a b d e <sb>     3   3                  e <sb>        after the step before it

The shared nodes run depth by depth, `batch_size` nodes at a time in one-step batches whose
state is gathered from their parents (the nodes of depth d-1); then the tails run as whole
sequences, `batch_size` at a time, longest first, like the sentences without sharing.

The two ways differ only in the shapes of the matrix products, so ln p values may differ
in the last float32 bit (the BLAS kernel depends on the shape); sums are exact (math.fsum).
"""

import math

import numpy

from rwthlm_py.model.network import concatenate_states, select_state
from rwthlm_py.runtime import threads
from rwthlm_py.text import data


def score_sentences(network, sentences, batch_size, share_prefixes=True, unk_penalty=0.0,
                    progress=None):
    """ln p (float64 host arrays) of the targets of every sentence: its words, then <sb>.

    `sentences` are sequences of word ids (without <sb>). Identical sentences get the very
    same array. `progress.update(targets, -sum ln p)` is called for every computed batch.
    """
    sb = network.vocab.sb
    distinct, index_of = _distinct(sentences)
    targets = [numpy.asarray(words + (sb,), dtype=numpy.int32) for words in distinct]
    if share_prefixes:
        log_probs = _score_prefix_tree(network, targets, batch_size, unk_penalty, progress)
    else:
        log_probs = []
        for start in range(0, len(targets), batch_size):
            log_probs += _score_whole_sentences(network, targets[start:start + batch_size], unk_penalty, progress)
    return [log_probs[k] for k in index_of]


def sentence_log_prob(token_log_probs):
    """The exactly rounded sum of a sentence's ln p values."""
    return math.fsum(token_log_probs)


def _distinct(sentences):
    """The distinct sentences (tuples) in sorted order, and each sentence's index among them."""
    keys = [tuple(map(int, words)) for words in sentences]
    distinct = sorted(set(keys))
    position = {key: k for k, key in enumerate(distinct)}
    return distinct, [position[key] for key in keys]


def _score_whole_sentences(network, targets, unk_penalty, progress):
    """One [T, B] batch of whole sentences from the zero state, as perplexity forms it."""
    lengths = numpy.asarray([len(t) for t in targets], dtype=numpy.int64)
    ends = numpy.cumsum(lengths)
    stream = numpy.concatenate(targets)
    inputs = numpy.concatenate([numpy.concatenate([[t[-1]], t[:-1]]) for t in targets]).astype(numpy.int32)
    batch = data.make_batch(stream, inputs, ends - lengths, ends)
    flat = _run(network, batch, None, unk_penalty, progress, numpy.full(len(stream), numpy.nan))
    return numpy.split(flat, ends[:-1])


def _score_prefix_tree(network, targets, batch_size, unk_penalty, progress):
    """Shared nodes depth by depth, then every sentence's own tail as whole sequences."""
    tree = PrefixTree(targets)
    node_log_probs = numpy.full(tree.num_nodes, numpy.nan)
    tail_states = _run_shared_nodes(network, tree, batch_size, unk_penalty, progress, node_log_probs)
    _run_tails(network, tree, tail_states, batch_size, unk_penalty, progress, node_log_probs)
    return [node_log_probs[ids] for ids in tree.nodes_of_sentences()]


def _run_shared_nodes(network, tree, batch_size, unk_penalty, progress, node_log_probs):
    """Runs the shared nodes depth by depth in one-step batches of `batch_size` nodes; returns
    the states after the nodes that tails start from, and each such node's row in them."""
    shared = numpy.flatnonzero(~tree.in_tail)
    depths = tree.depth[shared]
    order = numpy.argsort(depths, kind="stable")
    levels = numpy.split(shared[order], numpy.cumsum(numpy.bincount(depths, minlength=1))[:-1])
    level_state, kept, kept_nodes = None, [], []
    for depth, level in enumerate(levels):
        if not len(level):
            break
        parents = numpy.searchsorted(levels[depth - 1], tree.parent[level]) if depth else None
        states = []
        for start in range(0, len(level), batch_size):
            members = level[start:start + batch_size]
            state = select_state(level_state, parents[start:start + batch_size]) if depth else None
            batch = data.make_batch(tree.target, tree.input, members, members + 1)
            states.append(_run(network, batch, state, unk_penalty, progress, node_log_probs, return_state=True))
        level_state = concatenate_states(states)
        starts_tail = numpy.flatnonzero(tree.starts_tail[level])
        kept.append(select_state(level_state, starts_tail))
        kept_nodes.append(level[starts_tail])
    row_of_node = numpy.full(tree.num_nodes, -1, dtype=numpy.int64)
    if kept_nodes:
        kept_nodes = numpy.concatenate(kept_nodes)
        row_of_node[kept_nodes] = numpy.arange(len(kept_nodes))
    return (concatenate_states(kept) if kept else None), row_of_node


def _run_tails(network, tree, tail_states, batch_size, unk_penalty, progress, node_log_probs):
    """Runs each sentence's tail (the nodes no other sentence shares) as one sequence, from
    the state after the node before it, longest tails first so that batches need little
    padding; tails from the root run with the zero state."""
    states, row_of_node = tail_states
    for from_root in (True, False):
        sentences = numpy.flatnonzero((tree.tail_parent < 0) == from_root)
        sentences = sentences[numpy.argsort(tree.tail_first[sentences] - tree.tail_end[sentences], kind="stable")]
        for start in range(0, len(sentences), batch_size):
            chunk = sentences[start:start + batch_size]
            batch = data.make_batch(tree.target, tree.input, tree.tail_first[chunk], tree.tail_end[chunk])
            state = None if from_root else select_state(states, row_of_node[tree.tail_parent[chunk]])
            _run(network, batch, state, unk_penalty, progress, node_log_probs)


class PrefixTree:
    """The prefix tree of sorted, distinct target sequences (each ending in <sb>).

    Sentence k adds a node for each step d >= L_k (L_k: targets shared with sentence k-1);
    a step d < L_k is the node of the last earlier sentence that added one at depth d.
    Per node: depth, input x[d], target y[d] and parent (the node of step d-1, -1 at depth 0).
    Only sentence k+1 and later can share sentence k's nodes, and only those of depth
    < L_{k+1}: the nodes of depth >= e_k = max(L_k, L_{k+1}) are k's tail, which nobody
    shares; they have consecutive ids [tail_first, tail_end), and the tail starts from
    the state after tail_parent, the node of step e_k - 1 (-1: from the root).
    """

    def __init__(self, targets):
        self.lengths = numpy.asarray([len(t) for t in targets], dtype=numpy.int64)
        count, width = len(targets), int(self.lengths.max())
        columns = numpy.arange(width)
        self.valid = columns < self.lengths[:, None]
        words = numpy.full((count, width), -1, dtype=numpy.int64)
        words[self.valid] = numpy.concatenate(targets)
        shared = numpy.zeros(count + 1, dtype=numpy.int64)
        shared[1:count] = numpy.argmax(words[1:] != words[:-1], axis=1)  # they differ before either ends
        new = self.valid & (columns >= shared[:count, None])
        self.num_nodes = int(new.sum())
        new_ids = numpy.full((count, width), -1, dtype=numpy.int64)
        new_ids[new] = numpy.arange(self.num_nodes)
        adder = numpy.maximum.accumulate(numpy.where(new, numpy.arange(count)[:, None], -1), axis=0)
        self.node = numpy.where(self.valid, new_ids[numpy.maximum(adder, 0), columns], -1)
        rows, self.depth = numpy.nonzero(new)  # row-major: the order of the node ids
        self.target = words[rows, self.depth].astype(numpy.int32)
        sb = targets[0][-1]
        self.input = numpy.where(self.depth > 0, words[rows, self.depth - 1], sb).astype(numpy.int32)
        self.parent = numpy.where(self.depth > 0, self.node[rows, numpy.maximum(self.depth - 1, 0)], -1)
        tail_start = numpy.maximum(shared[:count], shared[1:])
        self.in_tail = self.depth >= tail_start[rows]
        self.tail_first = new_ids[numpy.arange(count), tail_start]
        self.tail_end = self.tail_first + self.lengths - tail_start
        before_tail = self.node[numpy.arange(count), numpy.maximum(tail_start - 1, 0)]
        self.tail_parent = numpy.where(tail_start > 0, before_tail, -1)
        self.starts_tail = numpy.zeros(self.num_nodes, dtype=bool)
        self.starts_tail[self.tail_parent[self.tail_parent >= 0]] = True

    def nodes_of_sentences(self):
        """The node of every step, per sentence."""
        return numpy.split(self.node[self.valid], numpy.cumsum(self.lengths)[:-1])


def _run(network, batch, state, unk_penalty, progress, log_probs, return_state=False):
    """Runs one batch; writes ln p at the batch's positions into `log_probs`."""
    with threads.for_rescoring():
        logp, new_state = network.log_probs(batch, state, unk_penalty)
    logp = network.backend.to_numpy(logp).astype(numpy.float64)
    log_probs[batch.positions.ravel()[batch.valid]] = logp
    if progress is not None:
        progress.update(len(logp), -float(logp.sum()))
    return new_state if return_state else log_probs
