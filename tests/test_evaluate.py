"""Perplexity: rwthlm's counting, the printed lines, and independence of batching."""

import math
import re

import numpy
import pytest

from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.runtime.backend import get_backend
from rwthlm_py.scoring.evaluate import score_corpus, summary_lines, verbose_lines
from rwthlm_py.text import data
from rwthlm_py.training.selftest import synthetic_corpus


@pytest.fixture
def network(class_vocab):
    return Network.build(parse_network("t-i6-m5"), class_vocab, get_backend("numpy", "float64"), seed=4)


def scores_for(network, corpus, mode, batch_size, length=12, **kwargs):
    sequences = data.wrap(corpus, mode, batch_size, length)
    return score_corpus(network, corpus, sequences, batch_size, keep_tokens=True, **kwargs)


def test_perplexity_counts_every_predicted_token(network, class_vocab):
    corpus = synthetic_corpus(class_vocab, seed=1)
    scores = scores_for(network, corpus, "verbatim", 1)
    assert scores.num_targets == len(corpus.stream)
    assert scores.num_sb == corpus.num_lines
    assert math.isclose(scores.perplexity, math.exp(-numpy.nansum(scores.token_log_probs) / len(corpus.stream)))


@pytest.mark.parametrize("mode", ["verbatim", "concatenated"])
def test_sentence_wise_modes_do_not_depend_on_batch_size(network, class_vocab, mode):
    corpus = synthetic_corpus(class_vocab, seed=1)
    one = scores_for(network, corpus, mode, 1)
    five = scores_for(network, corpus, mode, 5)
    assert numpy.allclose(one.token_log_probs, five.token_log_probs, equal_nan=True)
    assert list(verbose_lines(one, corpus, class_vocab)) == list(verbose_lines(five, corpus, class_vocab))


def test_stream_mode_with_one_stream_equals_one_long_sequence(network, class_vocab):
    corpus = synthetic_corpus(class_vocab, seed=1)
    stream = scores_for(network, corpus, "stream", 1, length=5, carry_state=True)
    whole = scores_for(network, corpus, "fixed", 1, length=len(corpus.stream) + 1)
    assert numpy.allclose(stream.token_log_probs, whole.token_log_probs)


def test_fixed_mode_resets_the_state_at_every_batch(network, class_vocab):
    corpus = synthetic_corpus(class_vocab, seed=1)
    fixed = scores_for(network, corpus, "fixed", 1, length=5)
    stream = scores_for(network, corpus, "stream", 1, length=5, carry_state=True)
    assert numpy.allclose(fixed.token_log_probs[:4], stream.token_log_probs[:4])
    assert not numpy.allclose(fixed.token_log_probs, stream.token_log_probs)


def test_feedforward_scoring_forgets_recurrent_state(class_vocab):
    network = Network.build(parse_network("t-36-l5"), class_vocab, get_backend("numpy", "float64"), seed=4)
    corpus = synthetic_corpus(class_vocab, seed=1)
    recurrent = scores_for(network, corpus, "verbatim", 3)
    feedforward = scores_for(network, corpus, "verbatim", 3, feedforward=True)
    # a feedforward n-gram network has no recurrent state: both ways agree
    assert numpy.allclose(recurrent.token_log_probs, feedforward.token_log_probs, equal_nan=True)
    lstm = Network.build(parse_network("t-i6-m5"), class_vocab, get_backend("numpy", "float64"), seed=4)
    recurrent = scores_for(lstm, corpus, "verbatim", 3)
    feedforward = scores_for(lstm, corpus, "verbatim", 3, feedforward=True)
    first = corpus.line_starts[:-1]
    # the first word of every sentence has no history either way
    assert numpy.allclose(recurrent.token_log_probs[first], feedforward.token_log_probs[first])
    assert not numpy.allclose(recurrent.token_log_probs, feedforward.token_log_probs, equal_nan=True)


def test_unk_penalty_applies_to_unk_targets_only(tmp_path):
    from rwthlm_py.text.vocabulary import read_vocabulary

    (tmp_path / "v").write_text("a\nb\n<unk>\n")
    vocab = read_vocabulary(tmp_path / "v").with_unk("<unk>")
    (tmp_path / "t").write_text("a x b\n")
    corpus = data.read_corpus(tmp_path / "t", vocab, use_unk=True)
    network = Network.build(parse_network("t-i4-m3"), vocab, get_backend("numpy", "float64"))
    plain = scores_for(network, corpus, "verbatim", 1)
    penalised = scores_for(network, corpus, "verbatim", 1, unk_penalty=math.log(4))
    difference = plain.token_log_probs - penalised.token_log_probs
    assert numpy.allclose(difference, [0, math.log(4), 0, 0])


