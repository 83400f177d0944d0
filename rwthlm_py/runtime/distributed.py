"""The processes of one job under MPI: which one this is, and the collectives they share.

A command started by an MPI launcher (`mpiexec -n N`, `srun` with an MPI plugin) runs as
N ranks of one job. `world()` tells the ranks apart and sums, broadcasts and gathers
between them through mpi4py (the optional extra `rwthlm_py[mpi]`). A process that no
launcher started, or the only rank of one, gets a world of one: its collectives return
what they are given, so that the code is the same with one process and with many.

mpi4py is imported only where a launcher names more than one rank: importing it starts
MPI, which on some clusters a lone process must not do.

A rank that fails must end the job, not leave the others waiting in a collective for
ever. A world of several ranks therefore ends the job (MPI_Abort, which the launcher
passes on to every rank) where a rank meets an uncaught exception, and `end_job` does the
same for a rank that stops on an error it reported itself. A rank killed outright
(SIGKILL) is seen by the launcher, which ends the others.
"""

import os
import sys
from typing import Any

import numpy

# the number of ranks of the job, as MPI launchers name it: Open MPI, MPICH's and Intel
# MPI's Hydra and Slurm's PMI-2 (PMI_SIZE), MVAPICH2
LAUNCHER_SIZES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")
# this rank's place among the ranks of its node, as the same launchers name it
LOCAL_RANK_NAMES = ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "MV2_COMM_WORLD_LOCAL_RANK", "PMI_LOCAL_RANK",
                    "SLURM_LOCALID")
MPI_EXTRA_HINT = "install it with: pip install 'rwthlm_py[mpi]'"


class NoMpi(Exception):
    """A launcher names several ranks but mpi4py cannot be imported."""


class World:
    """The ranks of one job; this one is a single process, whose collectives return their
    inputs. `MpiWorld` is the same for several."""

    rank = 0
    size = 1
    local_rank = 0

    @property
    def is_root(self) -> bool:
        """Rank 0 writes the job's files and prints its results."""
        return self.rank == 0

    def sum_in_place(self, array: Any) -> Any:
        """Replaces `array` (a contiguous numpy array) by its sum over the ranks; returns it."""
        return array

    def sum(self, values: Any) -> Any:
        """The sum over the ranks of a number or of a sequence of numbers, in float64."""
        return values

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value`, on every rank."""
        return value

    def gather(self, value: Any) -> list | None:
        """Every rank's `value`, in rank order, on rank 0; None on the others."""
        return [value]

    def all_gather(self, value: Any) -> list:
        """Every rank's `value`, in rank order, on every rank."""
        return [value]

    def barrier(self) -> None:
        """Returns when every rank has called it."""

    def end_job(self, status: int) -> None:
        """Ends every rank of the job with `status`; with one rank, nothing to do."""


class MpiWorld(World):
    """The ranks of mpi4py's COMM_WORLD."""

    def __init__(self, comm: Any):
        self._comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.local_rank = _local_rank(self.rank)
        _end_job_on_uncaught_exceptions(self)

    def sum_in_place(self, array: Any) -> Any:
        from mpi4py import MPI

        self._comm.Allreduce(MPI.IN_PLACE, array, op=MPI.SUM)
        return array

    def sum(self, values: Any) -> Any:
        buffer = numpy.array(values, dtype=numpy.float64)
        self.sum_in_place(buffer)
        return buffer.tolist() if buffer.ndim else float(buffer)

    def broadcast(self, value: Any) -> Any:
        return self._comm.bcast(value, root=0)

    def gather(self, value: Any) -> list | None:
        return self._comm.gather(value, root=0)

    def all_gather(self, value: Any) -> list:
        return self._comm.allgather(value)

    def barrier(self) -> None:
        self._comm.Barrier()

    def end_job(self, status: int) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self._comm.Abort(status)


_world: World | None = None


def world() -> World:
    """This job's ranks: an MpiWorld where a launcher started more than one, else a World
    of one. Decided once per process. Raises NoMpi where ranks are named but mpi4py is
    missing."""
    global _world
    if _world is None:
        _world = _mpi_world() if launched_ranks() > 1 else World()
    return _world


def launched_ranks(environ: Any = None) -> int:
    """How many ranks the launcher that started this process names; 1 for none."""
    environ = os.environ if environ is None else environ
    for name in LAUNCHER_SIZES:
        value = environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def _mpi_world() -> World:
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise NoMpi(f"started as {launched_ranks()} MPI ranks, but mpi4py cannot be imported "
                    f"({error}); {MPI_EXTRA_HINT}") from None
    return MpiWorld(MPI.COMM_WORLD)


def _local_rank(rank: int, environ: Any = None) -> int:
    environ = os.environ if environ is None else environ
    for name in LOCAL_RANK_NAMES:
        value = environ.get(name, "")
        if value.isdigit():
            return int(value)
    return rank


def _end_job_on_uncaught_exceptions(ranks: World) -> None:
    """An uncaught exception on any rank prints its traceback as usual, then ends the job."""
    previous = sys.excepthook

    def end_job(kind: Any, value: Any, traceback: Any) -> None:
        previous(kind, value, traceback)
        ranks.end_job(1)

    sys.excepthook = end_job
