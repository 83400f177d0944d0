"""Write failures through the real command line: a file that cannot be written (the process's
file-size limit stands in for a full disk: writes past it fail with EFBIG, as they fail with
ENOSPC on a full disk) is one line naming it, exit 1, and leaves no half-written result; the
previous model and its backup stay as they were."""

import json
import os
import pathlib
import platform
import shutil
import struct
import subprocess
import sys

import pytest
from conftest import HAND_LATTICE, assert_one_line_error, run_cli, wait_for_line
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

RWTHLM_PY = [sys.executable, "-m", "rwthlm_py"]
DATA = pathlib.Path(__file__).parent / "data"
TRAINING = ["--train", "train.txt", "--dev", "dev.txt", "--batch-size", 8, "--sequence-length", 12,
            "--learning-rate", 0.05, "--vocab", "vocab"]


def call(*args, cwd, file_size_limit=None, stdout=subprocess.PIPE):
    """Runs rwthlm-py; with file_size_limit, no file it writes may grow past that many bytes."""
    return run_cli(RWTHLM_PY, *args, cwd=cwd, file_size_limit=file_size_limit, stdout=stdout)


def assert_write_failure(result, path):
    assert result[0] == 1, result[2]
    assert_one_line_error(result, "rwthlm-py", f" {path}", "cannot write: File too large")


def litter(folder):
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.name.endswith(".tmp"))


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


def event_records(path):
    """The events of an event file, read record by record as TFRecord frames them (length,
    its CRC, data, the data's CRC): a record cut off or damaged fails the test."""
    data, events, at = path.read_bytes(), [], 0
    while at < len(data):
        assert at + 12 <= len(data), f"{path.name}: the header of the record at byte {at} is cut off"
        header = data[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[at + 8:at + 12])[0] == masked_crc32c(header)
        end = at + 12 + length
        assert end + 4 <= len(data), f"{path.name}: the record at byte {at} is cut off"
        assert struct.unpack("<I", data[end:end + 4])[0] == masked_crc32c(data[at + 12:end])
        events.append(Event.FromString(data[at + 12:end]))
        at = end + 4
    return events


@pytest.mark.parametrize("arguments, file_size_limit", [
    (["ppl", "--ppl", "test.txt"], 60),  # the header fits, the perplexity's record does not
    (["train", *TRAINING, "--max-epoch", 2], 6000),  # epoch 2's curves and histograms fill it
])
def test_an_event_file_cut_short_by_a_full_disk_ends_with_a_whole_record(trained, arguments, file_size_limit):
    model = (trained / "toy-i8-m8").read_bytes()
    result = call(*arguments, "--tensorboard", "events", "toy-i8-m8", cwd=trained, file_size_limit=file_size_limit)
    assert_write_failure(result, "events/events.out.tfevents.")
    [path] = (trained / "events").iterdir()
    events = event_records(path)
    assert events[0].file_version == "brain.Event:2"
    assert len(list(EventFileLoader(str(path)).Load())) == len(events)  # TensorBoard reads every one
    assert (trained / "toy-i8-m8").read_bytes() == model


def run_records(folder):
    return sorted((folder / "records" / "runs").iterdir())


def test_a_run_record_whose_log_cannot_be_written_keeps_whole_lines_and_says_so(trained):
    result = call("ppl", "--ppl", "test.txt", "--verbose", "--record", "records", "toy-i8-m8", cwd=trained,
                  file_size_limit=3000)
    assert_write_failure(result, "records/runs/")
    [record] = run_records(trained)
    assert f" {record.relative_to(trained)}/log.txt: " in result[2]
    status = json.loads((record / "status.json").read_text())
    assert status["exit_status"] == 1
    assert status["error"] == f"{record.relative_to(trained)}/log.txt: cannot write: File too large"
    log = (record / "log.txt").read_text()
    printed = set((result[1] + result[2]).splitlines())
    assert log.endswith("\n") and set(log.splitlines()) <= printed and len(log.splitlines()) > 10


def test_a_run_record_whose_status_cannot_be_written_is_removed(trained):
    """A failed run whose error (naming a long path) makes its status the largest file of
    the record: the limit lets the record begin and stops only the status."""
    (trained / "lists").write_text("d/" * 1500 + "missing.nbest\n")
    arguments = ["nbest", "--nbest-files", "lists", "--nn-weight", 0, "--record", "records"]
    status, _, err = call(*arguments, cwd=trained)
    assert status == 1 and "missing.nbest: no such file" in err
    [record] = run_records(trained)
    sizes = {path.name: path.stat().st_size for path in record.iterdir()}
    limit = max(size for name, size in sizes.items() if name != "status.json") + 100
    assert sizes["status.json"] > limit
    shutil.rmtree(trained / "records")
    result = call(*arguments, cwd=trained, file_size_limit=limit)
    assert_one_line_error(result, "rwthlm-py", "missing.nbest: no such file")
    assert run_records(trained) == []


def start_recorded_run(children, folder):
    """`ppl --ppl - --record records`, once it waits for its text: the process and its record."""
    process = children.start(RWTHLM_PY, "ppl", "--ppl", "-", "--record", "records", "toy-i8-m8", cwd=folder,
                             stdin=subprocess.PIPE)
    wait_for_line(process, "Computing perplexity for file '-'")
    [record] = run_records(folder)
    return process, record


