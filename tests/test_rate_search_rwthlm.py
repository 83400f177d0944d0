"""rwthlm's automatic initial learning rate (§6.3), its decisions tested on scripted
training perplexities: every constant of the rule (the starting rate 0.1 then 0.05, 30
batches, 25 falls, a rise by more than a factor 2) is visible in an outcome."""

import io
import math

import numpy
import pytest

from rwthlm_py.errors import InputError
from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.output.reporting import Console
from rwthlm_py.runtime.backend import get_backend
from rwthlm_py.text import data
from rwthlm_py.training import rate_search_rwthlm
from rwthlm_py.training.optim import Sgd
from rwthlm_py.training.selftest import synthetic_corpus
from rwthlm_py.training.train import Schedule


def search(class_vocab, monkeypatch, perplexities, num_sequences=40):
    """Runs the search with train_batch replaced: trial `rate` sees the running training
    perplexities perplexities(rate) (one per batch). Returns (chosen rate, rates tried)."""
    corpus = synthetic_corpus(class_vocab, seed=2)
    sequences = data.wrap(corpus, "fixed", 1, 4)
    sequences = data.Sequences(sequences.first[:num_sequences], sequences.end[:num_sequences])
    tried, running = [], {}

    def scripted_batch(network, optimizer, batch, state, rate, feedforward=False, clipping=None, dropout=None,
                       columns=None):
        if not running or running["rate"] != rate or running["batch"] == rate_search_rwthlm.NUM_BATCHES:
            tried.append(rate)
            running.update(rate=rate, batch=0, words=0, loss=0.0)
        target = perplexities(rate)[running["batch"]]
        words = running["words"] + batch.num_targets
        loss = words * math.log(target) - running["loss"]  # the running perplexity becomes target
        running.update(batch=running["batch"] + 1, words=words, loss=running["loss"] + loss)
        return loss, state

    monkeypatch.setattr(rate_search_rwthlm, "train_batch", scripted_batch)
    network = Network.build(parse_network("t-i3-m2"), class_vocab, get_backend("numpy"), seed=1)
    console = Console(out=io.StringIO(), err=io.StringIO())
    rate = rate_search_rwthlm.find_initial_learning_rate(network, Sgd(network), corpus, sequences,
                                                Schedule(batch_size=1, sequence_length=4), console)
    return rate, tried


def falling(count=30, rises=0):
    """Running perplexities that fall at every batch but `rises` of the last ones."""
    values = list(numpy.geomspace(100.0, 50.0, count))
    for k in range(rises):
        values[count - 1 - 2 * k] = values[count - 2 - 2 * k] * 1.01
    return values


def test_rates_double_from_one_tenth_while_they_succeed(class_vocab, monkeypatch):
    rate, tried = search(class_vocab, monkeypatch, lambda rate: falling() if rate <= 0.8 else [100.0, 1e9] + [1.0] * 28)
    assert tried == [0.1, 0.2, 0.4, 0.8, 1.6] and rate == 0.8


def test_rates_halve_from_one_twentieth_when_one_tenth_fails(class_vocab, monkeypatch):
    rate, tried = search(class_vocab, monkeypatch, lambda rate: falling() if rate <= 0.0125 else [100.0, math.inf] * 15)
    assert tried == [0.1, 0.05, 0.025, 0.0125] and rate == 0.0125


def scripted(trial_at_one_tenth, succeeding=(0.05,)):
    """Perplexities of trials: at 0.1 as given, clean falls at the `succeeding` rates, NaN
    (an immediate failure) at any other."""
    return lambda rate: trial_at_one_tenth if rate == 0.1 else falling() if rate in succeeding else [math.nan] * 30


@pytest.mark.parametrize("rises, succeeds", [(4, True), (5, True), (6, False)])
def test_a_trial_needs_twenty_five_falls_in_thirty_batches(class_vocab, monkeypatch, rises, succeeds):
    # the first batch counts as a fall (from infinity): 30 - rises falls
    rate, tried = search(class_vocab, monkeypatch, scripted(falling(rises=rises)))
    assert (rate, tried) == ((0.1, [0.1, 0.2]) if succeeds else (0.05, [0.1, 0.05]))


@pytest.mark.parametrize("factor, succeeds", [(1.999, True), (2.001, False)])
def test_a_rise_by_more_than_a_factor_two_fails_at_once(class_vocab, monkeypatch, factor, succeeds):
    values = falling()
    values[10] = values[9] * factor
    rate, _ = search(class_vocab, monkeypatch, scripted(values))
    assert rate == (0.1 if succeeds else 0.05)


def test_the_search_trains_on_exactly_thirty_batches(class_vocab, monkeypatch):
    with pytest.raises(InputError, match=r"at least 30 batches of training data \(there are 29\)"):
        search(class_vocab, monkeypatch, scripted(falling()), num_sequences=29)
    rate, _ = search(class_vocab, monkeypatch, scripted(falling()), num_sequences=30)
    assert rate == 0.1


def test_no_stable_rate_down_to_the_lowest_is_an_error_not_an_endless_loop(class_vocab, monkeypatch):
    with pytest.raises(InputError, match="no learning rate down to 1e-09 trains stably"):
        search(class_vocab, monkeypatch, scripted([math.nan] * 30, succeeding=()))
