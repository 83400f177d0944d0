"""Write failures through the real command line: a file that cannot be written (the process's
file-size limit stands in for a full disk: writes past it fail with EFBIG, as they fail with
ENOSPC on a full disk) is one line naming it, exit 1, and leaves no half-written result; the
previous model and its backup stay as they were."""

import os
import pathlib
import resource
import shutil
import subprocess
import sys

import pytest

from conftest import HAND_LATTICE, assert_one_line_error

RWTHLM_PY = [sys.executable, "-m", "rwthlm_py"]
DATA = pathlib.Path(__file__).parent / "data"
TRAINING = ["--train", "train.txt", "--dev", "dev.txt", "--batch-size", 8, "--sequence-length", 12,
            "--learning-rate", 0.05, "--vocab", "vocab"]


def call(*args, cwd, file_size_limit=None, stdout=subprocess.PIPE):
    """Runs rwthlm-py; with file_size_limit, no file it writes may grow past that many bytes."""
    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    result = subprocess.run(RWTHLM_PY + [str(a) for a in args], cwd=cwd, stdout=stdout, stderr=subprocess.PIPE,
                            text=True, timeout=300, preexec_fn=limit_file_size if file_size_limit else None)
    return result.returncode, result.stdout, result.stderr


def assert_write_failure(result, path):
    assert result[0] == 1, result[2]
    assert_one_line_error(result, "rwthlm-py", f" {path}", "cannot write: File too large")


def litter(folder):
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.name.endswith(".tmp"))


@pytest.fixture
def trained(toy):
    status, _, err = call("train", *TRAINING, "--max-epoch", 1, "toy-i8-m8", cwd=toy)
    assert status == 0, err
    return toy


def test_a_model_that_cannot_be_saved_keeps_the_previous_one_and_its_backup(trained):
    model, backup = (trained / "toy-i8-m8").read_bytes(), (trained / "toy-i8-m8.bk").read_bytes()
    result = call("train", *TRAINING, "--max-epoch", 2, "toy-i8-m8", cwd=trained, file_size_limit=4096)
    assert_write_failure(result, "toy-i8-m8")
    assert (trained / "toy-i8-m8").read_bytes() == model
    assert (trained / "toy-i8-m8.bk").read_bytes() in (model, backup)
    assert litter(trained) == []


@pytest.mark.parametrize("arguments, written", [
    (["vocab", "--train", "train.txt", "--classes", 3, "--out", "classes"], "classes"),
    (["ppl", "--ppl", "test.txt", "--vocab", "vocab", "--remap", "remapped", "toy-i8-m8"], "remapped"),
])
def test_single_file_outputs(trained, arguments, written):
    assert_write_failure(call(*arguments, cwd=trained, file_size_limit=16), written)
    assert not (trained / written).exists() and litter(trained) == []


def test_a_run_record_that_cannot_be_begun_leaves_no_folder(trained):
    result = call("ppl", "--ppl", "test.txt", "--record", "records", "toy-i8-m8", cwd=trained, file_size_limit=16)
    assert_write_failure(result, "records/runs/")
    assert "/config.json: " in result[2]
    assert list((trained / "records" / "runs").iterdir()) == []


def test_tensorboard_events_that_cannot_be_written_leave_no_empty_file(trained):
    result = call("ppl", "--ppl", "test.txt", "--tensorboard", "events", "toy-i8-m8", cwd=trained,
                  file_size_limit=16)
    assert_write_failure(result, "events/events.out.tfevents.")
    assert "Exception in thread" not in result[2]
    assert list((trained / "events").iterdir()) == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux) as a full standard output")
def test_standard_output_on_a_full_disk(trained):
    with open("/dev/full", "w") as full:
        result = call("ppl", "--ppl", "test.txt", "--verbose", "toy-i8-m8", cwd=trained, stdout=full)
    assert result[0] == 1
    assert_one_line_error(result, "rwthlm-py", "cannot write the output: No space left on device")
    assert "Exception ignored" not in result[2]


def test_nbest_out_appears_complete_or_not_at_all(tmp_path):
    """Five lists: the limit lets the first lists through and stops a later one; neither
    the directory nor a temporary folder remains."""
    lists = tmp_path / "lists"
    lists.mkdir()
    text = (DATA / "nbest" / "utt1.nbest").read_text()
    for number in range(5):
        (lists / f"utt{number}.nbest").write_text(text * (number + 1))
    arguments = ["nbest", "--nbest", lists, "--arpa", DATA / "toy.arpa", "--lambda", 0, "--out", "out"]
    result = call(*arguments, cwd=tmp_path, file_size_limit=len(text) * 3)
    assert_write_failure(result, "out/utt2.nbest: ")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["lists"]
    assert call(*arguments, cwd=tmp_path)[0] == 0
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["1best.txt"] + [
        f"utt{number}.nbest" for number in range(5)]


def test_a_lattice_output_that_cannot_be_written_ends_the_run(trained):
    for name in ("a.lat", "b.lat"):
        (trained / name).write_text(HAND_LATTICE)
    (trained / "out").mkdir()
    result = call("lattice", "--lambda", 1, "--pruning-threshold", 100, "--set-sb-last", "--out", "out", "a.lat", "b.lat",
                  "toy-i8-m8", cwd=trained, file_size_limit=64)
    assert_write_failure(result, "out/a.lat.rescored")
    assert "b.lat" not in result[1] + result[2]
    assert list((trained / "out").iterdir()) == []


def test_stale_temporary_files_go_when_training_starts_again(trained):
    stale = [trained / ".toy-i8-m8.abcd1234.tmp", trained / ".toy-i8-m8.x_y_z_09.tmp"]
    kept = [trained / ".toy-i8-m8.notours.tmp", trained / ".other.abcd1234.tmp"]
    for path in stale + kept:
        path.write_bytes(b"left by a killed save")
    status, _, err = call("train", *TRAINING, "--max-epoch", 2, "toy-i8-m8", cwd=trained)
    assert status == 0, err
    assert [path.exists() for path in stale + kept] == [False, False, True, True]
    shutil.rmtree(trained / "out", ignore_errors=True)


def test_a_second_training_of_the_same_model_is_refused_while_the_first_runs(trained):
    first = subprocess.Popen(RWTHLM_PY + ["train"] + [str(a) for a in TRAINING] + ["--max-epoch", "50", "toy-i8-m8"],
                             cwd=trained, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in first.stdout:  # the first run holds the lock once it reads the model
            if line.startswith("Reading neural network"):
                break
        result = call("train", *TRAINING, "--max-epoch", 50, "toy-i8-m8", cwd=trained)
        assert_one_line_error(result, "rwthlm-py", "toy-i8-m8: another training run",
                              f"(process {first.pid} on host ")
        assert call("ppl", "--ppl", "test.txt", "toy-i8-m8", cwd=trained)[0] == 0  # readers need no lock
    finally:
        first.kill()
        first.communicate()
    status, _, err = call("train", *TRAINING, "--max-epoch", 2, "toy-i8-m8", cwd=trained)  # killed: no lock
    assert status == 0, err


def test_resuming_names_the_learning_rate_it_uses(trained):
    status, _, err = call("train", *TRAINING[:-4], "--learning-rate", 0.5, "--vocab", "vocab", "--max-epoch", 2,
                          "toy-i8-m8", cwd=trained)
    assert status == 0, err
    assert "--learning-rate 0.5 is not used: training goes on at the model file's learning rate 5.000000e-02" in err
