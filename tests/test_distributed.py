"""The ranks of an MPI job (runtime/distributed.py): who is who, the collectives, and a
failing or killed rank ending the whole job instead of leaving the others waiting."""

import subprocess
import sys
import textwrap
import time

import numpy
import pytest

from rwthlm_py.runtime import distributed
from tests.mpi import run_ranks


@pytest.mark.parametrize("environ, ranks", [
    ({}, 1),
    ({"PMI_SIZE": "4"}, 4),
    ({"OMPI_COMM_WORLD_SIZE": "3", "PMI_SIZE": "9"}, 3),
    ({"MV2_COMM_WORLD_SIZE": "2"}, 2),
    ({"PMI_SIZE": ""}, 1),
    ({"PMI_SIZE": "x"}, 1),
])
def test_the_launchers_variables_name_the_ranks(environ, ranks):
    assert distributed.launched_ranks(environ) == ranks


def test_a_world_of_one_returns_what_it_is_given():
    one = distributed.World()
    array = numpy.arange(5.0)
    assert one.sum_in_place(array) is array and array.tolist() == [0, 1, 2, 3, 4]
    assert one.sum(2.5) == 2.5 and one.broadcast("x") == "x"
    assert one.gather(7) == [7] and one.all_gather(7) == [7]
    assert one.is_root and one.size == 1


COLLECTIVES = textwrap.dedent("""
    import numpy
    from rwthlm_py.runtime import distributed
    ranks = distributed.world()
    array = numpy.full(70_000, ranks.rank + 1, dtype=numpy.float32)
    ranks.sum_in_place(array)
    sums = ranks.sum([ranks.rank, 0.5])
    told = ranks.broadcast({"from": ranks.rank})
    gathered = ranks.gather(ranks.rank * 10)
    everyone = ranks.all_gather(ranks.rank)
    with open(f"rank{ranks.rank}", "w") as out:
        print(ranks.rank, ranks.size, ranks.local_rank, float(array.min()), float(array.max()), sums, told,
              gathered, everyone, file=out)
""")


def test_three_ranks_sum_broadcast_and_gather(tmp_path):
    result = run_ranks(3, ["-c", COLLECTIVES], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [(tmp_path / f"rank{rank}").read_text().strip() for rank in range(3)]
    assert lines == [
        "0 3 0 6.0 6.0 [3.0, 1.5] {'from': 0} [0, 10, 20] [0, 1, 2]",
        "1 3 1 6.0 6.0 [3.0, 1.5] {'from': 0} None [0, 1, 2]",
        "2 3 2 6.0 6.0 [3.0, 1.5] {'from': 0} None [0, 1, 2]",
    ]


FAILING_RANK = textwrap.dedent("""
    import os, signal, sys, time
    from rwthlm_py.cli import run_guarded
    from rwthlm_py.errors import InputError
    from rwthlm_py.output.reporting import Console
    from rwthlm_py.runtime import distributed
    how = sys.argv[1]

    def body():
        ranks = distributed.world()
        print(f"rank {ranks.rank} started", flush=True)
        ranks.barrier()  # both have printed: what follows cannot end rank 0 before it did
        if ranks.rank == 1:
            time.sleep(0.5)
            if how == "error":
                raise InputError("no such thing", "some/file", 3)
            if how == "exception":
                raise RuntimeError("a bug")
            os.kill(os.getpid(), signal.SIGKILL)
        ranks.barrier()
        return 0

    sys.exit(run_guarded("prog", body, Console()))
""")


@pytest.mark.parametrize("how", ["error", "exception", "kill"])
def test_a_failing_rank_ends_the_job_instead_of_a_hang(tmp_path, how):
    start = time.monotonic()
    result = run_ranks(2, ["-c", FAILING_RANK, how], cwd=tmp_path, timeout=120)
    assert result.returncode != 0
    assert time.monotonic() - start < 60
    assert "rank 0 started" in result.stdout and "rank 1 started" in result.stdout
    if how == "error":
        assert "prog (rank 1 of 2): error: some/file:3: no such thing" in result.stderr
        assert "Traceback" not in result.stderr
    if how == "exception":
        assert "RuntimeError: a bug" in result.stderr


def test_without_mpi4py_several_ranks_are_one_error_line(tmp_path):
    program = textwrap.dedent("""
        import sys
        sys.modules["mpi4py"] = None
        from rwthlm_py.cli import run_guarded
        sys.exit(run_guarded("prog", lambda: 0))
    """)
    result = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True,
                            env={"PMI_SIZE": "2", "PATH": "/usr/bin:/bin",
                                 "PYTHONPATH": ":".join(p for p in sys.path if p)})
    assert result.returncode == 1
    assert result.stderr.startswith("prog: error: started as 2 MPI ranks, but mpi4py cannot be imported")
    assert "pip install 'rwthlm_py[mpi]'" in result.stderr and result.stderr.count("\n") == 1


def test_a_bad_command_line_is_one_line_from_rank_0(tmp_path):
    result = run_ranks(3, ["-m", "rwthlm_py", "ppl", "--bogus", "x"], cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert errors == ["rwthlm-py (rank 0 of 3): error: unrecognized option --bogus (see rwthlm-py ppl --help)"]
