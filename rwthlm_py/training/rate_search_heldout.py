"""The initial learning rate of `rwthlm-py train` without --learning-rate: a bracketed
search judged on held-out perplexity, whose chosen trial becomes the start of epoch 1.

rwthlm's own search (rate_search_rwthlm.py, kept for the `rwthlm` command) accepts the largest rate
whose training perplexity falls steadily for 30 batches; on PTB it picks 1.6e-3 and ends
far above a hand-tuned rate. Here each trial trains the new network from its initial
weights on the first batches of the first epoch's order, with every setting of the run
(batch, wrapping, clipping, momentum, dropout), and is judged by the perplexity of the
first JUDGE_WORDS words (in whole batches) of the development text afterwards. Rates lie
on the grid

    rate = TUNED_RATE * (B (T - 1) / TUNED_BATCH_WORDS) * 2^k        (k an integer)

for batches of B sequences of T - 1 predicted words, anchored at the rate the PTB recipe
was tuned to (TUNED_RATE = 0.025 for its 700-word batches; the grid scales with the batch
like a per-word step, and holds 0.025 exactly for B = 20, T = 36). The search starts at
k = 0 and doubles while the held-out perplexity improves, else halves while it improves,
and takes the best rate tried (a trial that diverges counts as infinitely bad, and
halving goes on past it), within a number of trials that the epoch can afford. Where every
trial diverged there is no rate to start from, and the run stops with one line, before the
model file is written.

Nothing of the chosen trial is thrown away: its batches are exactly the first batches of
epoch 1 at the chosen rate (same order, dropout masks and carried state), so its weights,
momentum and running totals go to the trainer as a HeadStart, and epoch 1 goes on after
its last batch (a trial that covered the whole epoch is epoch 1). What the search adds is
the other trials and the judging (trial_plan): the trials beyond the chosen one train on
at most EXTRA_SHARE of the epoch, so that with the judging the search adds less than half
an epoch. A trial trains on TRIAL_WORDS words, or on less where the shortest bracket
(k = 0, 1, -1) would not fit; there are as many trials as fit (3 on PTB, up to MAX_TRIALS).

A trial must be long enough to tell rates apart; shorter ones misjudge them, mostly in
favour of smaller rates (dev perplexity after a trial, measured 2026-12-01: of all of PTB
valid, or of its first 10,000 to 20,000 words for the 3,000 lines below). On PTB, after
100,000 words 0.0125 scored a little better than 0.025, the recipe's tuned rate (694
against 705), after 150,000 clearly worse (642 against 548). On the first 3,000 lines of
PTB train, trials of 16,000 words ranked 0.003 first and 0.025 fourth, trials of 3,500
words ranked 0.05 first; yet after 10 epochs 0.025 and 0.0125 end best (dev 227 and 229;
0.00625: 254, 0.05: 276). Even on PTB, 0.025 and 0.0125 are told apart only roughly:
with other rounding (one BLAS thread instead of two), trials of 186,200 words ranked
0.0125 first (570 against 599, on the first 20,300 dev words), where trials of 200,200
words ranked 0.025 first with either rounding (522 against 621 and 522 against 566 on
those words; 515 against 612 and 518 against 570 on all of them); a run started at 0.0125
ended at test perplexity 121.45, against 112.74 from 0.025. So an epoch too short for trials of
MIN_TRIAL_WORDS in the bracket is not searched: it starts at the grid's k = 0, and the
training schedule halves that rate where it is too large.

Trials train whole batches, so a batch larger than a trial (more than TRIAL_WORDS words,
--batch-size above 5,714 at the default sequence length) leaves nothing to search with: the
run stops with one line asking for --learning-rate or a smaller --batch-size.

Every trial shows its progress, and its rate and perplexities are printed and, with
--tensorboard, written as rate_search/* scalars (step: the trial's number).
"""

import dataclasses
import math
import time

from rwthlm_py.errors import InputError
from rwthlm_py.output.reporting import perplexity_of
from rwthlm_py.output.tensorboard_log import NoLog
from rwthlm_py.runtime import distributed
from rwthlm_py.text import data
from rwthlm_py.training.data_parallel import score_on_ranks
from rwthlm_py.training.epoch_checkpoint import EpochPosition
from rwthlm_py.training.train import restore, snapshot, train_steps

