"""The training loop: epochs, dev perplexity, learning-rate halving with rollback, saving.

rwthlm's schedule (§6.4): every epoch the sequences are shuffled (seeded by the random seed
and the epoch number, so a resumed run sees the same order) and trained with one SGD step
per batch; then the dev perplexity is computed. If it improved (strictly), the model is
saved; otherwise the learning rate is halved and the weights and momentum are rolled back
to the best model in the file, which is written back with the new rate and epoch count.
The file therefore always holds the best model, and a killed run resumes at the next epoch,
or, with --checkpoint-every, from the last save of the epoch in progress (epoch_checkpoint.py).
Epoch 1 of `rwthlm-py train` may begin trained already: the learning-rate search's chosen
trial is its first batches (rate_search_heldout.HeadStart), and it goes on from there.
Training runs until --max-epoch epochs (counted across runs; 0 = for ever). Not in rwthlm:
with --min-improvement F > 1, an epoch that improves the dev perplexity by less than the
factor F is kept but also halves the rate (RNNLM's and newbob's rule), so that training
does not linger at a rate that no longer helps. An epoch whose dev perplexity is not
finite or above DIVERGED times the vocabulary's size (far worse than guessing: the model
diverged) is rolled back even when nothing better was saved yet (epoch 1 returns to the
initial model), and training stops with one line once the rate has fallen below
MIN_LEARNING_RATE (rwthlm would halve for ever), or, with --stop-after-halvings N, once N
epochs in a row have halved it (the count is kept in the model file, so that a resumed run
stops where an uninterrupted one does).

Started as several MPI ranks (`mpiexec -n N`), the ranks share every batch (data_parallel.py):
each trains its block of the batch's columns, the gradients are summed before each step, and
every decision above is taken alike on every rank from the summed figures; rank 0 alone
writes the model, its epoch checkpoints and the events.

This module knows nothing about layers or command lines.
"""

import dataclasses
import itertools
import math
import time

import numpy

from rwthlm_py.model.checkpoint import load_momentum, load_weights, read_model, save_model
from rwthlm_py.output.reporting import Deferred, perplexity_of, read_numbers
from rwthlm_py.output.tensorboard_log import NoLog, options_table
from rwthlm_py.runtime import distributed
from rwthlm_py.scoring.evaluate import network_state_for
from rwthlm_py.text import data
from rwthlm_py.training import data_parallel
from rwthlm_py.training.dropout import DropoutMasks
from rwthlm_py.training.epoch_checkpoint import EpochCheckpoints, EpochPosition, training_settings

BATCHES_PER_POINT = 10  # batches between two points of the per-batch training curves
MIN_LEARNING_RATE = 1e-9  # below this no step changes a float32 weight: training stops
DIVERGED = 10  # a dev perplexity above this many times the vocabulary size is a diverged model


@dataclasses.dataclass
class Schedule:
    batch_size: int = 1
    sequence_length: int = 100
    word_wrapping: str = "fixed"
    max_epoch: int = 0
    shuffling: bool = True
    feedforward: bool = False
    random_seed: int = 1
    debug_no_sb: bool = False
    verbose: bool = False
    unk_penalty: float = 0.0
    gradient_clipping: float = None  # largest gradient norm per predicted word
    min_improvement: float = 1.0  # dev ppl must fall by this factor to keep the rate
    stop_after_halvings: int = 0  # stop after this many halvings in a row (0: never)
    checkpoint_every: float = None  # minutes between saves of the epoch in progress
    dropout: float = 0.0  # probability of dropping a hidden layer's output (dropout.py)
    variational_dropout: bool = False  # one mask for all time steps of a sequence

    def wrap(self, corpus):
        """The corpus cut into sequences in this schedule's layout (data.wrap)."""
        return data.wrap(corpus, self.word_wrapping, self.batch_size, self.sequence_length, self.debug_no_sb)

    def epoch_order(self, sequences, epoch):
        """The sequences (from `wrap`) in the order epoch `epoch` (from 0) trains them:
        shuffled by (seed, epoch) where this schedule shuffles (data.shuffled)."""
        return data.shuffled(sequences, self.random_seed, epoch) if self.shuffles else sequences

    def dropout_masks(self, backend, epoch, batch_number):
        """The DropoutMasks of batch `batch_number` (from 1) of epoch `epoch` (from 0), or None."""
        if not self.dropout:
            return None
        return DropoutMasks(self.dropout, self.variational_dropout, (self.random_seed, epoch, batch_number), backend)

    @property
    def carry_state(self):
        return self.word_wrapping == "stream"

    @property
    def shuffles(self):
        return self.shuffling and not self.carry_state


