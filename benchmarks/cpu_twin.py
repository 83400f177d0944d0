"""Would compiled CPU code pay? The LSTM forward step's numpy body against the same step
in C, and that step's share of a training batch.

    python benchmarks/cpu_twin.py

The C step is one loop over the [H, B] elements written for the vectorizer (gcc -O3
-march=native -ffast-math: glibc's vector tanhf), the best case for a compiled body; it is
compiled here, at run time, and needs gcc. Printed per case: microseconds per step of
each body, and the numpy step's share of a class-output training batch (T = 35; the
backward step and factors add about as much again). rwthlm_py keeps the numpy bodies as
its CPU path because this gain, times that share, is a few per cent of training (README,
"Speed"). Nothing here is a test.
"""

import ctypes
import pathlib
import subprocess
import tempfile
import time

import numpy
from common import benchmark_vocabulary, best_time, synthetic_batches

from rwthlm_py.kernels import lstm
from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.runtime.backend import get_backend
from rwthlm_py.training.optim import Sgd
from rwthlm_py.training.train import train_batch

C_STEP = r"""
#include <math.h>
/* lstm_forward_step with has_recurrence and a state; half_peepholes is [3][H*B]. */
void forward_step(float* restrict a, const float* restrict w_x, const float* restrict c_prev,
                  const float* restrict half_peepholes, float* restrict c, float* restrict tanh_c,
                  float* restrict h, long HB) {
    const float* p = half_peepholes;
    #pragma omp simd
    for (long k = 0; k < HB; ++k) {
        float z = tanhf(a[k] + w_x[k]);
        float i = 0.5f * tanhf(0.5f * (a[HB + k] + w_x[HB + k]) + p[k] * c_prev[k]) + 0.5f;
        float f = 0.5f * tanhf(0.5f * (a[2 * HB + k] + w_x[2 * HB + k]) + p[HB + k] * c_prev[k]) + 0.5f;
        float cell = i * z + f * c_prev[k];
        float o = 0.5f * tanhf(0.5f * (a[3 * HB + k] + w_x[3 * HB + k]) + p[2 * HB + k] * cell) + 0.5f;
        float t = tanhf(cell);
        a[k] = z; a[HB + k] = i; a[2 * HB + k] = f; a[3 * HB + k] = o;
        c[k] = cell; tanh_c[k] = t; h[k] = o * t;
    }
}
"""
CASES = [(200, 20), (200, 64), (650, 64)]
CALLS = 200  # steps per timed repeat


def main():
    library = compile_step()
    for hidden, batch_size in CASES:
        numpy_us, c_us, difference = time_step(library, hidden, batch_size)
        share = step_share(hidden, batch_size, numpy_us)
        print(f"H={hidden:<4d} B={batch_size:<3d}: numpy body {numpy_us:7.1f} us, C {c_us:7.1f} us "
              f"({numpy_us / c_us:.2f}x; largest difference {difference:.1e}); the numpy step is "
              f"{100 * share:.1f}% of a 1-layer class-output training batch")


def compile_step():
    build = pathlib.Path(tempfile.mkdtemp(prefix="rwthlm-cpu-twin-"))
    (build / "step.c").write_text(C_STEP)
    subprocess.run(["gcc", "-O3", "-march=native", "-ffast-math", "-fopenmp-simd", "-shared", "-fPIC",
                    "-o", str(build / "step.so"), str(build / "step.c"), "-lm"], check=True)
    return ctypes.CDLL(str(build / "step.so"))


def time_step(library, hidden, batch_size):
    rng = numpy.random.default_rng(0)
    start = rng.normal(size=(4, hidden, batch_size)).astype(numpy.float32)
    w_x = rng.normal(size=(4 * hidden, batch_size)).astype(numpy.float32)
    c_prev = rng.normal(size=(hidden, batch_size)).astype(numpy.float32)
    peepholes = lstm.lstm_peepholes(rng.normal(size=3 * hidden).astype(numpy.float32), batch_size, 35)
    outputs = {}
    times = {}
    for body in ("numpy", "c"):
        a = start.copy()
        c, tanh_c, h = (numpy.empty((hidden, batch_size), numpy.float32) for _ in range(3))
        arguments = [ctypes.c_void_p(x.ctypes.data) for x in (a, w_x, c_prev, peepholes, c, tanh_c, h)]

        # the step functions are called within this iteration only, on its own arrays
        def numpy_step():
            lstm.lstm_forward_step(a, w_x, c_prev, peepholes, c, tanh_c, h, True)  # noqa: B023

        def c_step():
            library.forward_step(*arguments, ctypes.c_long(hidden * batch_size))  # noqa: B023

        step = numpy_step if body == "numpy" else c_step
        step()  # from the same start for both bodies; later steps run on the activations
        outputs[body] = h.copy()

        def steps():
            for _ in range(CALLS):
                step()  # noqa: B023

        times[body] = best_time(steps, repeats=7) / CALLS
    difference = float(numpy.abs(outputs["numpy"] - outputs["c"]).max())
    return 1e6 * times["numpy"], 1e6 * times["c"], difference


def step_share(hidden, batch_size, numpy_us, steps=35):
    vocab = benchmark_vocabulary(10000, 100)
    network = Network.build(parse_network(f"b-i{hidden}-m{hidden}"), vocab, get_backend("numpy"), seed=1)
    optimizer = Sgd(network, momentum=0.9)
    batches = synthetic_batches(vocab, batch_size, steps, 4)

    def train():
        for batch in batches:
            train_batch(network, optimizer, batch, None, 1e-3)

    seconds = best_time(train, repeats=3) / len(batches)
    return steps * numpy_us * 1e-6 / seconds


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"took {time.perf_counter() - started:.0f} s")
