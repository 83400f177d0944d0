"""`rwthlm-py sample`: the words drawn follow the model's probabilities (first words and
the words after a given one), a temperature T draws from the model whose output logits
are divided by T, and the command line prints the sentences."""

import subprocess
import sys

import numpy
import pytest

from rwthlm_py.model.checkpoint import TrainingState, save_model
from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.runtime.backend import get_backend
from rwthlm_py.scoring.sampling import sample_sentences

DRAWS = 20_000


def toy_network(vocab, seed=4, scale=4.0):
    """A small random network with a far from uniform output distribution."""
    network = Network.build(parse_network("t-i6-m5"), vocab, get_backend("numpy", "float64"), seed=seed)
    for value in network.named_params().values():
        value *= scale
    return network


def next_word_probabilities(network, history):
    """p(w | <sb> history) of every word w, by the scoring path."""
    vocab, state = network.vocab, None
    words = [vocab.sb] + history
    for word in words[:-1]:
        _, state = network.step([word], state)
    log_probs, _ = network.next_word_log_probs([words[-1]], state, numpy.zeros(len(vocab), dtype=numpy.int64),
                                               numpy.arange(len(vocab)))
    return numpy.exp(log_probs)


def assert_frequencies_match(words, probabilities, vocab):
    counts = numpy.bincount([vocab.index[word] for word in words], minlength=len(vocab))
    frequencies = counts / len(words)
    spread = numpy.sqrt(probabilities * (1 - probabilities) / len(words))
    assert numpy.all(numpy.abs(frequencies - probabilities) <= 5 * spread + 1e-4), (frequencies, probabilities)


@pytest.mark.parametrize("vocab_name", ["class_vocab", "full_vocab"])
def test_first_and_second_words_follow_the_model(request, vocab_name):
    vocab = request.getfixturevalue(vocab_name)
    network = toy_network(vocab)
    sentences = list(sample_sentences(network, DRAWS, seed=3, max_length=2))
    first = [sentence[0] if sentence else vocab.sb_name for sentence in sentences]
    assert_frequencies_match(first, next_word_probabilities(network, []), vocab)
    common = max(set(first) - {vocab.sb_name}, key=first.count)
    second = [s[1] if len(s) > 1 else vocab.sb_name for s in sentences if s and s[0] == common]
    assert len(second) > 1000
    assert_frequencies_match(second, next_word_probabilities(network, [vocab.index[common]]), vocab)


def test_a_temperature_draws_from_the_output_logits_divided_by_it(class_vocab):
    network = toy_network(class_vocab)
    cooler = toy_network(class_vocab)
    for name in ("W_class", "b_class", "W_word", "b_word"):
        cooler.output.params[name] *= 2.0  # logits / 0.5
    sentences = list(sample_sentences(network, DRAWS, temperature=0.5, seed=5, max_length=1))
    first = [sentence[0] if sentence else class_vocab.sb_name for sentence in sentences]
    assert_frequencies_match(first, next_word_probabilities(cooler, []), class_vocab)


def test_the_same_seed_draws_the_same_sentences_and_they_end_at_the_boundary(class_vocab):
    network = toy_network(class_vocab, scale=1.0)
    first = list(sample_sentences(network, 50, seed=9))
    assert first == list(sample_sentences(network, 50, seed=9)) != list(sample_sentences(network, 50, seed=10))
    assert all(class_vocab.sb_name not in sentence for sentence in first)
    assert all(len(sentence) <= 3 for sentence in sample_sentences(network, 50, seed=9, max_length=3))


def test_the_command_line_prints_one_sentence_per_line(tmp_path, class_vocab):
    network = toy_network(class_vocab, scale=1.0)
    save_model(tmp_path / "t-i6-m5", network, None, TrainingState())
    command = [sys.executable, "-m", "rwthlm_py", "sample", "t-i6-m5", "--num", 7, "--seed", 2, "--dtype", "float64"]
    result = subprocess.run(list(map(str, command)), cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")[:-1]
    assert lines == [" ".join(words) for words in sample_sentences(network, 7, seed=2)]
    bad = subprocess.run([sys.executable, "-m", "rwthlm_py", "sample", "t-i6-m5", "--temperature", "0"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--temperature must be a positive number" in bad.stderr


def test_sentences_are_drawn_a_bounded_group_at_a_time(class_vocab, monkeypatch):
    """However many sentences are asked for, at most MAX_GROUP are drawn together; the
    groups come from the one generator, so that a seed still gives the same sentences."""
    import rwthlm_py.scoring.sampling as sampling

    network = toy_network(class_vocab, scale=1.0)
    widths = []
    draw = sampling._draw_group
    def recorded(net, count, *rest):
        widths.append(count)
        return draw(net, count, *rest)

    monkeypatch.setattr(sampling, "_draw_group", recorded)
    monkeypatch.setattr(sampling, "MAX_GROUP", 4)
    sentences = list(sample_sentences(network, 10, seed=9))
    assert widths == [4, 4, 2] and len(sentences) == 10
    assert sentences == list(sample_sentences(network, 10, seed=9))
