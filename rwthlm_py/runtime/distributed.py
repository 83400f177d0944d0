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

Arrays on a GPU are summed on the devices (`device_sum`): NCCL through cupy.cuda.nccl,
its communicator made from a unique id that rank 0 draws and broadcasts over MPI; where
NCCL cannot be had, through host buffers (a copy to the host and back), said in one line.
Each rank of a node takes its own GPU, `device_for_rank`.
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
MPI_EXTRA_HINT = "install it with: pip install 'rwthlm_py[mpi]' (in a checkout: pip install -e '.[mpi]')"


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
        # MPI does not promise every rank the same bits of a sum; decisions taken on these
        # figures (halving, rollback) must be the same on every rank, so rank 0's are used
        self._comm.Bcast(buffer, root=0)
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


class HostSum:
    """Sums arrays over the ranks through MPI: numpy arrays in place; device arrays (of
    `backend`) by a copy to the host and back."""

    def __init__(self, ranks: World, backend: Any = None):
        self.ranks, self.backend = ranks, backend

    def sum_in_place(self, array: Any) -> Any:
        if self.backend is None or self.backend.on_host:
            return self.ranks.sum_in_place(array)
        host = self.ranks.sum_in_place(numpy.ascontiguousarray(self.backend.to_numpy(array)))
        array[...] = self.backend.asarray(host)
        return array


class NcclSum:
    """Sums device arrays over the ranks with NCCL's allreduce, on the current stream.

    `pointer(array)` is the device address of a contiguous array and `stream()` the
    current stream's handle (cupy's, unless a test's double gives others)."""

    def __init__(self, communicator: Any, nccl: Any, pointer: Any, stream: Any):
        self.communicator, self.nccl = communicator, nccl
        self.pointer, self.stream = pointer, stream

    def sum_in_place(self, array: Any) -> Any:
        codes = {numpy.dtype(numpy.float32): self.nccl.NCCL_FLOAT32, numpy.dtype(numpy.float64): self.nccl.NCCL_FLOAT64}
        address = self.pointer(array)
        self.communicator.allReduce(address, address, int(array.size), codes[numpy.dtype(array.dtype)],
                                    self.nccl.NCCL_SUM, self.stream())
        return array


def device_sum(ranks: World, backend: Any, nccl: Any = None, pointer: Any = None, stream: Any = None) -> tuple:
    """(summer, note): what sums `backend`'s arrays over the ranks, its sum_in_place(array),
    and a line to show where it is not the fast path (None where it is). NCCL for device
    arrays of several ranks (`nccl`: the cupy.cuda.nccl module, imported where None;
    `pointer` and `stream` as NcclSum's), else MPI on host buffers. Every rank must call it:
    making an NCCL communicator is a collective."""
    if ranks.size == 1 or backend.on_host:
        return HostSum(ranks), None
    unique_id, missing = None, None
    try:
        nccl = nccl if nccl is not None else _import_nccl()
        unique_id = nccl.get_unique_id() if ranks.is_root else None
    except Exception as error:  # noqa: BLE001 - no NCCL here: the host path works
        missing = f"{type(error).__name__}: {error}"
    # every rank takes the same path, or the ones with NCCL would wait for the others in it
    missing_on = [(rank, why) for rank, why in enumerate(ranks.all_gather(missing)) if why is not None]
    if missing_on:
        rank, why = missing_on[0]
        return HostSum(ranks, backend), (f"NCCL is not available on rank {rank} ({why}): the gradients are summed "
                                         "through host buffers")
    communicator = nccl.NcclCommunicator(ranks.size, ranks.broadcast(unique_id), ranks.rank)
    pointer = pointer or (lambda array: array.data.ptr)
    stream = stream or (lambda: backend.xp.cuda.get_current_stream().ptr)
    return NcclSum(communicator, nccl, pointer, stream), None


def _import_nccl() -> Any:
    from rwthlm_py.runtime.backend import nccl_module  # the one module that imports cupy

    return nccl_module()


def device_for_rank(ranks: World, device_count: int) -> int:
    """The GPU of this rank: its place on its node, modulo the node's devices (0 without any)."""
    return ranks.local_rank % device_count if device_count > 0 else 0


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
