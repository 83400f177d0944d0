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
"""

import types

from rwthlm_py.kernels import lstm

KERNEL_NAMES = ("lstm_peepholes", "lstm_forward_step", "lstm_backward_factors", "lstm_backward_step")


def numpy_kernels():
    """The numpy bodies, as the kernel set of the numpy backend."""
    return types.SimpleNamespace(**{name: getattr(lstm, name) for name in KERNEL_NAMES})