class DeviceLoss(Deferred):
    """A batch's -sum ln p left where it was computed (a 0-d array of the network's
    backend: sum ln p), so that the batch waits for nothing; read_together reads several
    with one transfer (reporting.Progress does, when a figure needs them). A loss once read
    keeps its number, so the training curves (BatchCurve) and the progress line, which both
    take it, transfer it once."""

    def __init__(self, backend, log_prob_sum):
        self.backend, self.log_prob_sum, self.value = backend, log_prob_sum, None

    @classmethod
    def read_together(cls, values):
        unread = [value for value in values if value.value is None]
        if unread:
            backend = unread[0].backend
            if backend.on_host or len(unread) == 1:
                sums = [value.log_prob_sum for value in unread]
            else:
                sums = backend.to_numpy(backend.xp.stack([value.log_prob_sum for value in unread]))
            for value, log_prob_sum in zip(unread, sums, strict=True):
                value.value, value.log_prob_sum = -float(log_prob_sum), None
        return [value.value for value in values]

    def __float__(self):
        return self.read_together([self])[0]


def train_batch(network, optimizer, batch, state, learning_rate, feedforward=False, clipping=None, dropout=None,
                ranks=None, columns=None, read_loss=True):
    """One rwthlm update (or, with --feedforward, one per time slice); returns (-sum ln p,
    new state). `dropout`: the batch's DropoutMasks, or None. With read_loss=False the
    loss of a plain update is a DeviceLoss, not read yet (a float where it was read anyway:
    among several ranks, or per time slice).

    Among several ranks (`ranks`, the job's distributed.World where None) each trains its
    block of the batch's columns (data_parallel.py; blocks of the schedule's `columns`, the
    batch's own width where None) from the state of its columns, and the update is the
    whole batch's; the loss returned is the whole batch's, the state this rank's."""
    ranks = ranks if ranks is not None else distributed.world()
    if ranks.size > 1:
        return _train_block(network, optimizer, batch, state, learning_rate, feedforward, clipping, dropout, ranks,
                            columns or batch.batch_size)
    if feedforward:
        return _train_slices(network, optimizer, batch, state, learning_rate, clipping, dropout)
    network.zero_grads()
    logp, new_state, _ = network.accumulate_gradients(batch, state, dropout=dropout)
    optimizer.step(learning_rate * clipping_factor(network, batch.num_targets, clipping))
    loss = DeviceLoss(network.backend, logp.sum())
    return (float(loss) if read_loss else loss), new_state


def train_steps(network, optimizer, batches, learning_rate, schedule, epoch=0, first_number=1, state=None):
    """Trains on `batches` one update each, as epoch `epoch` of the schedule does: batch
    numbers (which key the dropout masks) from `first_number`, the recurrent state carried
    from `state` on where the schedule carries it. Yields (batch number, batch, -sum ln p,
    the state after it; None where nothing is carried) after each update; -sum ln p may be
    unread (a DeviceLoss: reporting.Progress reads it when it shows a figure)."""
    for number, batch in enumerate(batches, start=first_number):
        state = network_state_for(state, batch.batch_size) if schedule.carry_state else None
        loss, state = train_batch(network, optimizer, batch, state, learning_rate, schedule.feedforward,
                                  schedule.gradient_clipping, schedule.dropout_masks(network.backend, epoch, number),
                                  columns=schedule.batch_size, read_loss=False)
        yield number, batch, loss, state if schedule.carry_state else None


def snapshot(network):
    """Copies of every parameter, on the network's backend, for restore()."""
    return {name: value.copy() for name, value in network.named_params().items()}


def restore(network, optimizer, weights):
    """The parameters of a snapshot again, and empty momentum (a new trial of a search)."""
    for name, value in network.named_params().items():
        value[...] = weights[name]
    optimizer.reset()


def _train_slices(network, optimizer, batch, state, learning_rate, clipping, dropout):
    loss = 0.0
    for number, (step, _) in enumerate(data.time_slices(batch)):
        network.zero_grads()
        masks = dropout.for_slice(number) if dropout is not None else None
        logp, state, _ = network.accumulate_gradients(step, network.without_recurrence(state), dropout=masks)
        optimizer.step(learning_rate * clipping_factor(network, step.num_targets, clipping))
        loss -= float(logp.sum())
    return loss, state


