"""`nbest --out` and `lattice --out` killed (SIGKILL) while writing leave their temporary
folder beside the output directory; the next run into that directory removes it, and says
so, but never the folder of a run still writing.

A run is held at a known point without timing: its last input is a named pipe, which it
waits on (with its temporary folder made) until the test writes into it. Every run a test
starts is killed when the test ends (the `children` fixture), passed or failed."""

import os
import pathlib
import subprocess
import sys

import pytest
from conftest import HAND_LATTICE, feed_named_pipe, run_cli, wait_until

RWTHLM_PY = [sys.executable, "-m", "rwthlm_py"]
DATA = pathlib.Path(__file__).parent / "data"
NBEST = (DATA / "nbest" / "utt1.nbest").read_text()
REMOVED = "removed 1 temporary folder(s) left by an earlier run that was killed: "
NBEST_RUN = ["nbest", "--arpa", DATA / "toy.arpa", "--lambda", 0, "--out", "out"]
LATTICE_RUN = ["lattice", "--lambda", 1, "--pruning-threshold", 100, "--set-sb-last", "--out", "out"]


def command(*args):
    return RWTHLM_PY + [str(a) for a in args]


def run(*args, cwd):
    status, _, err = run_cli(RWTHLM_PY, *args, cwd=cwd)
    assert status == 0, err
    return err


def staging_folders(folder):
    return sorted(path.name for path in folder.iterdir() if path.name.startswith(".out."))


def start_held(children, arguments, pipe, folder):
    """Starts rwthlm-py with `arguments`, whose last input is the named pipe `pipe`; returns
    once the run has made its temporary folder (it then waits on the pipe). A run that ends
    first, or makes none within conftest.CHILD_DEADLINE, fails the test with its output."""
    os.mkfifo(pipe)
    process = children.start(RWTHLM_PY, *arguments, cwd=folder)
    wait_until(lambda: staging_folders(folder), process, "its temporary folder")
    return process


@pytest.fixture
def lists(tmp_path):
    (tmp_path / "a.nbest").write_text(NBEST)
    (tmp_path / "listing").write_text("a.nbest\nb.nbest\n")
    return tmp_path


def test_a_killed_nbest_out_leaves_a_folder_that_the_next_run_removes(lists, children):
    process = start_held(children, NBEST_RUN + ["--nbest-files", "listing"], lists / "b.nbest", lists)
    process.kill()
    process.communicate()
    [left] = staging_folders(lists)
    assert not (lists / "out").exists()
    os.unlink(lists / "b.nbest")
    (lists / "b.nbest").write_text(NBEST)
    err = run(*NBEST_RUN, "--nbest-files", "listing", cwd=lists)
    assert REMOVED + left in err.splitlines()
    assert staging_folders(lists) == [] and sorted(os.listdir(lists / "out")) == ["1best.txt", "a.nbest", "b.nbest"]


def test_the_folder_of_a_run_still_writing_is_left_alone(lists, children):
    held = start_held(children, NBEST_RUN + ["--nbest-files", "listing"], lists / "b.nbest", lists)
    [writing] = staging_folders(lists)
    (lists / "c.nbest").write_text(NBEST)
    err = run(*NBEST_RUN, "--nbest", "c.nbest", cwd=lists)
    assert "removed" not in err and staging_folders(lists) == [writing]
    feed_named_pipe(lists / "b.nbest", NBEST, held)
    _, err = held.communicate(timeout=300)
    assert held.returncode == 0, err
    assert staging_folders(lists) == []
    assert sorted(os.listdir(lists / "out")) == ["1best.txt", "a.nbest", "b.nbest", "c.nbest"]


