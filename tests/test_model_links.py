"""A model trained through a symbolic link: the file it points to is written (the link
stays a link), its backup is a file of its own, and trainings through any name of one model
meet one lock; a partial epoch of a training killed (SIGKILL) through the link is resumed
through the real name."""

import os
import sys

import pytest
from conftest import assert_one_line_error, run_cli, wait_for_line, wait_until

from rwthlm_py.model.checkpoint import read_model

RWTHLM_PY = [sys.executable, "-m", "rwthlm_py", "train"]
TRAINING = ["--train", "train.txt", "--dev", "dev.txt", "--batch-size", 8, "--sequence-length", 12,
            "--learning-rate", 0.05, "--vocab", "vocab"]


def train(*args, cwd, file_size_limit=None):
    """Runs rwthlm-py train; with file_size_limit, no file it writes may grow past that many
    bytes (a full disk, as tests/test_write_failures.py has it)."""
    return run_cli(RWTHLM_PY, *TRAINING, *args, cwd=cwd, file_size_limit=file_size_limit)


@pytest.fixture
def linked(toy):
    """store/real-i8-m8, trained for an epoch, and exp/link-i8-m8 -> ../store/real-i8-m8."""
    (toy / "store").mkdir()
    (toy / "exp").mkdir()
    status, _, err = train("--max-epoch", 1, "store/real-i8-m8", cwd=toy)
    assert status == 0, err
    os.symlink("../store/real-i8-m8", toy / "exp" / "link-i8-m8")
    return toy


def names(folder):
    return sorted(path.name for path in folder.iterdir())


def test_training_through_a_link_writes_the_file_it_points_to_and_backs_up_a_file(linked):
    link, real = linked / "exp" / "link-i8-m8", linked / "store" / "real-i8-m8"
    before = real.read_bytes()
    backup = linked / "store" / "real-i8-m8.bk"
    backup.unlink()
    os.symlink("real-i8-m8", backup)  # as an earlier version left it: a backup that changes with the model
    status, _, err = train("--max-epoch", 2, "exp/link-i8-m8", cwd=linked)
    assert status == 0, err
    assert os.readlink(link) == "../store/real-i8-m8"
    assert read_model(real).training_state.epoch == 2
    assert not backup.is_symlink() and backup.stat().st_nlink == 1 and backup.read_bytes() == before
    assert names(linked / "exp") == ["link-i8-m8"]
    assert names(linked / "store") == ["real-i8-m8", "real-i8-m8.bk"]


def test_a_save_through_a_link_that_fails_keeps_the_link_the_model_and_its_backup(linked):
    status, _, err = train("--max-epoch", 2, "exp/link-i8-m8", cwd=linked)
    assert status == 0, err
    model, backup = (linked / "store" / "real-i8-m8").read_bytes(), (linked / "store" / "real-i8-m8.bk").read_bytes()
    result = train("--max-epoch", 3, "exp/link-i8-m8", cwd=linked, file_size_limit=4096)
    assert_one_line_error(result, "rwthlm-py", "exp/link-i8-m8: cannot write: File too large")
    assert os.readlink(linked / "exp" / "link-i8-m8") == "../store/real-i8-m8"
    assert (linked / "store" / "real-i8-m8").read_bytes() == model
    assert (linked / "store" / "real-i8-m8.bk").read_bytes() in (model, backup)
    assert names(linked / "exp") == ["link-i8-m8"]
    assert names(linked / "store") == ["real-i8-m8", "real-i8-m8.bk"]


def test_two_trainings_through_two_names_of_one_model_meet_one_lock(linked, children):
    """The first run is held while it holds the lock: its development text is a named pipe,
    which it opens (and waits on) after reading the model, and which nothing ever feeds."""
    os.mkfifo(linked / "dev.fifo")
    held = ["dev.fifo" if argument == "dev.txt" else argument for argument in TRAINING]
    first = children.start(RWTHLM_PY, *held, "--max-epoch", 2, "exp/link-i8-m8", cwd=linked)
    wait_for_line(first, "Reading development data from file 'dev.fifo'")
    result = train("--max-epoch", 2, "store/real-i8-m8", cwd=linked)
    assert_one_line_error(result, "rwthlm-py", "store/real-i8-m8: another training run",
                          f"(process {first.pid} on host ")
    assert names(linked / "exp") == ["link-i8-m8"]
    first.kill()
    first.communicate()
    assert os.readlink(linked / "exp" / "link-i8-m8") == "../store/real-i8-m8"
    status, _, err = train("--max-epoch", 2, "store/real-i8-m8", cwd=linked)  # killed: no lock
    assert status == 0, err


def test_an_epoch_killed_through_the_link_resumes_through_the_real_name(linked, children):
    (linked / "train.txt").write_text((linked / "train.txt").read_text() * 4)
    partial = linked / "store" / "real-i8-m8.partial"
    process = children.start(RWTHLM_PY, *TRAINING, "--max-epoch", 2, "--checkpoint-every", 1e-6, "exp/link-i8-m8",
                             cwd=linked)
    wait_until(partial.exists, process, f"{partial.name} (saved after every batch)")
    process.kill()
    process.communicate()
    assert partial.exists() and names(linked / "exp") == ["link-i8-m8"]
    status, out, err = train("--max-epoch", 2, "--checkpoint-every", 60, "store/real-i8-m8", cwd=linked)
    assert status == 0, err
    assert "Resuming epoch 2 after batch " in out
    assert not partial.exists() and os.path.islink(linked / "exp" / "link-i8-m8")
