"""A training batch's loss stays on the device until a figure needs it (train.DeviceLoss,
reporting.Progress): an epoch whose progress line is not shown waits for the device once,
at its end, and every figure (the progress line's perplexity at each line, the epoch's
training perplexity, the totals a checkpoint saves) is the one that reading each loss at
once gives, to the bit."""

import io
import types

import numpy
import pytest

from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.output.reporting import Console, perplexity_of
from rwthlm_py.testing.strict_cupy import strict_backend
from rwthlm_py.text import data
from rwthlm_py.training.optim import Sgd
from rwthlm_py.training.selftest import synthetic_corpus
from rwthlm_py.training.train import BATCHES_PER_POINT, BatchCurve, DeviceLoss, Schedule, Trainer, train_batch

PERPLEXITY = "ppl "


def a_network(vocab):
    backend = strict_backend("float32")
    network = Network.build(parse_network("t-i8-m6"), vocab, backend, seed=2)
    return network, Sgd(network, momentum=0.5)


def read_at_once(vocab, corpus, sequences, schedule):
    """-ln p of each batch, read as soon as it is trained (the reference)."""
    network, optimizer = a_network(vocab)
    return [train_batch(network, optimizer, batch, None, 0.1)[0]
            for batch in data.batches(corpus, sequences, schedule.batch_size)]


def an_epoch(vocab, corpus, sequences, schedule, log_interval):
    """Trainer.run_epoch with progress lines every `log_interval` seconds (0: after every
    batch); the printed progress lines, the training perplexity and the double's waits."""
    network, optimizer = a_network(vocab)
    err = io.StringIO()
    trainer = Trainer(network, optimizer, None, schedule, types.SimpleNamespace(epoch=0, learning_rate=0.1),
                      Console(out=io.StringIO(), err=err, log_interval=log_interval))
    network.xp.counts.clear()
    perplexity, _ = trainer.run_epoch(corpus, sequences)
    lines = [line for line in err.getvalue().splitlines() if PERPLEXITY in line]
    return lines, perplexity, network.xp.counts


@pytest.fixture
def an_epochs_text(class_vocab):
    corpus = synthetic_corpus(class_vocab, seed=6, num_lines=60)
    schedule = Schedule(batch_size=4, sequence_length=6, shuffling=False)
    return class_vocab, corpus, schedule.wrap(corpus), schedule


def test_an_epoch_without_progress_lines_waits_once(an_epochs_text):
    vocab, corpus, sequences, schedule = an_epochs_text
    losses = read_at_once(vocab, corpus, sequences, schedule)
    assert len(losses) > 10
    lines, perplexity, counts = an_epoch(vocab, corpus, sequences, schedule, log_interval=1e9)
    assert lines == []
    assert counts.total("waits") == 1, counts.waits  # the epoch's perplexity, at its end
    total = 0.0
    for loss in losses:
        total += loss
    words = int((sequences.end - sequences.first).sum())
    assert perplexity == perplexity_of(total, words)


def test_the_progress_lines_show_the_perplexity_of_losses_read_at_once(an_epochs_text):
    """A line after every batch: each shows the running perplexity that reading every
    loss at once gives (every loss is read, in order), and each line costs one wait."""
    vocab, corpus, sequences, schedule = an_epochs_text
    losses = read_at_once(vocab, corpus, sequences, schedule)
    lines, _, counts = an_epoch(vocab, corpus, sequences, schedule, log_interval=0)
    total, words, expected = 0.0, 0, []
    for loss, batch in zip(losses, data.batches(corpus, sequences, schedule.batch_size), strict=True):
        total, words = total + loss, words + batch.num_targets
        expected.append(f"{PERPLEXITY}{perplexity_of(total, words):.2f}")
    assert [line[line.index(PERPLEXITY):] for line in lines] == expected
    assert counts.total("waits") == len(losses)


def test_unread_losses_are_read_together_in_order():
    """Progress adds unread losses (read with one transfer) and numbers in the order they
    came: the same float as adding each at once."""
    backend = strict_backend("float64")
    progress = Console(out=io.StringIO(), err=io.StringIO(), log_interval=1e9).progress("t", 100)
    backend.xp.counts.clear()
    expected = 0.0
    for group in ([1.0, 1e-16, 1e-16, 1e-16], [0.0], [1e-16, 1e-16, 1e-16, 2.0]):  # sums that depend on the order
        for value in group:
            expected += value
            progress.update(1, value if len(group) == 1 else DeviceLoss(backend, backend.asarray(numpy.array(-value))))
        assert progress.neg_log_prob == expected
    assert backend.xp.counts.total("waits") == 2  # one for each group of four


class RecordedEvents:
    enabled = True

    def __init__(self):
        self.scalars = []

    def scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))


def test_the_training_curves_point_adds_its_batches_losses_in_order_and_reads_each_once():
    """BatchCurve's perplexity of a point is that of its batches' losses added in the order
    they came, read losses and unread ones alike; a loss the progress line has read is not
    transferred again."""
    backend = strict_backend("float64")
    network = types.SimpleNamespace(gradient_norm=lambda: 1.0)  # the curve's other figure, not read here
    values = [100.0] + [5e-15] * 9  # in order the small ones are lost; in any other order they count
    losses = [DeviceLoss(backend, backend.asarray(numpy.array(-value))) if k % 3 else value
              for k, value in enumerate(values)]
    progress = Console(out=io.StringIO(), err=io.StringIO(), log_interval=1e9).progress("t", 100)
    for loss in losses[:5]:
        progress.update(2, loss)
    assert progress.neg_log_prob == 100.0  # the progress line has read the first five
    events = RecordedEvents()
    assert len(values) == BATCHES_PER_POINT
    curve = BatchCurve(events, 0)
    backend.xp.counts.clear()
    for loss in losses:
        curve.add(1, loss, network)
    expected = 0.0
    for value in values:
        expected += value
    assert expected == 100.0
    assert events.scalars[0] == ("batch/train_perplexity", perplexity_of(expected, 10), 10)
    assert backend.xp.counts.total("waits") == 1  # the unread three of the last five, together
