"""The epoch in progress: saved during an epoch (--checkpoint-every MINUTES) and resumed.

MODEL.partial is a model file (checkpoint.py's format, so `--ppl` reads it too) with the
weights and momentum after the first `batches_done` batches of epoch `base.epoch + 1`, and
in its metadata `epoch_in_progress`:

    batches_done, words, neg_log_prob   where the epoch stands and its running totals
    base                                epoch, learning rate and best perplexity of MODEL
                                        when the epoch began
    settings                            what fixes the batches and the updates: batch
                                        size, sequence length, wrapping, shuffling, seed,
                                        feedforward, clipping, momentum, and the sha256 of
                                        the training text's word ids
    state                               the layout of the recurrent state carried into the
                                        next batch (--word-wrapping stream), whose arrays
                                        are the members state/0, state/1, ...

A rerun resumes from it when MODEL is still where the epoch began and the settings agree:
the batch order is fixed by (seed, epoch), the totals and weights are exact copies, so the
run ends with exactly the weights of an uninterrupted one. Otherwise the file is out of
date and removed with a line saying why. It is removed when its epoch ends.

Among the ranks of a data-parallel job (data_parallel.py) rank 0's clock decides when a
save is due, rank 0 writes and removes the file, and the carried state it saves is that of
every column, gathered from the ranks; a resumed run (with any number of ranks) gives each
rank its columns' part.
"""

import dataclasses
import hashlib
import os
import time

import numpy

from rwthlm_py.errors import InputError
from rwthlm_py.model.checkpoint import load_momentum, load_weights, read_model, save_model
from rwthlm_py.runtime import distributed
from rwthlm_py.text.textio import link_target
from rwthlm_py.training import data_parallel

PARTIAL_SUFFIX = ".partial"


def partial_path(model_path):
    """MODEL.partial beside the model file (where MODEL is a symbolic link, beside the file it
    points to, where a training through another name of the model looks for it too)."""
    return link_target(os.fspath(model_path)) + PARTIAL_SUFFIX


@dataclasses.dataclass
class EpochPosition:
    """How far an epoch got: batches done, their words and -sum ln p, the carried state;
    and the seconds this process spent on them, where it did (a learning-rate trial
    continued as epoch 1), which count in the epoch's time and words/s."""

    batches_done: int = 0
    words: int = 0
    neg_log_prob: float = 0.0
    carried_state: object = None
    seconds: float = None  # None: done by an earlier run, not counted


def training_settings(schedule, momentum, corpus):
    """What decides the batches and updates of an epoch; a partial epoch made with other
    settings cannot be continued."""
    return {
        "batch_size": schedule.batch_size, "sequence_length": schedule.sequence_length,
        "word_wrapping": schedule.word_wrapping, "shuffles": schedule.shuffles,
        "random_seed": schedule.random_seed, "feedforward": schedule.feedforward,
        "debug_no_sb": schedule.debug_no_sb, "gradient_clipping": schedule.gradient_clipping,
        "momentum": momentum, "dropout": schedule.dropout, "variational_dropout": schedule.variational_dropout,
        "training_text_sha256": hashlib.sha256(numpy.ascontiguousarray(corpus.stream, dtype=numpy.int64)).hexdigest(),
    }