TUNED_RATE, TUNED_BATCH_WORDS = 0.025, 700  # the PTB recipe's hand-tuned rate, for batches of 700 words
EXTRA_SHARE = 0.45  # the trials other than the chosen one train on at most this share of an epoch
TRIAL_WORDS = 200_000  # a trial trains on at most this many words ...
MIN_TRIAL_WORDS = 150_000  # ... and at least this many, else there is no search
JUDGE_WORDS = 20_000  # development words a trial is judged on
MAX_TRIALS = 7


@dataclasses.dataclass
class Trial:
    rate: float
    perplexity: float  # of the judged development words
    train_perplexity: float


@dataclasses.dataclass
class HeadStart:
    """The chosen trial: epoch 1 at `rate` as far as `position` (its batches, totals,
    carried state and training seconds), with the weights and momentum after it."""

    rate: float
    weights: dict
    momentum: dict
    position: EpochPosition

    def apply(self, network, optimizer):
        """Puts the trial's weights and momentum into the network and the optimizer, and
        lets go of its copies (on a GPU they would hold device memory for the whole
        training); returns its position."""
        for name, value in network.named_params().items():
            value[...] = self.weights[name]
        optimizer.load_buffers(self.momentum)
        self.weights = self.momentum = None
        return self.position


def trial_plan(epoch_words):
    """(training words of a trial, the most trials) before an epoch of `epoch_words`
    predicted words; None when the epoch is too short for trials that tell rates apart."""
    extra = int(EXTRA_SHARE * epoch_words)  # words the trials beyond the chosen one may train on
    words = min(TRIAL_WORDS, extra // 2)  # the shortest bracket has two of them
    if words < MIN_TRIAL_WORDS:
        return None
    return words, min(MAX_TRIALS, 1 + extra // words)


def search_learning_rate(network, optimizer, train_corpus, train_order, dev_corpus, dev_sequences, schedule, console,
                         events=None):
    """(the initial rate, the HeadStart of its trial or None where none was trained): the
    rate whose trial scored the best held-out perplexity, or k = 0 where the epoch is too
    short to search. Leaves the network at its initial weights and the optimizer empty."""
    base = TUNED_RATE * (schedule.batch_size * (schedule.sequence_length - 1)) / TUNED_BATCH_WORDS
    epoch_words = _words(train_order)
    plan = trial_plan(epoch_words)
    if plan is None:
        console.say(f"initial learning rate: {base:.4e} (not searched: two trials of {MIN_TRIAL_WORDS:,} words "
                    f"besides the chosen one would train on more than {EXTRA_SHARE:.0%} of the epoch's "
                    f"{epoch_words:,} words)")
        return base, None
    started = time.perf_counter()
    words, max_trials = plan
    first_batch = _words(train_order.take(slice(0, schedule.batch_size)))
    if first_batch > max(words, MIN_TRIAL_WORDS):  # trials train whole batches: one is more than a trial
        raise InputError(f"--batch-size {schedule.batch_size}: one batch holds {first_batch:,} training words, more "
                         f"than a learning-rate trial may train on ({words:,}): give --learning-rate, or a smaller "
                         "--batch-size")
    trained = leading_batches(train_order, schedule.batch_size, words)
    judged = leading_batches(dev_sequences, schedule.batch_size, JUDGE_WORDS)
    console.say(f"Searching the initial learning rate: at most {max_trials} trials of {_words(trained):,} training "
                f"words, judged by the perplexity of {_words(judged):,} development words ...")
    search = _Search(network, optimizer, base, list(data.batches(train_corpus, trained, schedule.batch_size)),
                     lambda: _judge(network, dev_corpus, judged, schedule), schedule, console, events or NoLog())
    search.bracket(max_trials)
    best = search.best
    if math.isinf(search.best_key[0]):
        raise InputError(_all_diverged(search.trials, schedule))
    console.say(f"initial learning rate: {best.rate:.4e} (of {len(search.trials)} tried, in "
                f"{(time.perf_counter() - started) / 60:.2f} minutes)")
    return best.rate, best


def _all_diverged(trials, schedule):
    """The line that stops a run whose every trial diverged: no rate to start from."""
    rates = sorted(trial.rate for trial in trials.values())
    return (f"every trial of the learning-rate search diverged ({len(rates)} rates, {rates[0]:.4e} to "
            f"{rates[-1]:.4e}, scaled for --batch-size {schedule.batch_size} and --sequence-length "
            f"{schedule.sequence_length}): give --learning-rate, or a smaller --batch-size")


def leading_batches(sequences, batch_size, words):
    """The first sequences, in whole batches of `batch_size`, that hold at least `words`
    predicted words (all of them if they hold fewer)."""
    lengths = sequences.end - sequences.first
    batch_words = [int(lengths[start:start + batch_size].sum()) for start in range(0, len(sequences), batch_size)]
    count, total = 0, 0
    while count < len(batch_words) and total < words:
        total += batch_words[count]
        count += 1
    return data.Sequences(sequences.first[:count * batch_size], sequences.end[:count * batch_size])


def _words(sequences):
    return int((sequences.end - sequences.first).sum())


def _judge(network, corpus, sequences, schedule):
    perplexity = score_on_ranks(network, corpus, sequences, schedule.batch_size, distributed.world(),
                                carry_state=schedule.carry_state, unk_penalty=schedule.unk_penalty,
                                feedforward=schedule.feedforward).perplexity
    return perplexity if math.isfinite(perplexity) else math.inf


class _Search:
    """The trials of one search: each trains from the initial weights and is judged; the
    best one so far is kept as a HeadStart."""

    def __init__(self, network, optimizer, base, batches, judge, schedule, console, events):
        self.network, self.optimizer, self.base, self.batches, self.judge = network, optimizer, base, batches, judge
        self.schedule, self.console, self.events = schedule, console, events
        self.initial = snapshot(network)
        self.trials = {}  # grid step k -> Trial
        self.best = None  # HeadStart of the best trial so far
        self.best_key = None  # its (perplexity, rate): ties go to the smaller rate

    def bracket(self, max_trials):
        """Doubles from k = 0 while the perplexity improves, else halves while it does (also
        past diverged trials); at most `max_trials` (3 or more). Leaves the initial weights."""
        at_start = self.perplexity_at(0)
        step = 1 if self.perplexity_at(1) < at_start else -1
        k = max(step, 0)
        while len(self.trials) < max_trials and (self.perplexity_at(k + step) < self.perplexity_at(k)
                                                 or (step < 0 and math.isinf(self.perplexity_at(k)))):
            k += step
        restore(self.network, self.optimizer, self.initial)

    def perplexity_at(self, k):
        if k not in self.trials:
            self.trials[k] = self._run_trial(self.base * 2.0 ** k)
        return self.trials[k].perplexity

    def _run_trial(self, rate):
        number = len(self.trials) + 1
        restore(self.network, self.optimizer, self.initial)
        position = self._train(rate, number)
        trial = Trial(rate, self.judge(), perplexity_of(position.neg_log_prob, position.words))
        self.console.say(f"  learning rate {rate:.4e}: development perplexity {trial.perplexity:.2f}")
        self.events.scalar("rate_search/learning_rate", rate, number)
        self.events.scalar("rate_search/dev_perplexity", trial.perplexity, number)
        self.events.scalar("rate_search/train_perplexity", trial.train_perplexity, number)
        if self.best_key is None or (trial.perplexity, rate) < self.best_key:
            self.best_key = (trial.perplexity, rate)
            self.best = HeadStart(rate, snapshot(self.network), _momentum_copy(self.optimizer), position)
        return trial

    def _train(self, rate, number):
        """Trains the trial's batches at `rate`, showing progress; returns where epoch 1
        would stand after them."""
        progress = self.console.progress(f"trial {number} (learning rate {rate:.4e})", _batch_words(self.batches))
        started = time.perf_counter()
        done, state = 0, None
        for batches_done, batch, loss, carried in train_steps(self.network, self.optimizer, self.batches, rate,
                                                              self.schedule):
            progress.update(batch.num_targets, loss)
            done, state = batches_done, carried
        progress.close()
        return EpochPosition(done, progress.words, progress.neg_log_prob, _copy_state(state),
                             seconds=time.perf_counter() - started)


def _batch_words(batches):
    return sum(batch.num_targets for batch in batches)


def _copy_state(state):
    """A copy of a carried recurrent state (nested tuples of arrays), which later trials
    must not change."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(_copy_state(part) for part in state)
    return state.copy()


def _momentum_copy(optimizer):
    return {name: buffer.copy() for name, buffer in optimizer.buffers.items()}
