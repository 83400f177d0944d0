"""rwthlm's automatic initial learning rate (§6.3).

Trials train on the first 30 batches of the epoch-0 order, each from the same initial
weights with empty momentum. A trial succeeds when the running training perplexity falls
after at least 25 of the 30 batches; it fails as soon as the perplexity is not finite,
rises by more than a factor of 2 from one batch to the next, or 25 falls are out of reach.
Rates 0.1, 0.2, 0.4, ... are tried while they succeed and the largest success is taken;
if 0.1 fails, 0.05, 0.025, ... are tried until one succeeds. rwthlm loops for ever if none
does; here the search stops below LOWEST_RATE with an error.
"""

import itertools
import math

from rwthlm_py.errors import InputError
from rwthlm_py.output.reporting import perplexity_of
from rwthlm_py.scoring.evaluate import network_state_for
from rwthlm_py.text import data
from rwthlm_py.training.train import restore, snapshot, train_batch

START_RATE = 0.05
NUM_BATCHES = 30
MIN_DECREASES = 25
MAX_RELATIVE_INCREASE = 2.0
LOWEST_RATE = 1e-9


def find_initial_learning_rate(network, optimizer, corpus, sequences, schedule, console):
    """Returns the initial learning rate; leaves the network at its initial weights."""
    batches = list(itertools.islice(data.batches(corpus, sequences, schedule.batch_size), NUM_BATCHES))
    if len(batches) < NUM_BATCHES:
        raise InputError(
            f"the automatic learning rate needs at least {NUM_BATCHES} batches of training data "
            f"(there are {len(batches)}); give --learning-rate")
    initial = snapshot(network)
    console.say("Determining initial learning rate ...")
    console.say("Increasing ...")
    rate, best = 2 * START_RATE, None
    while _trial(network, optimizer, batches, rate, schedule, console, initial):
        best, rate = rate, 2 * rate
    if best is None:
        console.say("Decreasing ...")
        rate = START_RATE
        while not _trial(network, optimizer, batches, rate, schedule, console, initial):
            rate *= 0.5
            if rate < LOWEST_RATE:
                raise InputError(
                    f"no learning rate down to {LOWEST_RATE:g} trains stably on the first "
                    f"{NUM_BATCHES} batches; check the data or give --learning-rate")
        best = rate
    restore(network, optimizer, initial)
    console.say(f"initial learning rate: {best:.2e}")
    return best


def _trial(network, optimizer, batches, rate, schedule, console, initial):
    restore(network, optimizer, initial)
    console.say(f"{rate:e}:")
    decreases, neg_log_prob, words, previous, state = 0, 0.0, 0, math.inf, None
    for number, batch in enumerate(batches, start=1):
        state = network_state_for(state, batch.batch_size) if schedule.carry_state else None
        loss, state = train_batch(network, optimizer, batch, state, rate, schedule.feedforward,
                                  schedule.gradient_clipping, schedule.dropout_masks(network.backend, 0, number),
                                  columns=schedule.batch_size)
        neg_log_prob, words = neg_log_prob + loss, words + batch.num_targets
        perplexity = perplexity_of(neg_log_prob, words)
        console.say(f"  {perplexity:10.2f}")
        if not math.isfinite(perplexity) or perplexity > MAX_RELATIVE_INCREASE * previous:
            return False
        decreases += perplexity < previous
        if decreases + (len(batches) - number) < MIN_DECREASES:
            return False
        previous = perplexity
    return decreases >= MIN_DECREASES