def test_a_killed_run_leaves_a_record_whose_status_names_its_process(trained, children):
    process, record = start_recorded_run(children, trained)
    process.kill()
    process.communicate()
    status = json.loads((record / "status.json").read_text())
    assert status == {"exit_status": None, "process": process.pid, "host": platform.node()}
    # the lines before the last one seen (written to the console first, then to the log)
    assert "Reading neural network from file 'toy-i8-m8' ...\n" in (record / "log.txt").read_text()
    assert sorted(path.name for path in record.iterdir()) == [
        "command.txt", "config.json", "log.txt", "machine.json", "status.json"]


def test_a_run_that_cannot_write_its_final_status_fails_and_leaves_no_record(trained, children):
    """A directory where the final status goes stands in for a disk that fills up while
    the run goes (the file-size limit cannot fail so small a file after the larger ones)."""
    process, record = start_recorded_run(children, trained)
    (record / "status.json").unlink()
    (record / "status.json").mkdir()
    out, err = process.communicate((trained / "test.txt").read_text())
    assert process.returncode == 1
    assert_one_line_error((process.returncode, out, err), "rwthlm-py",
                          f"{record.relative_to(trained)}/status.json: cannot write: Is a directory "
                          "(the run record is removed)")
    assert run_records(trained) == []


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
    result = call("lattice", "--lambda", 1, "--pruning-threshold", 100, "--set-sb-last", "--out", "out",
                  "a.lat", "b.lat", "toy-i8-m8", cwd=trained, file_size_limit=64)
    assert_write_failure(result, "out/a.lat.rescored")
    assert "b.lat" not in result[1] + result[2]
    assert list((trained / "out").iterdir()) == []


def test_an_output_where_a_file_is_in_the_way_names_the_file(trained):
    (trained / "taken").write_text("a file\n")
    (trained / "x.lat").write_text(HAND_LATTICE)
    result = call("vocab", "--train", "train.txt", "--out", "taken/vocab", cwd=trained)
    assert_one_line_error(result, "rwthlm-py",
                          f"taken/vocab: cannot write: '{trained / 'taken'}' is a file, not a directory")
    nbest = call("nbest", "--nbest", DATA / "nbest" / "utt1.nbest", "--nn-weight", 0, "--out", "taken/", cwd=trained)
    lattice = call("lattice", "--lambda", 1, "--pruning-threshold", 100, "--set-sb-last", "--out", "taken/", "x.lat",
                   "toy-i8-m8", cwd=trained)
    for result in (nbest, lattice):
        assert_one_line_error(result, "rwthlm-py",
                              "taken/: cannot write the results here: is a file, not a directory")
    assert "Rescoring ..." not in lattice[1]  # said before the work
    assert (trained / "taken").read_text() == "a file\n" and litter(trained) == []


def test_stale_temporary_files_go_when_training_starts_again(trained):
    stale = [trained / ".toy-i8-m8.abcd1234.tmp", trained / ".toy-i8-m8.x_y_z_09.tmp"]
    kept = [trained / ".toy-i8-m8.notours.tmp", trained / ".other.abcd1234.tmp"]
    for path in stale + kept:
        path.write_bytes(b"left by a killed save")
    status, _, err = call("train", *TRAINING, "--max-epoch", 2, "toy-i8-m8", cwd=trained)
    assert status == 0, err
    assert [path.exists() for path in stale + kept] == [False, False, True, True]
    shutil.rmtree(trained / "out", ignore_errors=True)


def test_a_second_training_of_the_same_model_is_refused_while_the_first_runs(trained, children):
    """The first run is held while it holds the lock: its development text is a named pipe,
    which it opens (and waits on) after reading the model, and which nothing ever feeds."""
    os.mkfifo(trained / "dev.fifo")
    held = ["dev.fifo" if argument == "dev.txt" else argument for argument in TRAINING]
    first = children.start(RWTHLM_PY, "train", *held, "--max-epoch", 2, "toy-i8-m8", cwd=trained)
    wait_for_line(first, "Reading development data from file 'dev.fifo'")
    result = call("train", *TRAINING, "--max-epoch", 2, "toy-i8-m8", cwd=trained)
    assert_one_line_error(result, "rwthlm-py", "toy-i8-m8: another training run",
                          f"(process {first.pid} on host ")
    assert call("ppl", "--ppl", "test.txt", "toy-i8-m8", cwd=trained)[0] == 0  # readers need no lock
    first.kill()
    first.communicate()
    status, _, err = call("train", *TRAINING, "--max-epoch", 2, "toy-i8-m8", cwd=trained)  # killed: no lock
    assert status == 0, err


def test_resuming_names_the_learning_rate_it_uses(trained):
    status, _, err = call("train", *TRAINING[:-4], "--learning-rate", 0.5, "--vocab", "vocab", "--max-epoch", 2,
                          "toy-i8-m8", cwd=trained)
    assert status == 0, err
    assert "--learning-rate 0.5 is not used: training goes on at the model file's learning rate 5.000000e-02" in err
