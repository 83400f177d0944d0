"""Fused operations: each a numpy body (the reference, and the CPU path) and a CUDA kernel.

A layer asks its backend's `kernels` for an operation by name and calls it with arrays of
its backend; the numpy body and the CUDA kernel take the same arguments and write the same
outputs. The numpy bodies are the specification: the tests compile every CUDA source with
NVRTC, run the CUDA kernels (on the CPU, thread by thread, or on a GPU) against the bodies,
and check the bodies against the layers' equations in float64.

    lstm_peepholes(p, B, T)   the peephole operand of the step kernels (0.5 p, laid out
                              for the body that uses it)
    lstm_forward_step(...)    gates, cell and output of one step from its pre-activations
    lstm_backward_factors(..) the factors K_o, K_h, K_zif, G of every step (lstm.py)
    lstm_backward_step(...)   da_z, da_i, da_f, da_o of one step and the cell error to t-1
    lstm_peephole_gradient(.) dp of a whole sequence
    softmax_pick(...)         a row softmax's exponentials, sums and target log p
    word_logits(...), word_softmax_pick(...), word_logit_gradient(...),
    word_input_gradient(...), word_bias_gradient(...), word_weight_update(...),
    word_weight_squared_norm(...)
                              the within-class word softmaxes of a batch, all groups at once
                              (softmax.py has the equations)
    sgd_step(...)             the momentum step of every dense parameter at once
    sum_of_squares(arrays)    sum_k |a_k|^2 of all dense gradients at once
    dropout_mask(...)         a dropout mask drawn from Philox4x32-10, keyed by position
"""

import types

from rwthlm_py.kernels import dropout, lstm, optimizer, softmax

KERNELS_BY_MODULE = {
    lstm: ("lstm_peepholes", "lstm_forward_step", "lstm_backward_factors", "lstm_backward_step",
           "lstm_peephole_gradient"),
    softmax: ("softmax_pick", "word_logits", "word_softmax_pick", "word_logit_gradient", "word_input_gradient",
              "word_bias_gradient", "word_weight_update", "word_weight_squared_norm"),
    optimizer: ("sgd_step", "sum_of_squares"),
    dropout: ("dropout_mask",),
}
KERNEL_NAMES = tuple(name for names in KERNELS_BY_MODULE.values() for name in names)


def numpy_kernels():
    """The numpy bodies, as the kernel set of the numpy backend."""
    return types.SimpleNamespace(**{name: getattr(module, name)
                                    for module, names in KERNELS_BY_MODULE.items() for name in names})
