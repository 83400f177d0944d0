"""How many CPU threads the process computes with, and the BLAS and OpenMP pools held to it.

`settle(requested)` decides the count once per process, before any network runs, by this
rule (README, `--threads`):

1. `--threads N` where given: every BLAS and OpenMP pool of the process is set to N;
2. else OPENBLAS_NUM_THREADS, then OMP_NUM_THREADS, where the user set one (OpenBLAS's own
   order): the pools stay as that environment made them, and N is its value;
3. else the cores this process may use (its CPU affinity), at most SLURM_CPUS_PER_TASK
   where Slurm gives one, else divided among the ranks on this node that an MPI launcher
   names; at least 1. The pools are set to N.

The environment is read, never written: the pools are set at run time through
threadpoolctl (which OpenBLAS, MKL and the OpenMP runtimes answer to).

Rescoring is run as many jobs side by side (Kaldi's --nj), and beside one busy process
one BLAS thread computed a rescoring step up to 2.7 times faster than two, beside three
up to 6.9 times (benchmarks/threads.py; the figures are in benchmarks/README.md): the
second thread waits for a core, and the first waits for it. On an idle machine two
threads were up to 1.6 times faster. A process that knows nothing of its neighbours
(rule 3 without a launcher's variable) therefore runs its rescoring steps on one thread
(`for_rescoring`); a count that was given (rules 1 and 2, or a launcher's) holds there
too. `limited(n)` holds the pools to at most n threads around any block. The pools are
the process's: a thread that limits them limits them for every thread.
"""

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Mapping
from typing import Any, ContextManager

import numpy  # noqa: F401 - loads numpy's BLAS, so that the pools' controller finds it
import threadpoolctl

from rwthlm_py.runtime.parallel import available_cores

# the user's thread settings, in the order OpenBLAS reads them (an OpenMP build's too)
ENVIRONMENT_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
# the number of ranks on this node, as MPI launchers name it: Open MPI, MPICH's and Intel
# MPI's Hydra, MVAPICH2, and PMI
LOCAL_RANKS = ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "MV2_COMM_WORLD_LOCAL_SIZE", "PMI_LOCAL_SIZE")
SLURM_CPUS = "SLURM_CPUS_PER_TASK"


@dataclasses.dataclass(frozen=True)
class Threads:
    """The settled thread count, where it comes from ("--threads", a variable's name, or "8
    cores / 2 ranks (OMPI_COMM_WORLD_LOCAL_SIZE)"), and whether anything gave it (the user
    or a launcher) rather than the bare count of cores."""

    count: int
    source: str
    given: bool = True

    def describe(self) -> str:
        text = f"{_threads(self.count)}: {self.source}"
        return text if self.given or self.count == 1 else text + "; rescoring steps on 1"

    @property
    def rescoring_count(self) -> int:
        return self.count if self.given else 1


_settled: Threads | None = None
_controller: threadpoolctl.ThreadpoolController | None = None


def positive_int(text: str) -> int | None:
    """The positive integer `text` spells (OMP_NUM_THREADS may list one per nesting level:
    the first counts), else None."""
    try:
        value = int(str(text).split(",")[0].strip())
    except ValueError:
        return None
    return value if value >= 1 else None


def default_threads(environ: Mapping[str, str] | None = None, cores: int | None = None) -> Threads:
    """The count when --threads is not given (rule 2 and 3 of the module docstring), with
    its source."""
    environ = os.environ if environ is None else environ
    for name in ENVIRONMENT_THREADS:
        value = positive_int(environ.get(name, ""))
        if value is not None:
            return Threads(value, name)
    cores = available_cores() if cores is None else cores
    plural = "s" if cores != 1 else ""
    slurm_cpus = positive_int(environ.get(SLURM_CPUS, ""))
    if slurm_cpus is not None:
        return Threads(min(cores, slurm_cpus), f"{cores} core{plural}, {SLURM_CPUS}={slurm_cpus}")
    for name in LOCAL_RANKS:
        ranks = positive_int(environ.get(name, ""))
        if ranks is not None:
            return Threads(max(1, cores // ranks), f"{cores} core{plural} / {ranks} ranks ({name})")
    return Threads(cores, f"{cores} core{plural}", given=False)


def settle(requested: int | None = None, environ: Mapping[str, str] | None = None) -> Threads:
    """Decides the process's thread count (`requested`: --threads, or None) and sets the
    pools to it where the rule says so; returns the Threads."""
    global _settled
    chosen = Threads(requested, "--threads") if requested is not None else default_threads(environ)
    if chosen.source not in ENVIRONMENT_THREADS:
        _pools(refresh=True).limit(limits=chosen.count)  # not undone: it holds until the process ends
    _settled = chosen
    return chosen


def settled() -> Threads | None:
    """The Threads of `settle`, or None where it has not been called (the Python API and
    the tests leave the pools as numpy found them)."""
    return _settled


def worker_count() -> int:
    """The threads of the process's own element-wise work: the settled count, else the
    cores it may use."""
    return _settled.count if _settled is not None else available_cores()


def describe(count: int) -> str:
    """"N threads" and, where the process settled on N, the rule's reason ("2 threads:
    --threads")."""
    if _settled is not None and _settled.count == count:
        return _settled.describe()
    return _threads(count)


def pool_sizes() -> dict[str, int]:
    """{library: threads} of the process's BLAS and OpenMP pools as they are now."""
    return {f"{pool['internal_api']} ({pool['user_api']})": pool["num_threads"] for pool in _pools().info()}


@contextlib.contextmanager
def limited(count: int) -> Iterator[None]:
    """Holds every BLAS and OpenMP pool to at most `count` threads inside the block (a pool
    already smaller stays as it is) and restores each one after it."""
    lowered: list[tuple[Any, int]] = []  # (threadpoolctl's LibController, its threads before)
    try:
        for pool in _pools().lib_controllers:
            before = pool.get_num_threads()
            if before is not None and before > count:
                pool.set_num_threads(count)
                lowered.append((pool, before))
        yield
    finally:
        for pool, before in reversed(lowered):
            pool.set_num_threads(before)


def for_rescoring() -> ContextManager[None]:
    """The threads of a rescoring step (a lattice frame's, an n-best prefix tree's): one
    where the settled count was not given (see the module docstring), else the pools as
    they are; where nothing was settled (the Python API), the pools as they are. A context
    manager."""
    if _settled is None or _settled.rescoring_count != 1:
        return contextlib.nullcontext()
    return limited(1)


def _threads(count: int) -> str:
    return f"{count} thread{'s' if count != 1 else ''}"


def _pools(refresh: bool = False) -> threadpoolctl.ThreadpoolController:
    """threadpoolctl's controller of the pools loaded so far (numpy's BLAS among them, loaded
    by the import above); made once, or again with `refresh` (finding the libraries takes
    a millisecond: too long for every scoring step)."""
    global _controller
    if _controller is None or refresh:
        _controller = threadpoolctl.ThreadpoolController()
    return _controller
