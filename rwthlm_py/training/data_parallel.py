"""Data-parallel training: the ranks of an MPI job share each batch and sum its gradients.

The batch is the one the options describe, whatever the number of ranks N: its B columns
(sequences, or stream columns) are cut into N contiguous blocks, the first B mod N ranks
one column more (`column_block`; a rank may have none and still joins every sum). The
blocks are cut from the schedule's B, not from a smaller last batch, so that a column of
`--word-wrapping stream` stays on its rank and the rank carries its state. Each rank runs
forward and backward on its block alone (`local_batch`, trimmed to its longest sequence),
and one allreduce per batch sums everything the update needs (`GradientSum`): every
gradient, dense or of rows, and -sum ln p, packed into one flat buffer. Every rank then
holds the summed gradient of the whole batch, clips it by its global norm and takes the
same step, so the parameters stay the same on every rank and equal, to rounding, those
of one process with the same options.

Row gradients: the projection's embedding E [V, H] is touched only at the batch's words
(a few hundred of 10,000 in a batch of 700 Zipf-distributed words), so the ranks first
exchange the rows they touched (an allgather of row numbers) and the buffer carries only
the union of those rows. The class output's word weights W_word are packed dense (each
rank writes its rows into a zeroed block): with word classes a batch of a few hundred
targets touches nearly every class, so nearly every row, and the rows gathered from N
ranks would exceed the dense size. benchmarks/README.md has the bytes and the measured
share of the sum in a batch.

Scoring needs no sums per batch: each rank scores its columns of every batch
(`local_sequences`: the same blocks, as sequences batched by the block's width) and the
sums of -ln p and of the counted words are added at the end (`score_on_ranks`).
"""

import weakref

import numpy

from rwthlm_py.layers.row_gradient import RowGradient, Scattered
from rwthlm_py.model.network import concatenate_states, map_state, select_state
from rwthlm_py.runtime import distributed
from rwthlm_py.scoring.evaluate import Scores, score_corpus
from rwthlm_py.text.data import Batch


