"""The initial learning rate of `rwthlm-py train` without --learning-rate: a bracketed
search judged on held-out perplexity.

rwthlm's own search (lr_search.py, kept for the `rwthlm` command) accepts the largest rate
whose training perplexity falls steadily for 30 batches; on PTB it picks 1.6e-3 and ends
far above a hand-tuned rate. Here each trial trains the new network from its initial
weights on the first TRIAL_WORDS words of the first epoch's order (the whole epoch if it is
shorter), with every setting of the run (batch, wrapping, clipping, momentum, dropout),
and is judged by the perplexity of the development text afterwards. Rates lie on the grid

    rate = TUNED_RATE * (B (T - 1) / TUNED_BATCH_WORDS) * 2^k        (k an integer)

for batches of B sequences of T - 1 predicted words, anchored at the rate the PTB recipe
was tuned to (TUNED_RATE = 0.025 for its 700-word batches; the grid scales with the batch
like a per-word step, and holds 0.025 exactly for B = 20, T = 36). The search starts at
k = 0 and doubles while the held-out perplexity improves, else halves while it improves,
and takes the best rate tried (at most MAX_TRIALS; a trial that diverges counts as
infinitely bad, and halving goes on past it). Every trial's rate and perplexity are
printed.
"""

import dataclasses
import math

from rwthlm_py import data
from rwthlm_py.evaluate import score_corpus
from rwthlm_py.train import restore, snapshot, train_steps

TUNED_RATE, TUNED_BATCH_WORDS = 0.025, 700  # the PTB recipe's hand-tuned rate, for batches of 700 words
TRIAL_WORDS = 200_000
MAX_TRIALS = 7


@dataclasses.dataclass
class Trial:
    rate: float
    perplexity: float


def search_learning_rate(network, optimizer, train_corpus, train_order, dev_corpus, dev_sequences, schedule, console):
    """The rate with the best held-out perplexity after a trial; leaves the network at its
    initial weights and the optimizer empty."""
    initial = snapshot(network)
    batches = list(_trial_batches(train_corpus, train_order, schedule.batch_size))
    words = sum(batch.num_targets for batch in batches)
    base = TUNED_RATE * (schedule.batch_size * (schedule.sequence_length - 1)) / TUNED_BATCH_WORDS
    console.say(f"Searching the initial learning rate: trials of {words:,} training words, judged by the "
                "development perplexity ...")
    trials = {}

    def trial(k):
        if k not in trials:
            restore(network, optimizer, initial)
            rate = base * 2.0 ** k
            perplexity = _train_and_judge(network, optimizer, batches, rate, dev_corpus, dev_sequences, schedule)
            trials[k] = Trial(rate, perplexity)
            console.say(f"  learning rate {rate:.4e}: development perplexity {perplexity:.2f}")
        return trials[k].perplexity

    at_start = trial(0)
    step = 1 if trial(1) < at_start else -1
    k = max(step, 0)
    # go on while the next rate is better (downwards also while the current one diverged)
    while len(trials) < MAX_TRIALS and (trial(k + step) < trial(k) or (step < 0 and math.isinf(trial(k)))):
        k += step
    best = min(trials.values(), key=lambda t: (t.perplexity, t.rate))
    restore(network, optimizer, initial)
    console.say(f"initial learning rate: {best.rate:.4e} (of {len(trials)} tried)")
    return best.rate


def _trial_batches(corpus, order, batch_size):
    """The first batches of `order` holding TRIAL_WORDS predicted words."""
    words = 0
    for batch in data.batches(corpus, order, batch_size):
        if words >= TRIAL_WORDS:
            return
        words += batch.num_targets
        yield batch


def _train_and_judge(network, optimizer, batches, rate, dev_corpus, dev_sequences, schedule):
    for _ in train_steps(network, optimizer, batches, rate, schedule):
        pass
    scores = score_corpus(network, dev_corpus, dev_sequences, schedule.batch_size,
                          carry_state=schedule.carry_state, unk_penalty=schedule.unk_penalty,
                          feedforward=schedule.feedforward)
    perplexity = scores.perplexity
    return perplexity if math.isfinite(perplexity) else math.inf
