"""Training curves for TensorBoard, written with the tensorboard package's own event writer
(no TensorFlow, no torch).

A training run with `--tensorboard DIR` writes into DIR:

    batch/train_perplexity   running training perplexity since the last point   step: words
    batch/gradient_norm      gradient norm per predicted word of the last batch  step: words
    batch/words_per_second                                                       step: words
    epoch/train_perplexity, epoch/dev_perplexity, epoch/learning_rate,
    epoch/words_per_second                                                       step: epoch
    params/NAME, grads/NAME  histograms of every parameter and of its gradient
                             (of the epoch's last batch), once per epoch         step: epoch
    rate_search/learning_rate, rate_search/dev_perplexity,
    rate_search/train_perplexity
                             each trial of rwthlm-py train's learning-rate search
                             (rate_search_heldout.py): its rate, the perplexity of the
                             development words it is judged on, and its
                             training perplexity                                 step: trial
    config                   the resolved options, as a table (text)
    hparams                  the run's settings, with final/dev_perplexity and
                             final/test_perplexity as metrics

`rwthlm-py ppl --tensorboard DIR` adds final/test_perplexity to the same run. Steps in
words (the training words before that point, counted from the first epoch) stay the same
when a run is resumed. `tensorboard --logdir DIR` shows them.

Events are written in the calling thread (tensorboard's record format, one event file per
log), so that a failed write (a full disk) stops the run with one line naming the file.
Each record goes to the file as it is written, whole or not at all (textio.open_log_file):
the file of a run that failed or was killed ends with a complete record, and TensorBoard
reads every record in it.
"""

import contextlib
import itertools
import os
import socket
import time

import numpy
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary
from tensorboard.plugins.hparams import summary_v2 as hparams_summary
from tensorboard.plugins.text import metadata as text_metadata
from tensorboard.summary.writer.record_writer import RecordWriter
from tensorboard.util import tensor_util

from rwthlm_py.errors import InputError
from rwthlm_py.text.textio import open_log_file

HISTOGRAM_BUCKETS = 30
FILE_VERSION = "brain.Event:2"  # the event format TensorBoard reads
_LOGS_OPENED = itertools.count()  # one process may open several logs in the same second
METRICS = ("final/dev_perplexity", "final/test_perplexity")
HPARAMS = ("network", "learning_rate", "momentum", "batch_size", "sequence_length", "word_wrapping",
           "gradient_clipping", "min_improvement", "dropout", "variational_dropout", "tie_weights", "classes",
           "method", "random_seed", "max_epoch")


class EventLog:
    """Scalars, histograms, text and hparams into one TensorBoard run directory."""

    enabled = True

    def __init__(self, logdir):
        self.logdir = str(logdir)
        try:
            os.makedirs(self.logdir, exist_ok=True)
        except OSError as error:
            raise InputError(f"cannot write TensorBoard events here: {error.strerror}", self.logdir) from None
        self.path = os.path.join(self.logdir, event_file_name())
        self.writer = RecordWriter(open_log_file(self.path, binary=True))
        try:
            self._write_event(Event(wall_time=time.time(), file_version=FILE_VERSION))
            self.flush()
        except InputError:
            with contextlib.suppress(InputError):
                self.writer.close()
            os.unlink(self.path)  # an event file without its header is no log at all
            raise

    def scalar(self, tag, value, step):
        self._write(Summary(value=[Summary.Value(tag=tag, simple_value=float(value))]), step)

    def histogram(self, tag, values, step):
        values = numpy.asarray(values, dtype=numpy.float64).reshape(-1)
        values = values[numpy.isfinite(values)]
        if not len(values):
            return
        counts, edges = numpy.histogram(values, bins=HISTOGRAM_BUCKETS)
        proto = HistogramProto(min=float(values.min()), max=float(values.max()), num=len(values),
                               sum=float(values.sum()), sum_squares=float(values @ values),
                               bucket_limit=edges[1:].tolist(), bucket=counts.astype(float).tolist())
        self._write(Summary(value=[Summary.Value(tag=tag, histo=proto)]), step)

    def text(self, tag, markdown, step=0):
        metadata = text_metadata.create_summary_metadata(display_name=tag, description="")
        tensor = tensor_util.make_tensor_proto(markdown)
        self._write(Summary(value=[Summary.Value(tag=tag, metadata=metadata, tensor=tensor)]), step)

    def hparams(self, options):
        """The experiment (settings and metrics) and this run's settings, from resolved options."""
        values = {name: _hparam_value(options.get(name)) for name in HPARAMS if name in options}
        config = hparams_summary.hparams_config_pb(
            hparams=[hparams_summary.HParam(name) for name in values],
            metrics=[hparams_summary.Metric(tag) for tag in METRICS])
        self._write(config, 0)
        self._write(hparams_summary.hparams_pb(values, start_time_secs=int(time.time())), 0)

    def flush(self):
        self.writer.flush()

    def close(self):
        if not self.writer.closed:
            self.writer.close()

    def _write(self, summary, step):
        self._write_event(Event(summary=summary, wall_time=time.time(), step=int(step)))

    def _write_event(self, event):
        self.writer.write(event.SerializeToString())


class NoLog:
    """What is used without --tensorboard: every call does nothing."""

    enabled = False  # callers skip work that only feeds the log

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def event_file_name():
    """TensorBoard's naming: events.out.tfevents.<seconds>.<host>.<process>.<log number>."""
    return f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{next(_LOGS_OPENED)}"


def open_log(logdir):
    return EventLog(logdir) if logdir else NoLog()


def options_table(options):
    """The resolved options as a markdown table (the `config` text)."""
    rows = [f"| {name} | {value} |" for name, value in sorted(options.items()) if value is not None]
    return "| option | value |\n|---|---|\n" + "\n".join(rows)


def _hparam_value(value):
    """hparams take numbers, strings and booleans; None becomes the string 'none'."""
    if value is None:
        return "none"
    return value
