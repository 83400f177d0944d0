"""A program for `mpiexec -n N` (tests/test_data_parallel.py): every rank trains a network
on the toy text with the job's ranks and, beside it, one with a world of one rank (the
whole batch in this process), batch by batch, in float64; and scores the dev text both
ways. Rank 0 writes a JSON report to the file named by argv[1]: per case the largest
difference of the parameters after any batch, of the losses, of the dev scores, and
whether the ranks' parameters are bitwise the same.

With argv[2] = "strict" the ranks' networks live on the strict cupy double
(rwthlm_py.testing.strict_cupy), which refuses what cupy refuses; without NCCL their
gradients are summed through host buffers. The reference stays numpy.
"""

import json
import sys

import numpy

from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.runtime import backend as backends
from rwthlm_py.runtime import distributed
from rwthlm_py.scoring.evaluate import score_corpus
from rwthlm_py.testing.strict_cupy import strict_backend
from rwthlm_py.text import data
from rwthlm_py.text.vocabulary import remap
from rwthlm_py.training import data_parallel, train
from rwthlm_py.training.optim import Sgd
from rwthlm_py.training.train import Schedule, train_steps

NOUNS = ["cat", "dog", "bird", "man", "woman", "child"]
VERBS = ["sees", "likes", "chases", "feeds"]
ADJECTIVES = ["big", "small", "red", "old"]
WORDS = ["the", "a", "and"] + NOUNS + VERBS + ADJECTIVES
BATCHES = 25  # past the end of the 104 lines: a narrower last batch in stream mode

# name: (network, Schedule settings, classes, momentum, tied)
CASES = {
    "fixed, 5 columns on 2 ranks (3 + 2), dropout, clipping, classes": (
        "x-i8-m8", dict(batch_size=5, word_wrapping="fixed", dropout=0.3, gradient_clipping=1.0), True, 0.5, False),
    "concatenated, variational dropout, clipping, classes": (
        "x-i8-m8", dict(batch_size=4, word_wrapping="concatenated", dropout=0.3, variational_dropout=True,
                        gradient_clipping=1.0), True, 0.0, False),
    "stream, carried state, dropout, clipping, classes": (
        "x-i8-m8", dict(batch_size=5, word_wrapping="stream", dropout=0.2, gradient_clipping=1.0), True, 0.5, False),
    "one column: a rank without columns": (
        "x-i8-m8", dict(batch_size=1, word_wrapping="fixed", gradient_clipping=1.0), True, 0.0, False),
    "feedforward, dropout, clipping": (
        "x-i8-m8", dict(batch_size=3, word_wrapping="fixed", feedforward=True, dropout=0.2, gradient_clipping=1.0),
        True, 0.0, False),
    "full softmax, tied weights": (
        "x-i8-m8", dict(batch_size=4, word_wrapping="fixed", gradient_clipping=1.0), False, 0.5, True),
}
STRICT_CASES = ["fixed, 5 columns on 2 ranks (3 + 2), dropout, clipping, classes",
                "stream, carried state, dropout, clipping, classes"]


def toy_lines(count, seed):
    rng = numpy.random.default_rng(seed)
    for number in range(1, count + 1):
        words = ["the"] + ([str(rng.choice(ADJECTIVES))] if rng.random() < 0.4 else [])
        words += [str(rng.choice(NOUNS)), str(rng.choice(VERBS)), "the", str(rng.choice(NOUNS))]
        yield number, " ".join(words)


def vocabulary(classes):
    """The toy words in 5 classes (or each in its own)."""
    return remap([(word, index % 5 if classes else index) for index, word in enumerate(WORDS)], "<sb>")


def flat_params(network):
    to_numpy = network.backend.to_numpy
    return numpy.concatenate([to_numpy(value).ravel() for value in network.named_params().values()])


def run_case(spec, settings, classes, momentum, tied, ranks, strict=False):
    backend = backends.get_backend("numpy", "float64")
    ranks_backend = strict_backend("float64") if strict else backend
    vocab = vocabulary(classes)
    corpus = data.corpus_from_lines(toy_lines(104, 1), "train", vocab)
    dev = data.corpus_from_lines(toy_lines(30, 2), "dev", vocab)
    schedule = Schedule(sequence_length=8, **settings)
    sequences = schedule.epoch_order(schedule.wrap(corpus), 0)
    batches = list(data.batches(corpus, sequences, schedule.batch_size))[:BATCHES]
    networks = [Network.build(parse_network(spec), vocab, chosen, seed=3, tie_weights=tied)
                for chosen in (ranks_backend, backend)]
    optimizers = [Sgd(network, momentum) for network in networks]
    one = distributed.World()
    difference, loss_difference = 0.0, 0.0
    together = train_steps(networks[0], optimizers[0], batches, 0.2, schedule)
    alone = train_steps_alone(networks[1], optimizers[1], batches, 0.2, schedule, one)
    for (_, _, loss, _), (_, _, loss_alone, _) in zip(together, alone, strict=True):
        difference = max(difference, float(numpy.abs(flat_params(networks[0]) - flat_params(networks[1])).max()))
        loss_difference = max(loss_difference, abs(float(loss) - loss_alone) / abs(loss_alone))
    dev_sequences = schedule.wrap(dev)
    scoring = dict(carry_state=schedule.carry_state, feedforward=schedule.feedforward)
    scores = data_parallel.score_on_ranks(networks[0], dev, dev_sequences, schedule.batch_size, ranks, **scoring)
    scores_alone = score_corpus(networks[0], dev, dev_sequences, schedule.batch_size, **scoring)
    everyone = ranks.all_gather(flat_params(networks[0]).tobytes())
    return {"parameters": difference, "losses": loss_difference,
            "dev": abs(scores.log_prob - scores_alone.log_prob) / abs(scores_alone.log_prob),
            "dev_counts": [scores.num_targets, scores_alone.num_targets, scores.num_sb, scores_alone.num_sb],
            "ranks_identical": all(piece == everyone[0] for piece in everyone)}


def train_steps_alone(network, optimizer, batches, rate, schedule, one):
    """train_steps with the whole batch in this process (the reference)."""
    state = None
    for number, batch in enumerate(batches, start=1):
        state = train.network_state_for(state, batch.batch_size) if schedule.carry_state else None
        loss, state = train.train_batch(network, optimizer, batch, state, rate, schedule.feedforward,
                                        schedule.gradient_clipping, schedule.dropout_masks(network.backend, 0, number),
                                        ranks=one)
        yield number, batch, loss, state


def main():
    ranks = distributed.world()
    strict = sys.argv[2:] == ["strict"]
    cases = {name: case for name, case in CASES.items() if not strict or name in STRICT_CASES}
    report = {name: run_case(*case, ranks, strict) for name, case in cases.items()}
    if ranks.is_root:
        with open(sys.argv[1], "w") as out:
            json.dump({"ranks": ranks.size, "cases": report}, out, indent=1)


if __name__ == "__main__":
    main()
