"""One word at a time equals the whole sequence: Network.next_word_log_probs, stepping many
histories with several next words each, against Network.log_probs of whole sentences."""

import numpy
import pytest
from conftest import make_backend

from rwthlm_py.model.network import Network, concatenate_states, select_state
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.text import data


@pytest.mark.parametrize("device", ["numpy", "strict-cupy"])
@pytest.mark.parametrize("spec", ["t-i6-m5", "t-36-l5-R4-M4-L3", "t-r5-m4-i3"])
def test_stepping_histories_word_by_word_equals_scoring_whole_sentences(class_vocab, device, spec):
    backend = make_backend(device, "float64")
    network = Network.build(parse_network(spec), class_vocab, backend, seed=3)
    sb = class_vocab.sb
    sentences = [[3, 7, 1], [3, 7, 9, 2], [5], [3, 8]]
    # whole sentences, as perplexity scores them (verbatim, from the zero state)
    expected = []
    for words in sentences:
        stream = numpy.array(words + [sb], dtype=numpy.int32)
        context = numpy.array([sb] + words, dtype=numpy.int32)
        batch = data.make_batch(stream, context, numpy.array([0]), numpy.array([len(stream)]))
        expected.append(backend.to_numpy(network.log_probs(batch)[0]))
    # all sentences at once, one step at a time; each column also asks for every word
    steps = max(len(words) for words in sentences) + 1
    state, last = None, [sb] * len(sentences)
    for t in range(steps):
        active = [k for k, words in enumerate(sentences) if t <= len(words)]
        columns, targets = [], []
        for column in range(len(active)):
            columns += [column] * len(class_vocab)
            targets += list(range(len(class_vocab)))
        step_state = None if state is None else select_state(state, numpy.array(active))
        logp, new_state = network.next_word_log_probs([last[k] for k in active], step_state, columns, targets)
        logp = backend.to_numpy(logp).reshape(len(active), len(class_vocab))
        assert numpy.allclose(numpy.exp(logp).sum(axis=1), 1, rtol=1e-12)
        for column, k in enumerate(active):
            word = (sentences[k] + [sb])[t]
            assert logp[column, word] == pytest.approx(expected[k][t], rel=1e-12, abs=1e-12)
            last[k] = word
        # carry every sentence's state (finished ones keep theirs)
        parts = [select_state(new_state, numpy.array([active.index(k)])) if k in active
                 else select_state(state, numpy.array([k])) for k in range(len(sentences))]
        state = concatenate_states(parts)


@pytest.mark.parametrize("spec", ["t-i5-m4", "t-36-l5-R4-M4-L3", "t-r6-m4-i3", "t-l4-r4-m3-m3", "t-L4-24", "t-R4-l3"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("vocab_name", ["class_vocab", "full_vocab"])
def test_parameter_count_before_allocation_equals_the_built_network(request, spec, bias, vocab_name):
    vocab = request.getfixturevalue(vocab_name)
    network = Network(parse_network(spec), vocab, make_backend("numpy"), bias=bias)
    assert Network.parameter_count(parse_network(spec), vocab, bias) == network.num_params()
