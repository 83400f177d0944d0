"""The arithmetic of a lattice rescoring run: the floating-point operations of the matrix
products its network steps compute, counted call by call, for the GFLOP/s that a
benchmark sets beside numpy's own sgemm.

Per call of B histories (inputs, state, columns, targets; model/scoring_step.py):

    LSTM layer l of H_l cells, input width I_l:  2 * 4 H_l * H_l * B   (R h, where a state is given)
                                               + 2 * 4 H_l * I_l * B   (W x; none for the first layer,
                                                                        whose input part is a lookup per word)
    class layer of C classes:                    2 * C * H * B
    word logits:                                 2 * K(c) * H per distinct (column, class c) pair whose
                                                 class is clustered (K(c) its words; shortlist words have none)

Element-wise work (the gates, the normalisers) is not counted: the figure is the products'.
"""

import contextlib

import numpy

from rwthlm_py.model import scoring_step
from rwthlm_py.rescoring import kaldi_lattice_command, lattice_command


class StepFlops:
    """Counts the products' floating-point operations of the calls that pass through it
    (`wrap` a scorer); `flops` is the total so far."""

    def __init__(self, network):
        self.lstm_sizes = [layer.size for layer in network.layers[1:]]
        output = network.output
        self.num_classes = output.num_classes
        self.shortlist = output.shortlist
        self.word_class = numpy.asarray(output.word_class, dtype=numpy.int64)
        self.class_size = numpy.asarray(output.class_size, dtype=numpy.int64)
        self.flops = 0

    def call_flops(self, inputs, state, columns, targets):
        batch = len(inputs)
        flops = 0
        for index, size in enumerate(self.lstm_sizes):
            if state is not None:
                flops += 2 * 4 * size * size * batch
            if index > 0:
                flops += 2 * 4 * size * self.lstm_sizes[index - 1] * batch
        hidden = self.lstm_sizes[-1]
        flops += 2 * self.num_classes * hidden * batch
        classes = self.word_class[numpy.asarray(targets, dtype=numpy.int64)]
        clustered = classes >= self.shortlist
        pairs = numpy.unique(classes[clustered] * batch + numpy.asarray(columns, dtype=numpy.int64)[clustered])
        flops += 2 * hidden * int(self.class_size[pairs // batch].sum())
        return flops

    def wrap(self, scorer):
        counter = self

        class Counted:
            def next_word_log_probs(self, inputs, state, columns, targets, unk_penalty=0.0):
                counter.flops += counter.call_flops(inputs, state, columns, targets)
                return scorer.next_word_log_probs(inputs, state, columns, targets, unk_penalty)

        return Counted()


@contextlib.contextmanager
def counting(network):
    """Yields a StepFlops that counts the network steps of the lattice commands run inside."""
    counter = StepFlops(network)
    modules = (lattice_command, kaldi_lattice_command)
    originals = [module.scoring_step for module in modules]
    for module in modules:
        module.scoring_step = lambda step_network: counter.wrap(scoring_step.scoring_step(step_network))
    try:
        yield counter
    finally:
        for module, original in zip(modules, originals, strict=True):
            module.scoring_step = original
