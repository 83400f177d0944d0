"""No output replaces an input: every command checks all its outputs against all its inputs
(the same file by identity, also through symbolic and hard links) before it reads anything,
with one rule (textio.refuse_overwriting_inputs)."""

import os

import pytest
from conftest import HAND_LATTICE, RWTHLM, RWTHLM_PY, assert_one_line_error
from conftest import run_cli as call


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from conftest import toy_sentences

    folder = tmp_path_factory.mktemp("model")
    for name, count, seed in (("train", 300, 1), ("dev", 40, 2)):
        (folder / f"{name}.txt").write_text("\n".join(toy_sentences(count, seed)) + "\n")
    status, _, err = call(RWTHLM_PY, "train", "--train", "train.txt", "--dev", "dev.txt", "--learning-rate", 0.05,
                          "--max-epoch", 1, "t-i4-m4", cwd=folder)
    assert status == 0, err
    return folder


@pytest.fixture
def work(tmp_path):
    """A folder whose model and texts are named pipes, so that a command that reads any of
    them before refusing waits for ever (and fails by its timeout), with a symbolic and a
    hard link to dev.txt."""
    for name in ("t-i4-m4", "train.txt", "dev.txt"):
        os.mkfifo(tmp_path / name)
    os.symlink("dev.txt", tmp_path / "soft.txt")
    os.link(tmp_path / "dev.txt", tmp_path / "hard.txt")
    return tmp_path


@pytest.mark.parametrize("command, arguments, message", [
    (RWTHLM_PY, ["ppl", "--ppl", "dev.txt", "--remap", "dev.txt", "t-i4-m4"],
     "dev.txt: --remap would overwrite --ppl: they are one file"),
    (RWTHLM_PY, ["ppl", "--ppl", "dev.txt", "--remap", "soft.txt", "t-i4-m4"],
     "soft.txt: --remap would overwrite --ppl: they are one file"),
    (RWTHLM_PY, ["ppl", "--ppl", "dev.txt", "--remap", "hard.txt", "t-i4-m4"],
     "hard.txt: --remap would overwrite --ppl: they are one file"),
    (RWTHLM_PY, ["ppl", "--ppl", "dev.txt", "--remap", "t-i4-m4", "t-i4-m4"],
     "t-i4-m4: --remap would overwrite NETWORK: they are one file"),
    (RWTHLM_PY, ["train", "--train", "train.txt", "--dev", "dev.txt", "--remap", "./dev.txt", "--max-epoch", 2,
                 "t-i4-m4"], "./dev.txt: --remap would overwrite --dev: they are one file"),
    (RWTHLM_PY, ["train", "--train", "train.txt", "--dev", "dev.txt", "--vocab", "v", "--remap", "v", "--max-epoch", 2,
                 "n-i4-m4"], "v: --remap would overwrite --vocab: they are one file"),
    (RWTHLM, ["--ppl", "dev.txt", "--remap", "soft.txt", "t-i4-m4"], "--remap would overwrite --ppl"),
    (RWTHLM_PY, ["vocab", "--train", "train.txt", "--out", "train.txt"], "--out would overwrite --train"),
    (RWTHLM_PY, ["nbest", "--nbest", "dev.txt", "--out", "hard.txt", "--nn-weight", 0],
     "hard.txt: --out would overwrite --nbest: they are one file"),
    (RWTHLM_PY, ["lattice", "--lambda", 0.5, "--pruning-threshold", 0, "x.lat", "x.lat.rescored", "t-i4-m4"],
     "x.lat.rescored: the output of LATTICE x.lat would overwrite LATTICE x.lat.rescored"),
])
def test_an_output_over_an_input_is_refused_before_anything_is_read(work, command, arguments, message):
    (work / "x.lat").write_text(HAND_LATTICE)
    (work / "x.lat.rescored").write_text(HAND_LATTICE)
    before = sorted(path.name for path in work.iterdir())
    program = "rwthlm" if command is RWTHLM else "rwthlm-py"
    result = call(command, *arguments, cwd=work, timeout=60)  # a read of a pipe would wait past it
    assert_one_line_error(result, program, message)
    assert sorted(path.name for path in work.iterdir()) == before  # nothing written, nothing replaced
    assert all((work / name).is_fifo() for name in ("t-i4-m4", "train.txt", "dev.txt", "hard.txt"))
    assert (work / "x.lat.rescored").read_text() == HAND_LATTICE


def test_distinct_outputs_are_written(model):
    status, _, err = call(RWTHLM_PY, "ppl", "--ppl", "dev.txt", "--remap", "remapped", "t-i4-m4", cwd=model)
    assert status == 0, err
    assert (model / "remapped").read_text().count("\n") > 10