def column_block(columns, rank, size):
    """[start, stop) of rank `rank`'s columns among `columns`: contiguous blocks, the first
    columns mod size one longer."""
    base, extra = divmod(columns, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


def batch_block(batch_columns, schedule_columns, ranks):
    """This rank's [start, stop) of a batch of `batch_columns` columns: its block of the
    schedule's `schedule_columns`, cut at the batch's width (a last batch may be smaller)."""
    start, stop = column_block(max(schedule_columns, batch_columns), ranks.rank, ranks.size)
    stop = min(stop, batch_columns)
    return min(start, stop), stop


def local_batch(batch, start, stop, trim=True):
    """The Batch of columns [start, stop) of `batch`, its time steps cut to its longest
    sequence where `trim`; None for no columns."""
    if stop <= start:
        return None
    lengths = batch.lengths[start:stop]
    steps = int(lengths.max()) if trim else batch.inputs.shape[0]
    positions = batch.positions[:steps, start:stop]
    return Batch(inputs=batch.inputs[:steps, start:stop], targets=batch.targets[:steps, start:stop],
                 lengths=lengths, positions=positions, valid=numpy.flatnonzero(positions.ravel() >= 0))


def local_state(state, columns):
    """A carried state cut to the first `columns` columns of this rank's block."""
    return select_state(state, slice(0, columns))


def local_sequences(sequences, batch_size, ranks):
    """(this rank's sequences, their batch size): column block k of every batch of
    `batch_size` sequences, so that batching them by the block's width gives this rank's
    columns of each batch (batches without any end the list early)."""
    start, stop = column_block(batch_size, ranks.rank, ranks.size)
    index = numpy.arange(len(sequences))
    mine = (index % batch_size >= start) & (index % batch_size < stop)
    return sequences.take(index[mine]), stop - start


def score_on_ranks(network, corpus, sequences, batch_size, ranks, **scoring):
    """score_corpus over the ranks: each scores its columns of every batch; the summed
    Scores (log_prob, num_targets and num_sb summed; the others as the corpus has them)."""
    if ranks.size == 1:
        return score_corpus(network, corpus, sequences, batch_size, **scoring)
    mine, width = local_sequences(sequences, batch_size, ranks)
    if len(mine):
        scores = score_corpus(network, corpus, mine, width, **scoring)
        sums = [scores.log_prob, scores.num_targets, scores.num_sb]
    else:
        sums = [0.0, 0, 0]
    log_prob, num_targets, num_sb = ranks.sum(sums)
    return Scores(log_prob, int(num_targets), int(num_sb), corpus.num_lines, corpus.unk_count,
                  oov_count=corpus.oov_count)


class GradientSum:
    """One flat buffer on the network's device holding every gradient and the batch's loss;
    `sum` packs this rank's, sums the buffer over the ranks and hands the sums back to the
    network as its gradients.

    A gradient of scattered rows (an embedding's: RowGradient pieces that add to word ids)
    takes only the rows some rank touched: the ranks first exchange their rows (an
    allgather of row numbers, a few thousand integers), and the buffer holds those rows of
    the gradient, compact. Every other gradient, row gradients of other pieces included
    (the word weights of a class output, which a batch touches nearly all of), is packed
    dense. With `sparse_rows` False every gradient is packed dense (for measurements)."""

    sparse_rows = True

    def __init__(self, network, ranks, summer):
        self.backend, self.ranks, self.summer = network.backend, ranks, summer
        self.entries = [(module, name, module.params[name].shape)
                        for module in network.modules.values() for name in module.grads]
        self.has_rows = any(isinstance(module.grads[name], RowGradient) for module, name, _ in self.entries)
        size = sum(int(numpy.prod(shape)) for _, _, shape in self.entries)
        self.buffer = network.xp.empty(size + 1, dtype=network.backend.dtype)
        self.used = 0  # the length of the buffer's last sum, the loss included

    @property
    def nbytes(self):
        """The bytes of the last sum."""
        return self.used * int(self.buffer.itemsize)

    def sum(self, loss):
        """Sums every gradient and `loss` (-sum ln p of this rank's targets, a number or a
        0-d array) over the ranks; the network's grads become the sums. Returns the summed
        loss as a host float."""
        rows, local_ids = self._touched_rows()
        views, offset = [], 0
        for (_, _, shape), entry_rows in zip(self.entries, rows, strict=True):
            view_shape = shape if entry_rows is None else (len(entry_rows),) + tuple(shape[1:])
            size = int(numpy.prod(view_shape))
            views.append(self.buffer[offset:offset + size].reshape(view_shape))
            offset += size
        for (module, name, _), view, entry_rows, ids in zip(self.entries, views, rows, local_ids, strict=True):
            self._pack(module.grads[name], view, entry_rows, ids)
        self.buffer[offset] = loss
        self.used = offset + 1
        self.summer.sum_in_place(self.buffer[:self.used])
        for (module, name, _), view, entry_rows in zip(self.entries, views, rows, strict=True):
            gradient = module.grads[name]
            if isinstance(gradient, RowGradient):
                gradient.clear()
                touched = slice(None) if entry_rows is None else self.backend.asarray(entry_rows, dtype=numpy.int64)
                gradient.add(touched, view)
            else:
                module.grads[name] = view
                module._untouched.discard(name)
        return float(self.buffer[offset])

    def _touched_rows(self):
        """(per entry the sorted rows every rank's scattered pieces touched, or None where
        it is packed dense; per entry this rank's host ids of each piece, or None)."""
        local_ids = [self._scattered_ids(module.grads[name]) for module, name, _ in self.entries]
        if not self.has_rows or not self.sparse_rows:
            return [None] * len(self.entries), local_ids
        mine = [None if ids is None else numpy.unique(numpy.concatenate(ids)) if ids else numpy.empty(0, numpy.int64)
                for ids in local_ids]
        everyone = self.ranks.all_gather(mine)
        rows = []
        for index in range(len(self.entries)):
            parts = [rank_rows[index] for rank_rows in everyone]
            rows.append(None if any(part is None for part in parts) else numpy.unique(numpy.concatenate(parts)))
        return rows, local_ids

    def _scattered_ids(self, gradient):
        """The host ids of each piece of a row gradient made only of scattered pieces; None
        for any other gradient."""
        if not isinstance(gradient, RowGradient) or not all(isinstance(piece, Scattered) for piece in gradient.pieces):
            return None
        return [self.backend.to_numpy(piece.ids).astype(numpy.int64).ravel() for piece in gradient.pieces]

    def _pack(self, gradient, view, rows, ids):
        if rows is not None:
            view.fill(0)
            for piece, piece_ids in zip(gradient.pieces, ids, strict=True):
                positions = self.backend.asarray(numpy.searchsorted(rows, piece_ids), dtype=numpy.int64)
                self.backend.scatter_add(view, positions, piece.values)
        elif isinstance(gradient, RowGradient):
            view.fill(0)
            gradient.apply(view, 1.0)
        else:
            view[...] = gradient


_sums = weakref.WeakKeyDictionary()
_notes = []  # the lines of device_sum not yet shown


def gradient_sum(network, ranks):
    """The GradientSum of `network` among `ranks`, made at its first use (every rank makes
    it at the same batch: making an NCCL communicator is a collective)."""
    made = _sums.get(network)
    if made is None:
        summer, note = distributed.device_sum(ranks, network.backend)
        if note:
            _notes.append(note)
        made = _sums[network] = GradientSum(network, ranks, summer)
    return made


def pending_notes():
    """The lines device_sum left for the console since the last call (NCCL fallback)."""
    lines = list(_notes)
    _notes.clear()
    return lines


def gather_state(state, ranks, to_numpy):
    """The carried state of every column, on rank 0, in column order (host arrays; None on
    the others): the state of each rank's block, joined. A rank without columns has none."""
    pieces = ranks.gather(map_state(to_numpy, state))
    if pieces is None:
        return None
    pieces = [piece for piece in pieces if piece is not None]
    return concatenate_states(pieces) if pieces else None


def state_block(state, batch_size, ranks):
    """This rank's columns of a whole carried state (saved by another number of ranks)."""
    if state is None or ranks.size == 1:
        return state
    start, stop = column_block(batch_size, ranks.rank, ranks.size)
    return select_state(state, slice(start, stop))

