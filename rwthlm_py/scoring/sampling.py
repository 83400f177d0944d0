"""`rwthlm-py sample`: sentences drawn from a model, to see what it has learnt.

Every sentence starts after the sentence boundary and draws word after word from
p(w | history) (the class-factored output draws the class, then the word within it:
ClassSoftmax.sample), with the logits divided by the temperature T (T < 1 sharpens, T > 1
flattens), until it draws the boundary or reaches `max_length` words. All sentences are
drawn together, a column each, the finished ones leaving the batch, a group of at most
MAX_GROUP at a time (fewer for a large vocabulary); the draws come from one generator
seeded with `seed`, so that the same model, seed and count give the same sentences on the
same backend.
"""

import dataclasses

import numpy

from rwthlm_py.model.network import select_state

# Sentences are drawn a group at a time, so that memory stays bounded whatever their count:
# at most MAX_GROUP, and fewer where one step's host logits of the group (float64: the
# logits, their exponentials, their running sums) would exceed GROUP_BYTES.
MAX_GROUP = 4096
GROUP_BYTES = 256 * 2 ** 20


@dataclasses.dataclass(frozen=True)
class Draws:
    """What `rwthlm-py sample` draws: `count` sentences at `temperature` from the generator
    seeded with `seed`, each ended after `max_length` words at the latest."""

    count: int = 10
    temperature: float = 1.0
    seed: int = 1
    max_length: int = 200


def sample_sentences(network, count, temperature=1.0, seed=1, max_length=200):
    """`count` sentences (lists of words), yielded in the order they were started."""
    generator = numpy.random.default_rng(seed)
    vocab = network.vocab
    widest = vocab.num_classes + int(vocab.class_size.max())
    group = max(1, min(MAX_GROUP, GROUP_BYTES // (3 * 8 * widest)))
    for start in range(0, count, group):
        yield from _draw_group(network, min(group, count - start), temperature, generator, max_length)


def _draw_group(network, count, temperature, generator, max_length):
    """`count` sentences drawn together, a column each, from `generator`."""
    vocab = network.vocab
    sentences = [[] for _ in range(count)]
    active = numpy.arange(count)
    inputs = numpy.full(count, vocab.sb, dtype=numpy.int64)
    state = None
    for _ in range(max_length):
        if not len(active):
            break
        hidden, state = network.step(inputs, state)
        words = network.output.sample(hidden, generator, temperature)
        going_on = words != vocab.sb
        for column in numpy.flatnonzero(going_on):
            sentences[active[column]].append(vocab.words[words[column]])
        keep = numpy.flatnonzero(going_on)
        active, inputs = active[keep], words[keep]
        state = select_state(state, network.xp.asarray(keep))
    return sentences
