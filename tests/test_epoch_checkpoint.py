"""--checkpoint-every: a training run killed (SIGKILL) at random points during its epochs
and rerun until it finishes ends with exactly (bitwise, float64) the weights of a run that
was never interrupted; a partial epoch that no longer fits the model or the settings is
removed with a line saying why.

The runs use numpy (--backend numpy), also where a GPU is present: the bitwise promise is
the CPU's. On a GPU, cupy's scatter-add sums the repeated rows of the embedding's and the
class output's gradients with atomic additions in no fixed order, so two runs, and a
resumed one, agree to rounding only (as PyTorch's do without deterministic algorithms)."""

import random
import subprocess
import sys
import time

import numpy
import pytest
from conftest import run_cli, wait_until

from rwthlm_py.training.epoch_checkpoint import flatten_state, unflatten_state

RWTHLM_PY = [sys.executable, "-m", "rwthlm_py", "train"]


def training(wrapping, *extra):
    return [str(a) for a in ["--train", "train.txt", "--dev", "dev.txt", "--vocab", "vocab", "--batch-size", 4,
                             "--sequence-length", 10, "--learning-rate", 0.1, "--momentum", 0.5,
                             "--gradient-clipping", 2.0, "--word-wrapping", wrapping, "--max-epoch", 3,
                             "--dtype", "float64", "--backend", "numpy", *extra]]


def run(arguments, cwd):
    status, out, err = run_cli(RWTHLM_PY, *arguments, cwd=cwd)
    assert status == 0, err
    return out


def arrays(path):
    with numpy.load(path) as archive:
        return {name: archive[name] for name in archive.files if name != "meta"}


@pytest.fixture
def corpus(toy):
    (toy / "train.txt").write_text((toy / "train.txt").read_text() * 4)
    return toy


@pytest.mark.slow
@pytest.mark.parametrize("wrapping, dropout", [("fixed", ["--dropout", "0.3"]),
                                               ("stream", ["--dropout", "0.3", "--variational-dropout"])])
def test_runs_killed_at_random_points_end_with_the_weights_of_an_uninterrupted_run(corpus, wrapping, dropout,
                                                                                   children):
    uninterrupted = run(training(wrapping, *dropout) + ["whole-i8-m8"], corpus)
    rng, kills, resumed = random.Random(7), 0, []
    model = corpus / "killed-i8-m8"
    while True:
        process = children.start(RWTHLM_PY, *training(wrapping, *dropout, "--checkpoint-every", 1e-6), model.name,
                                 cwd=corpus, stderr=subprocess.DEVNULL)
        if kills < 4 and _wait_for(corpus / "killed-i8-m8.partial", process):
            time.sleep(rng.uniform(0.0, 0.4))
            if process.poll() is None:
                process.kill()
                kills += 1
        out, _ = process.communicate(timeout=300)
        resumed += [line for line in out.splitlines() if line.startswith("Resuming epoch")]
        if process.returncode == 0:
            break
    assert kills >= 2 and resumed, (kills, resumed)
    whole, killed = arrays(corpus / "whole-i8-m8"), arrays(model)
    assert whole.keys() == killed.keys()
    for name in whole:
        assert numpy.array_equal(whole[name], killed[name]), name
    assert out.splitlines()[-1] == uninterrupted.splitlines()[-1]  # the last epoch's line, digit for digit
    assert not (corpus / "killed-i8-m8.partial").exists()


def _wait_for(path, process):
    """True once `path` exists (a partial epoch was saved); False if the run ended first.
    A run that does neither within conftest.CHILD_DEADLINE fails the test."""
    wait_until(lambda: path.exists() or process.poll() is not None, process, f"{path.name} or the run's end")
    return path.exists()


def test_a_partial_epoch_of_other_settings_is_removed_and_the_epoch_starts_again(corpus, children):
    process = children.start(RWTHLM_PY, *training("fixed", "--checkpoint-every", 1e-6), "t-i8-m8", cwd=corpus,
                             stdout=subprocess.DEVNULL)
    assert _wait_for(corpus / "t-i8-m8.partial", process)
    process.kill()
    process.communicate()
    out = run(training("fixed", "--batch-size", 8) + ["t-i8-m8"], corpus)
    assert "'t-i8-m8.partial' is out of date (written with other batch size): removed" in out
    assert "Resuming" not in out and not (corpus / "t-i8-m8.partial").exists()


@pytest.mark.parametrize("state", [None, (numpy.ones(2), None, (numpy.zeros((2, 3)), numpy.arange(3.0)))])
def test_the_carried_state_survives_its_layout_as_json(state):
    layout, parts = flatten_state(state, numpy.asarray)
    restored = unflatten_state(layout, parts, numpy.asarray)
    assert repr(restored) == repr(state)