class EpochCheckpoints:
    """Saves the epoch in progress every `minutes` (None: never) and resumes from it."""

    def __init__(self, model_path, minutes, settings, console, ranks=None):
        self.model_path, self.path = model_path, partial_path(model_path)
        self.interval = None if minutes is None else 60.0 * minutes
        self.settings, self.console = settings, console
        self.ranks = ranks if ranks is not None else distributed.World()
        self.last_saved = time.monotonic()

    def due(self):
        """Whether to save now: rank 0's answer on every rank."""
        if self.interval is None:
            return False
        due = time.monotonic() - self.last_saved >= self.interval
        return self.ranks.broadcast(due) if self.ranks.size > 1 else due

    def save(self, network, optimizer, training_state, position, options):
        """Every rank calls it; rank 0 writes (with the state of every rank's columns)."""
        state = position.carried_state
        if self.ranks.size > 1:
            state = data_parallel.gather_state(state, self.ranks, network.backend.to_numpy)
        if self.ranks.is_root:
            structure, arrays = flatten_state(state, network.backend.to_numpy)
            progress = {"batches_done": position.batches_done, "words": position.words,
                        "neg_log_prob": position.neg_log_prob, "base": _base(training_state),
                        "settings": self.settings, "state": structure}
            save_model(self.path, network, optimizer, training_state, options,
                       extra_meta={"epoch_in_progress": progress},
                       extra_arrays={f"state/{k}": array for k, array in enumerate(arrays)}, keep_backup=False)
        self.last_saved = time.monotonic()

    def resume(self, network, optimizer, training_state):
        """Loads the weights and momentum of a partial epoch that continues the model as it
        is now, and returns its EpochPosition; None when there is none to continue."""
        self.last_saved = time.monotonic()
        if not self.ranks.broadcast(os.path.exists(self.path)):  # rank 0's view: it alone removes the file
            return None
        partial = read_model(self.path)
        progress = partial.meta.get("epoch_in_progress")
        reason = self._out_of_date(progress, training_state, partial.others)
        if reason:
            self.console.say(f"'{self.path}' is out of date ({reason}): removed, the epoch starts from its beginning")
            self.ranks.barrier()  # every rank has read it before rank 0 removes it
            self.discard()
            return None
        load_weights(network, partial)
        load_momentum(optimizer, partial)
        arrays = [partial.others[f"state/{k}"] for k in range(_count_arrays(progress["state"]))]
        state = unflatten_state(progress["state"], arrays, network.backend.asarray)
        state = data_parallel.state_block(state, self.settings["batch_size"], self.ranks)
        self.console.say(f"Resuming epoch {training_state.epoch + 1} after batch {progress['batches_done']} "
                         f"from '{self.path}' ...")
        return EpochPosition(progress["batches_done"], progress["words"], progress["neg_log_prob"], state)

    def discard(self):
        if not self.ranks.is_root:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as error:
            raise InputError(f"cannot remove the finished epoch's checkpoint: {error.strerror}", self.path) from None

    def _out_of_date(self, progress, training_state, members):
        if not _is_progress(progress):
            return "no readable epoch in progress"
        if any(f"state/{k}" not in members for k in range(_count_arrays(progress["state"]))):
            return "its recurrent state is incomplete"
        if progress.get("base") != _base(training_state):
            return "the model has moved on since it was written"
        settings = progress.get("settings") or {}
        changed = [name for name in self.settings if settings.get(name) != self.settings[name]]
        if changed:
            return "written with other " + ", ".join(name.replace("_", " ") for name in changed)
        return None


def _is_progress(progress):
    """The epoch_in_progress metadata has its fields, of their types."""
    if not isinstance(progress, dict):
        return False
    counts = [progress.get(name) for name in ("batches_done", "words")]
    return (all(isinstance(count, int) and count >= 0 for count in counts)
            and isinstance(progress.get("neg_log_prob"), (int, float))
            and isinstance(progress.get("settings"), dict) and _is_layout(progress.get("state")))


def _is_layout(layout):
    if layout is None or (isinstance(layout, int) and not isinstance(layout, bool) and layout >= 0):
        return True
    return isinstance(layout, list) and all(_is_layout(item) for item in layout)


def _base(training_state):
    best = training_state.best_perplexity
    return {"epoch": int(training_state.epoch), "learning_rate": float(training_state.learning_rate),
            "best_perplexity": float(best) if numpy.isfinite(best) else None}


# -- the recurrent state as JSON and arrays -------------------------------------------------------

def flatten_state(state, to_numpy):
    """(layout, host arrays) of a nested-tuple state: the layout is the same nesting as
    lists, with the index of each array where it was and null for None."""
    arrays = []

    def layout(part):
        if part is None:
            return None
        if isinstance(part, tuple):
            return [layout(item) for item in part]
        arrays.append(to_numpy(part))
        return len(arrays) - 1

    return layout(state), arrays


def unflatten_state(layout, arrays, asarray):
    """The inverse of flatten_state, with the arrays moved by `asarray`."""
    if layout is None:
        return None
    if isinstance(layout, list):
        return tuple(unflatten_state(item, arrays, asarray) for item in layout)
    return asarray(arrays[layout])


def _count_arrays(layout):
    if layout is None:
        return 0
    if isinstance(layout, list):
        return sum(_count_arrays(item) for item in layout)
    return 1
