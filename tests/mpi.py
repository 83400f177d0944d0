"""Running a Python program as several MPI ranks in a test: `mpiexec -n N python ...`.

The launcher is the one beside this interpreter (the `mpich` wheel of the `mpi` extra puts
`mpiexec` in the virtual environment's bin), else the first on PATH. Tests that need it
skip, saying why, where mpi4py or a launcher is missing.
"""

import os
import shutil
import subprocess
import sys

import pytest

# a hang is a failure: every MPI run of the tests ends well within this
TIMEOUT = 240


def launcher():
    """The path of mpiexec, or None."""
    beside = shutil.which("mpiexec", path=os.path.dirname(sys.executable))
    return beside or shutil.which("mpiexec")


def skip_without_mpi():
    """Skips the calling test where mpi4py or mpiexec is missing."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        pytest.skip("mpi4py is not installed (pip install -e '.[mpi]')")
    if launcher() is None:
        pytest.skip("no mpiexec beside this Python or on PATH (pip install -e '.[mpi]' installs MPICH's)")


def run_ranks(ranks, arguments, cwd, timeout=TIMEOUT, env=None):
    """Runs `python arguments...` as `ranks` MPI ranks; returns the CompletedProcess, with
    text output. The ranks run on one thread each, as a launcher's job on a shared machine."""
    skip_without_mpi()
    environment = {**os.environ, **(env or {})}
    command = [launcher(), "-n", str(ranks), sys.executable, *arguments]
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)