def _train_block(network, optimizer, batch, state, learning_rate, feedforward, clipping, dropout, ranks, columns):
    """train_batch on this rank's block of columns: the gradients and loss summed over the
    ranks before each step, clipped by the whole batch's norm and target count."""
    start, stop = data_parallel.batch_block(batch.batch_size, columns, ranks)
    steps = batch.inputs.shape[0]
    local = data_parallel.local_batch(batch, start, stop, trim=not feedforward)
    masks = dropout.for_columns(start, stop, steps, batch.batch_size) if dropout is not None else None
    state = data_parallel.local_state(state, stop - start)
    gradient_sum = data_parallel.gradient_sum(network, ranks)
    if not feedforward:
        return _train_summed(network, optimizer, local, batch.num_targets, state, learning_rate, clipping, masks,
                             gradient_sum)
    loss = 0.0
    pieces = data.time_slices(local) if local is not None else itertools.repeat((None, None), steps)
    for number, (step, _) in enumerate(pieces):
        step_masks = masks.for_slice(number) if masks is not None else None
        step_state = network.without_recurrence(state)
        targets = int(numpy.count_nonzero(batch.positions[number] >= 0))
        slice_loss, state = _train_summed(network, optimizer, step, targets, step_state, learning_rate, clipping,
                                          step_masks, gradient_sum)
        loss += slice_loss
    return loss, state


def _train_summed(network, optimizer, local, num_targets, state, learning_rate, clipping, dropout, gradient_sum):
    """One step on the gradients of `local` (this rank's Batch, or None for no targets)
    summed over the ranks; `num_targets` is the whole batch's. Returns (the whole batch's
    -sum ln p, this rank's new state)."""
    network.zero_grads()
    loss, new_state = 0.0, state
    if local is not None and local.num_targets:
        logp, new_state, _ = network.accumulate_gradients(local, state, dropout=dropout)
        loss = -logp.sum()
    total = gradient_sum.sum(loss)
    optimizer.step(learning_rate * clipping_factor(network, num_targets, clipping))
    return total, new_state


def clipping_factor(network, num_targets, clipping):
    """min(1, clipping / (|g| / N)): scaling the step scales the summed gradient g alike.

    With clipping, a 0-d array on the device: the step takes it from there, so that no
    norm has to come back to the host (a zero norm gives 1)."""
    if clipping is None:
        return 1.0
    xp = network.xp
    norm_per_word = network.gradient_norm() / max(num_targets, 1)
    tiny = numpy.finfo(network.backend.dtype).tiny
    return xp.minimum(1.0, clipping / xp.maximum(norm_per_word, tiny))


