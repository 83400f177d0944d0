"""rwthlm-py train's initial learning rate (rate_search.py): the bracketed search's
decisions on scripted held-out perplexities, its grid, and the command line."""

import io
import math
import subprocess
import sys

import pytest

from rwthlm_py import data, rate_search
from rwthlm_py.backend import get_backend
from rwthlm_py.network import Network
from rwthlm_py.network_spec import parse_network
from rwthlm_py.optim import Sgd
from rwthlm_py.reporting import Console
from rwthlm_py.selftest import synthetic_corpus
from rwthlm_py.train import Schedule

BASE = 0.025  # the grid's k = 0 for 20 sequences of 35 predicted words


def search(class_vocab, monkeypatch, perplexity_at):
    """The chosen rate and the grid steps k tried, where a trial at k scores perplexity_at(k)."""
    tried = []

    def scripted(network, optimizer, batches, rate, dev_corpus, dev_sequences, schedule):
        k = round(math.log2(rate / BASE))
        assert rate == pytest.approx(BASE * 2.0 ** k, rel=1e-12)
        tried.append(k)
        return perplexity_at(k)

    monkeypatch.setattr(rate_search, "_train_and_judge", scripted)
    corpus = synthetic_corpus(class_vocab, seed=2)
    network = Network.build(parse_network("t-i3-m2"), class_vocab, get_backend("numpy"), seed=1)
    schedule = Schedule(batch_size=20, sequence_length=36)
    order = data.wrap(corpus, "fixed", 20, 36)
    rate = rate_search.search_learning_rate(network, Sgd(network), corpus, order, corpus, order, schedule,
                                            Console(out=io.StringIO(), err=io.StringIO()))
    return rate, tried


def test_doubles_while_the_held_out_perplexity_improves(class_vocab, monkeypatch):
    rate, tried = search(class_vocab, monkeypatch, lambda k: 100 + (k - 2) ** 2)
    assert tried == [0, 1, 2, 3] and rate == BASE * 4


def test_halves_while_it_improves_when_doubling_does_not(class_vocab, monkeypatch):
    rate, tried = search(class_vocab, monkeypatch, lambda k: 100 + (k + 2) ** 2)
    assert tried == [0, 1, -1, -2, -3] and rate == BASE / 4


def test_halving_goes_on_past_diverged_trials(class_vocab, monkeypatch):
    rate, tried = search(class_vocab, monkeypatch, lambda k: math.inf if k > -3 else 100 + (k + 4) ** 2)
    assert tried == [0, 1, -1, -2, -3, -4, -5] and rate == BASE / 16


def test_at_most_seven_trials(class_vocab, monkeypatch):
    rate, tried = search(class_vocab, monkeypatch, lambda k: 100 - k)
    assert tried == [0, 1, 2, 3, 4, 5, 6] and rate == BASE * 64


def test_the_grid_scales_with_the_words_of_a_batch():
    assert rate_search.TUNED_RATE * (20 * 35) / rate_search.TUNED_BATCH_WORDS == 0.025  # exactly the recipe's
    assert rate_search.TUNED_RATE * (64 * 35) / rate_search.TUNED_BATCH_WORDS == pytest.approx(0.08, rel=1e-15)


def test_the_command_lines_choose_their_own_searches(toy):
    common = ["--train", "train.txt", "--dev", "dev.txt", "--vocab", "vocab", "--max-epoch", "1"]
    ours = subprocess.run([sys.executable, "-m", "rwthlm_py", "train", *common, "--batch-size", "4",
                           "--sequence-length", "11", "ours-i8-m8"], cwd=toy, capture_output=True, text=True,
                          timeout=300)
    assert ours.returncode == 0, ours.stderr
    lines = ours.stdout.splitlines()
    tried = [line for line in lines if line.startswith("  learning rate ")]
    assert 2 <= len(tried) <= 7 and "Searching the initial learning rate" in ours.stdout
    chosen = float(next(line for line in lines if line.startswith("initial learning rate: ")).split()[3])
    assert any(line.startswith(f"  learning rate {chosen:.4e}:") for line in tried)
    rwthlm = subprocess.run([sys.executable, "-c", "import sys; from rwthlm_py.cli import rwthlm_main; "
                             "sys.exit(rwthlm_main())", *common, "--batch-size", "4", "--sequence-length", "11",
                             "theirs-i8-m8"], cwd=toy,
                            capture_output=True, text=True, timeout=300)
    assert rwthlm.returncode == 0, rwthlm.stderr
    assert "Determining initial learning rate ..." in rwthlm.stdout and "Searching" not in rwthlm.stdout
