"""ln p of every token of many sentences, with shared prefixes computed once.

Each sentence is scored as perplexity scores a line with verbatim wrapping: the inputs
start with <sb>, the targets are the words and a final <sb>, from the zero state, through
`Network.log_probs`. With y the targets and x the inputs (x[0] = <sb>, x[d] = y[d-1]),
step d (input x[d], target y[d]) depends on y[0..d] alone, so sentences that agree in
their first L targets have the same first L steps.

The distinct sentences are sorted and taken `batch_size` at a time. Without sharing, such
a batch is one [T, B] batch of whole sentences, exactly as `ppl` forms it. With sharing
(a prefix tree), sentence k of the sorted batch agrees with sentence k-1 in its first L_k
targets and adds only the steps d >= L_k as new tree nodes; the nodes are then run depth
by depth, all nodes of depth d in one one-step batch whose state is gathered from their
parents, the nodes of depth d-1:

    sorted targets   L   new nodes (depths)      depth   0  1  2  3  4
    a b c <sb>       0   0 1 2 3                  nodes   1  1  2  4  1
    a b d <sb>       2   2 3
    a b d e <sb>     3   3 4

The two ways differ only in the shapes of the matrix products, so ln p values may differ
in the last float32 bit (the BLAS kernel depends on the shape); sums are exact (math.fsum).
"""

import math

import numpy

from rwthlm_py import data
from rwthlm_py.network import select_state


def score_sentences(network, sentences, batch_size, share_prefixes=True, unk_penalty=0.0,
                    progress=None):
    """ln p (float64 host arrays) of the targets of every sentence: its words, then <sb>.

    `sentences` are sequences of word ids (without <sb>). Identical sentences get the very
    same array. `progress.update(targets, -sum ln p)` is called for every computed batch.
    """
    sb = network.vocab.sb
    distinct, index_of = _distinct(sentences)
    targets = [numpy.asarray(words + (sb,), dtype=numpy.int32) for words in distinct]
    score_batch = _score_prefix_tree if share_prefixes else _score_whole_sentences
    log_probs = []
    for start in range(0, len(targets), batch_size):
        log_probs += score_batch(network, targets[start:start + batch_size], unk_penalty, progress)
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


def _score_prefix_tree(network, targets, unk_penalty, progress):
    """The sentences' steps as prefix-tree nodes, run depth by depth."""
    tree = PrefixTree(targets)
    node_log_probs = numpy.full(tree.num_nodes, numpy.nan)
    state = None
    order = numpy.argsort(tree.depth, kind="stable")
    levels = numpy.split(order, numpy.cumsum(numpy.bincount(tree.depth))[:-1])
    for depth, members in enumerate(levels):
        width = len(members)
        batch = data.Batch(inputs=tree.input[members][None, :], targets=tree.target[members][None, :],
                           lengths=numpy.ones(width, dtype=numpy.int64), positions=members[None, :],
                           valid=numpy.arange(width))
        if depth > 0:
            state = select_state(state, numpy.searchsorted(levels[depth - 1], tree.parent[members]))
        state = _run(network, batch, state, unk_penalty, progress, node_log_probs, return_state=True)
    return [node_log_probs[ids] for ids in tree.nodes_of_sentences()]


class PrefixTree:
    """The prefix tree of sorted, distinct target sequences (each ending in <sb>).

    Sentence k adds a node for each step d >= L_k (L_k: targets shared with sentence k-1);
    a step d < L_k is the node of the last earlier sentence that added one at depth d.
    Per node: depth, input x[d], target y[d] and parent (the node of step d-1, -1 at depth 0).
    """

    def __init__(self, targets):
        self.lengths = numpy.asarray([len(t) for t in targets], dtype=numpy.int64)
        count, width = len(targets), int(self.lengths.max())
        columns = numpy.arange(width)
        self.valid = columns < self.lengths[:, None]
        words = numpy.full((count, width), -1, dtype=numpy.int64)
        words[self.valid] = numpy.concatenate(targets)
        shared = numpy.zeros(count, dtype=numpy.int64)
        shared[1:] = numpy.argmax(words[1:] != words[:-1], axis=1)  # sentences differ before either ends
        new = self.valid & (columns >= shared[:, None])
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

    def nodes_of_sentences(self):
        """The node of every step, per sentence."""
        return numpy.split(self.node[self.valid], numpy.cumsum(self.lengths)[:-1])


def _run(network, batch, state, unk_penalty, progress, log_probs, return_state=False):
    """Runs one batch; writes ln p at the batch's positions into `log_probs`."""
    logp, new_state = network.log_probs(batch, state, unk_penalty)
    logp = network.backend.to_numpy(logp).astype(numpy.float64)
    log_probs[batch.positions.ravel()[batch.valid]] = logp
    if progress is not None:
        progress.update(len(logp), -float(logp.sum()))
    return new_state if return_state else log_probs