def test_unk_penalty_is_ln_num_oovs_plus_one_and_needs_unk():
    from rwthlm_py.log_probs import unk_penalty

    assert unk_penalty(3) == unk_penalty(3, unk=True) == math.log(4)
    assert unk_penalty(0) == 0.0 and unk_penalty(3, unk=False) == 0.0


def test_verbose_line_format(network, class_vocab):
    corpus = synthetic_corpus(class_vocab, seed=1)
    scores = scores_for(network, corpus, "verbatim", 2)
    lines = list(verbose_lines(scores, corpus, class_vocab))
    assert len(lines) == scores.num_targets
    pattern = re.compile(r"^\tp\( (\S+) \| \.\.\. \) \t = \[1gram\] (\d+\.\d{8}) \[ (-?\d+\.\d{5}) \]$")
    for line, position in zip(lines, range(len(corpus.stream)), strict=True):
        match = pattern.match(line)
        assert match, line
        assert match.group(1) == class_vocab.words[corpus.stream[position]]
        assert abs(float(match.group(3)) - scores.token_log_probs[position] / math.log(10)) < 1e-5


def test_summary_lines_follow_srilm_and_rwthlm(network, class_vocab):
    corpus = synthetic_corpus(class_vocab, seed=1)
    scores = scores_for(network, corpus, "verbatim", 2)
    lines = summary_lines(scores, "test.txt")
    words = scores.num_targets - corpus.num_lines
    assert lines[0] == f"file test.txt: {corpus.num_lines} sentences, {words} words, 0 OOVs"
    logprob = scores.log_prob / math.log(10)
    numbers = dict(re.findall(r"(\w+)= (\S+)", lines[1]))
    assert float(numbers["logprob"]) == pytest.approx(logprob, rel=1e-5)
    assert float(numbers["ppl"]) == pytest.approx(10 ** (-logprob / (words + corpus.num_lines)), rel=1e-5)
    assert float(numbers["ppl1"]) == pytest.approx(10 ** (-logprob / words), rel=1e-5)
    assert float(numbers["ppl"]) == pytest.approx(scores.perplexity, rel=1e-5)
    assert lines[-2] == "perplexity:"
    assert float(lines[-1]) == pytest.approx(scores.perplexity, rel=1e-15)
    assert re.fullmatch(r"\d+\.\d{20}", lines[-1])


def test_log_probabilities_sum_to_one_over_the_vocabulary(float64, class_vocab):
    network = Network.build(parse_network("t-i6-m5"), class_vocab, float64, seed=2)
    for value in network.named_params().values():
        value *= 10
    h = numpy.random.default_rng(0).normal(size=(7, 5))
    log_p = network.output.log_distribution(h)
    assert numpy.allclose(numpy.exp(log_p).sum(axis=1), 1.0)
    targets = numpy.arange(7) % len(class_vocab)
    picked, _ = network.output.forward(h.copy(), targets, train=False)
    assert numpy.allclose(picked, log_p[numpy.arange(7), targets])


def test_one_class_of_all_words_is_a_plain_softmax(float64):
    from rwthlm_py.text.vocabulary import remap

    vocab = remap([(f"w{k}", 0) for k in range(6)] + [("<sb>", 0)], "<sb>")
    network = Network.build(parse_network("t-i4-m3"), vocab, float64, seed=1)
    h = numpy.random.default_rng(0).normal(size=(5, 3))
    out = network.output
    logits = h @ out.params["W_word"].T + out.params["b_word"]
    expected = logits - numpy.log(numpy.exp(logits).sum(axis=1, keepdims=True))
    assert numpy.allclose(out.log_distribution(h), expected)


@pytest.mark.parametrize("vocab_name", ["full_vocab", "class_vocab"])
@pytest.mark.parametrize("train", [False, True])
def test_extreme_logits_stay_finite(request, float64, vocab_name, train):
    vocab = request.getfixturevalue(vocab_name)
    network = Network.build(parse_network("t-i4-m3"), vocab, float64, seed=1)
    for name in ("W_class", "W_word"):
        network.output.params[name][...] *= 1e4  # exp overflows without the shift
    h = numpy.random.default_rng(0).normal(size=(len(vocab), 3))
    targets = numpy.arange(len(vocab))
    logp, cache = network.output.forward(h.copy(), targets, train=train)
    assert numpy.all(numpy.isfinite(logp))
    assert numpy.allclose(logp, network.output.log_distribution(h)[targets, targets])
    if train:
        assert numpy.all(numpy.isfinite(network.output.backward(None, cache)))


def test_a_perplexity_that_overflows_is_inf():
    from rwthlm_py.scoring.evaluate import Scores

    assert Scores(log_prob=-1e6, num_targets=10, num_sb=1, num_sentences=1, unk_count=0).perplexity == math.inf
    assert Scores(log_prob=-20.0, num_targets=10, num_sb=1, num_sentences=1, unk_count=0).perplexity == \
        pytest.approx(math.exp(2.0))