class Trainer:
    def __init__(self, network, optimizer, model_path, schedule, training_state, console,
                 options=None, events=None):
        self.network, self.optimizer = network, optimizer
        self.model_path, self.schedule = model_path, schedule
        self.state, self.console = training_state, console
        self.options = options or {}
        self.events = events or NoLog()
        self.words_per_epoch = 0  # set by train(); the step of the per-batch curves counts words
        self.checkpoints = None  # set by train()
        self.ranks = distributed.world()  # rank 0 alone writes; every rank decides alike from summed figures

    def train(self, train_corpus, dev_corpus, head_start=None):
        """Trains until --max-epoch; `head_start` (rate_search_heldout.HeadStart) is the first
        batches of epoch 1 trained already, by the learning-rate search."""
        schedule = self.schedule
        sequences = schedule.wrap(train_corpus)
        dev_sequences = schedule.wrap(dev_corpus)
        self.console.say("Training ...")
        self._log_settings()
        self.words_per_epoch = int((sequences.end - sequences.first).sum())
        self.checkpoints = EpochCheckpoints(self.model_path, schedule.checkpoint_every,
                                            training_settings(schedule, self.optimizer.momentum, train_corpus),
                                            self.console, self.ranks)
        while schedule.max_epoch == 0 or self.state.epoch < schedule.max_epoch:
            order = self._epoch_order(sequences)
            position = self._start_epoch(head_start, len(order)) or EpochPosition()
            head_start = None
            started = time.perf_counter() - (position.seconds or 0.0)
            train_perplexity, words_per_second = self.run_epoch(train_corpus, order, position)
            self.state.epoch += 1
            self.console.say(f"epoch {self.state.epoch} took {(time.perf_counter() - started) / 60:.2f} minutes")
            dev_perplexity = self.evaluate(dev_corpus, dev_sequences)
            self._report_dev(dev_perplexity)
            self._log_epoch(train_perplexity, dev_perplexity, words_per_second)
            self._decide(dev_perplexity)
            self.checkpoints.discard()  # the model file holds the epoch's outcome now
            stop = stop_reason(self.state, schedule)
            if stop:
                self.console.say(f"{stop}: training stops (the model file holds the best model)")
                break
        self.events.scalar("final/dev_perplexity", self.state.best_perplexity, self.state.epoch)
        self.events.flush()
        return self.state

    def _start_epoch(self, head_start, num_sequences):
        """The EpochPosition the epoch starts from: the head start's, with its weights and
        momentum, or a partial epoch's (epoch_checkpoint.py); None for its beginning."""
        if head_start is None:
            return self.checkpoints.resume(self.network, self.optimizer, self.state)
        position = head_start.apply(self.network, self.optimizer)
        num_batches = -(-num_sequences // self.schedule.batch_size)
        self.console.say(f"Continuing epoch {self.state.epoch + 1} after batch {position.batches_done} of "
                         f"{num_batches} from the learning-rate trial ...")
        return position

    def _decide(self, dev_perplexity):
        """rwthlm's decision after an epoch: keep the model (halving the rate after a small
        gain) or roll back and halve; saves the outcome with the count of halvings in a row."""
        diverged = not dev_perplexity <= DIVERGED * len(self.network.vocab)
        improved = dev_perplexity < self.state.best_perplexity and not diverged
        small_gain = improved and dev_perplexity * self.schedule.min_improvement > self.state.best_perplexity
        halves = small_gain or not improved
        self.state.halvings_in_a_row = self.state.halvings_in_a_row + 1 if halves else 0
        if not improved:
            self.roll_back(diverged)
            return
        self.state.best_perplexity = dev_perplexity
        if small_gain:
            self._halve_after_small_gain()
        self.save()

    def _log_settings(self):
        if self.state.epoch == 0:  # a resumed run has written them already
            settings = dict(self.options, network=self.network.spec.format())
            self.events.text("config", options_table(settings))
            self.events.hparams(settings)

    def _log_epoch(self, train_perplexity, dev_perplexity, words_per_second):
        epoch, events = self.state.epoch, self.events
        events.scalar("epoch/train_perplexity", train_perplexity, epoch)
        events.scalar("epoch/dev_perplexity", dev_perplexity, epoch)
        events.scalar("epoch/learning_rate", self.state.learning_rate, epoch)
        events.scalar("epoch/words_per_second", words_per_second, epoch)
        if not events.enabled:
            return
        to_numpy = self.network.backend.to_numpy
        for name, value in self.network.named_params().items():
            events.histogram(f"params/{name}", to_numpy(value), epoch)
        for name, value in self.network.dense_grads().items():
            events.histogram(f"grads/{name}", to_numpy(value), epoch)
        events.flush()

    def _halve_after_small_gain(self):
        """An improvement below --min-improvement keeps the model but halves the rate."""
        self.state.learning_rate *= 0.5
        gain = 100.0 * (self.schedule.min_improvement - 1.0)
        self.console.say(f"improvement below {gain:g}%: learning rate halved to {self.state.learning_rate:e}")

    def _epoch_order(self, sequences):
        if self.schedule.shuffles:
            self.console.say("Shuffling ... done")
        return self.schedule.epoch_order(sequences, self.state.epoch)

    def run_epoch(self, corpus, sequences, position=None):
        """Trains on every batch once (from `position` on, an EpochPosition of a resumed
        epoch); returns the epoch's training perplexity and words/s."""
        schedule, position = self.schedule, position or EpochPosition()
        progress = self.console.progress(f"epoch {self.state.epoch + 1}", int((sequences.end - sequences.first).sum()))
        progress.resume(position.words, position.neg_log_prob, position.seconds)
        curve = BatchCurve(self.events, self.state.epoch * self.words_per_epoch + position.words)
        remaining = itertools.islice(data.batches(corpus, sequences, schedule.batch_size), position.batches_done, None)
        started = time.perf_counter()
        for batches_done, batch, loss, state in train_steps(self.network, self.optimizer, remaining,
                                                            self.state.learning_rate, schedule, self.state.epoch,
                                                            position.batches_done + 1, position.carried_state):
            progress.update(batch.num_targets, loss)
            curve.add(batch.num_targets, loss, self.network)
            if schedule.verbose:
                self.console.say(f"training perplexity = {progress.perplexity:.2f}")
                self.console.say(f"time = {time.perf_counter() - started:.3f} seconds")
            if self.checkpoints is not None and self.checkpoints.due():  # the same answer on every rank
                self.checkpoints.save(self.network, self.optimizer, self.state,
                                      EpochPosition(batches_done, progress.words, progress.neg_log_prob, state),
                                      self.options)
            started = time.perf_counter()
        progress.close()
        self.console.note(f"epoch {self.state.epoch + 1}: training perplexity {progress.perplexity:.2f}, "
                          f"{progress.words_per_second:,.0f} words/s")
        return progress.perplexity, progress.words_per_second

    def evaluate(self, corpus, sequences):
        schedule = self.schedule
        progress = self.console.progress("dev", int((sequences.end - sequences.first).sum()))
        # among several ranks each scores its columns; their progress would show only rank 0's share
        scores = data_parallel.score_on_ranks(self.network, corpus, sequences, schedule.batch_size, self.ranks,
                                              carry_state=schedule.carry_state, unk_penalty=schedule.unk_penalty,
                                              feedforward=schedule.feedforward,
                                              progress=progress if self.ranks.size == 1 else None)
        progress.close()
        perplexity = scores.perplexity
        return perplexity if math.isfinite(perplexity) else math.inf

    def _report_dev(self, perplexity):
        line = (f"development perplexity = {perplexity:20.15f}, "
                f"learning rate = {self.state.learning_rate:e}")
        if self.optimizer.momentum > 0:
            line += f", momentum = {self.optimizer.momentum:f}"
        self.console.say(line)

    def save(self):
        if self.ranks.is_root:
            save_model(self.model_path, self.network, self.optimizer, self.state, self.options)

    def roll_back(self, diverged=False):
        """Halves the learning rate and returns to the best model in the file (read by rank
        0 and broadcast: the other ranks need not see the file system as rank 0 does)."""
        new_rate = 0.5 * self.state.learning_rate
        model_file = self.ranks.broadcast(read_model(self.model_path) if self.ranks.is_root else None)
        load_weights(self.network, model_file)
        load_momentum(self.optimizer, model_file)
        self.state.learning_rate = new_rate
        self.state.best_perplexity = model_file.training_state.best_perplexity
        reason = (f"diverged (dev perplexity not finite or above {DIVERGED} times the vocabulary size)"
                  if diverged else "no improvement")
        self.console.say(f"{reason}: learning rate halved to {new_rate:e}, weights rolled back to the best model")
        self.save()


def stop_reason(state, schedule):
    """Why training ends after the epochs in `state` before --max-epoch, or None: the rate
    has fallen below MIN_LEARNING_RATE, or --stop-after-halvings epochs in a row halved it."""
    if state.learning_rate < MIN_LEARNING_RATE:
        return f"learning rate {state.learning_rate:e} is below {MIN_LEARNING_RATE:g}"
    if schedule.stop_after_halvings and state.halvings_in_a_row >= schedule.stop_after_halvings:
        return (f"the learning rate was halved in {state.halvings_in_a_row} epochs in a row "
                f"(--stop-after-halvings {schedule.stop_after_halvings})")
    return None


def finished_training(state, schedule):
    """Why a model in `state` is trained no further, or None."""
    if schedule.max_epoch and state.epoch >= schedule.max_epoch:
        return f"the model has reached epoch {state.epoch} (--max-epoch {schedule.max_epoch})"
    return stop_reason(state, schedule)


class BatchCurve:
    """The per-batch training curves: every BATCHES_PER_POINT batches, the perplexity of
    those batches, the last batch's gradient norm per word, and words/s; step = words."""

    def __init__(self, events, words_before):
        self.events, self.words = events, words_before
        self._reset()

    def _reset(self):
        self.batches, self.point_words, self.losses = 0, 0, []
        self.started = time.perf_counter()

    def add(self, words, loss, network):
        """A batch's words and -ln p (a number, or unread: read with the others at a point)."""
        if not self.events.enabled:
            return
        self.words += words
        self.batches, self.point_words = self.batches + 1, self.point_words + words
        self.losses.append(loss)
        if self.batches < BATCHES_PER_POINT:
            return
        elapsed = time.perf_counter() - self.started
        loss = 0.0
        for value in read_numbers(self.losses):
            loss += value
        self.events.scalar("batch/train_perplexity", perplexity_of(loss, self.point_words), self.words)
        norm = float(network.gradient_norm())  # a wait on a GPU, once per point
        self.events.scalar("batch/gradient_norm", norm / max(words, 1), self.words)
        self.events.scalar("batch/words_per_second", self.point_words / max(elapsed, 1e-9), self.words)
        self._reset()