def test_a_killed_lattice_out_leaves_a_folder_that_the_next_run_removes(toy, children):
    status = subprocess.run(command("train", "--train", "train.txt", "--dev", "dev.txt", "--learning-rate", 0.05,
                                    "--max-epoch", 1, "toy-i8-m8"), cwd=toy, capture_output=True, text=True)
    assert status.returncode == 0, status.stderr
    (toy / "a.lat").write_text(HAND_LATTICE)
    process = start_held(children, LATTICE_RUN + ["a.lat", "b.lat", "toy-i8-m8"], toy / "b.lat", toy)
    process.kill()
    process.communicate()
    [left] = staging_folders(toy)
    os.unlink(toy / "b.lat")
    (toy / "b.lat").write_text(HAND_LATTICE)
    err = run(*LATTICE_RUN, "a.lat", "b.lat", "toy-i8-m8", cwd=toy)
    assert REMOVED + left in err.splitlines()
    assert staging_folders(toy) == [] and sorted(os.listdir(toy / "out")) == ["a.lat.rescored", "b.lat.rescored"]


def test_the_next_run_removes_only_the_folders_that_its_own_killed_runs_left(lists):
    """Beside the output directory `out`: the folder of a dead writer of `out` (its name, and
    no process holds its lock), and what is not such a folder, each named to end in .tmp
    and none locked: a user's folder, the temporary folder of another output directory
    (`out.v2`, whose names start with `.out.` too), and a file and a symbolic link with the
    name of a temporary folder of `out`. Only the dead writer's folder goes."""
    dead = lists / ".out.k1lled_0.tmp"
    dead.mkdir()
    (dead / "a.nbest").write_text("half written")
    (lists / "results.tmp").mkdir()
    (lists / "results.tmp" / "notes.txt").write_text("mine\n")
    (lists / ".out.v2.k1lled_0.tmp").mkdir()
    (lists / ".out.v2.k1lled_0.tmp" / "a.nbest").write_text(NBEST)
    (lists / ".out.k1lled_1.tmp").write_text("a file\n")
    (lists / "mine").mkdir()
    (lists / "mine" / "notes.txt").write_text("mine\n")
    os.symlink("mine", lists / ".out.k1lled_2.tmp")
    kept = {path: path.read_text() for path in (lists / "results.tmp" / "notes.txt",
                                                lists / ".out.v2.k1lled_0.tmp" / "a.nbest",
                                                lists / ".out.k1lled_1.tmp", lists / ".out.k1lled_2.tmp" / "notes.txt")}
    err = run(*NBEST_RUN, "--nbest", "a.nbest", cwd=lists)
    assert [line for line in err.splitlines() if line.startswith("removed ")] == [REMOVED + dead.name]
    assert not dead.exists() and sorted(os.listdir(lists / "out")) == ["1best.txt", "a.nbest"]
    assert {path: path.read_text() for path in kept} == kept
    assert os.readlink(lists / ".out.k1lled_2.tmp") == "mine"


def test_a_writer_gives_up_a_new_folder_that_a_cleaner_took_first(tmp_path, monkeypatch):
    """The race of folder_lock.py: a cleaner locks a folder just made, before its writer
    does (here the test holds that lock); the writer leaves it to the cleaner and makes
    another. A folder is removed only once its lock is free, never the writer's own."""
    import fcntl
    import tempfile

    from rwthlm_py.output import folder_lock

    taken = tmp_path / ".out.taken001.tmp"
    taken.mkdir()
    cleaner = os.open(taken, os.O_RDONLY)
    fcntl.flock(cleaner, fcntl.LOCK_EX | fcntl.LOCK_NB)
    made = iter([str(taken)])
    real_mkdtemp = tempfile.mkdtemp
    monkeypatch.setattr(folder_lock.tempfile, "mkdtemp", lambda **kwargs: next(made, None) or real_mkdtemp(**kwargs))
    path, descriptor = folder_lock.make_locked_folder(str(tmp_path), ".out.", ".tmp")
    try:
        assert path != str(taken) and os.path.isdir(path)
        assert folder_lock.remove_unowned_folders(str(tmp_path), lambda name: name.startswith(".out.")) == []
        os.close(cleaner)
        assert folder_lock.remove_unowned_folders(str(tmp_path), lambda name: name.startswith(".out.")) == [taken.name]
        assert os.path.isdir(path)
    finally:
        os.close(descriptor)
