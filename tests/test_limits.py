"""Sizes with bounds: every count an option gives has a range, every command checks memory
(the weights, and the activations of its largest batch) before it allocates, and an
allocation that fails anyway is one line."""

import os
import resource

import numpy
import pytest
from conftest import RWTHLM, RWTHLM_PY, assert_one_line_error
from conftest import run_cli as call

from rwthlm_py.model.memory import format_bytes

HUGE = 99999999999999999999


def address_space_of(limit):
    """A preexec_fn that limits the child's address space to `limit` bytes."""
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """A model over 100,000 words with a full softmax (tiny hidden layers), and a text of
    those words long enough that one batch of it needs more memory than this machine has."""
    from rwthlm_py.model.checkpoint import TrainingState, save_model
    from rwthlm_py.model.network import Network
    from rwthlm_py.model.network_spec import parse_network
    from rwthlm_py.runtime.backend import get_backend
    from rwthlm_py.text.vocabulary import remap
    from rwthlm_py.training.optim import Sgd

    folder = tmp_path_factory.mktemp("wide")
    words = [f"w{k}" for k in range(100_000)]
    vocab = remap([(word, k) for k, word in enumerate(words)], "<sb>")
    network = Network.build(parse_network("wide-i4-m4"), vocab, get_backend("numpy"), seed=1)
    save_model(folder / "wide-i4-m4", network, Sgd(network, 0.0), TrainingState())
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    tokens = int(1.5 * memory / (len(vocab) * 4))  # float32 logits of one batch: 1.5x the memory
    rng = numpy.random.default_rng(1)
    lines = [" ".join(f"w{k}" for k in rng.integers(0, len(words), 99)) for _ in range(tokens // 100 + 1)]
    (folder / "long.txt").write_text("\n".join(lines) + "\n")
    (folder / "short.txt").write_text("\n".join(lines[:100]) + "\n")
    (folder / "tiny.txt").write_text("\n".join(lines[:10]) + "\n")
    return folder


@pytest.mark.parametrize("command, arguments, message", [
    (RWTHLM_PY, ["ppl", "--ppl", "short.txt", "--batch-size", HUGE], "--batch-size must be at most 2,147,483,647"),
    (RWTHLM_PY, ["ppl", "--ppl", "short.txt", "--sequence-length", HUGE], "--sequence-length must be at most"),
    (RWTHLM_PY, ["ppl", "--ppl", "short.txt", "--batch-size", 10 ** 12], "--batch-size must be at most"),
    (RWTHLM_PY, ["train", "--train", "short.txt", "--dev", "short.txt", "--batch-size", HUGE], "--batch-size must be"),
    (RWTHLM_PY, ["selftest", "--sequence-length", HUGE], "--sequence-length must be at most"),
    (RWTHLM, ["--ppl", "short.txt", "--max-epoch", HUGE], "--max-epoch must be at most"),
    (RWTHLM_PY, ["lattice", "--lambda", 1, "--pruning-threshold", 0, "--pruning-limit", HUGE, "x.lat"],
     "--pruning-limit must be at most"),
    (RWTHLM_PY, ["sample", "--num", 10 ** 12], "--num must lie in [1, 2,147,483,647]"),
    (RWTHLM_PY, ["sample", "--max-length", 10 ** 12], "--max-length must lie in [1, 2,147,483,647]"),
])
def test_every_count_has_a_range(wide, command, arguments, message):
    program = "rwthlm" if command is RWTHLM else "rwthlm-py"
    assert_one_line_error(call(command, *arguments, "wide-i4-m4", cwd=wide), program, message)


def test_a_batch_size_far_above_the_text_costs_nothing(wide):
    # within 2 GiB of address space: a part per batch column would take 15 GiB
    status, out, err = call(RWTHLM_PY, "ppl", "--ppl", "tiny.txt", "--batch-size", 2_000_000_000, "wide-i4-m4",
                            cwd=wide, preexec_fn=address_space_of(2 * 2 ** 30))
    assert status == 0, err
    # 1,000 tokens (10 lines of 99 words and <sb>): beyond that, more parts would be empty
    _, as_many, _ = call(RWTHLM_PY, "ppl", "--ppl", "tiny.txt", "--batch-size", 1_000, "wide-i4-m4", cwd=wide)
    assert out.splitlines()[-1] == as_many.splitlines()[-1]


def test_the_activations_of_a_batch_are_checked_before_it_is_allocated(wide):
    arguments = ["--ppl", "long.txt", "--batch-size", 100_000, "--sequence-length", 101]
    assert_one_line_error(call(RWTHLM_PY, "ppl", *arguments, "wide-i4-m4", cwd=wide), "rwthlm-py",
                          "predicted words needs", "for the network's activations", "lower --batch-size or "
                          "--sequence-length, or use word classes (--classes)")


@pytest.mark.skipif(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") < 6 * 2 ** 30,
                    reason="needs 6 GiB of memory: the batch (4 GB) must pass the memory check")
def test_an_allocation_that_fails_anyway_is_one_line(wide):
    """Within the machine's memory but not within the process's limit (RLIMIT_AS), numpy's
    MemoryError ends the run with one line."""
    status, _, err = call(RWTHLM_PY, "ppl", "--ppl", "short.txt", "--batch-size", 100, "wide-i4-m4", cwd=wide,
                          preexec_fn=address_space_of(3 * 2 ** 30))  # the batch's logits alone are 4 GB
    assert_one_line_error((status, "", err), "rwthlm-py", "out of memory: ", "lower --batch-size")


def test_selftest_checks_the_memory_of_a_network_before_building_it(tmp_path):
    assert_one_line_error(call(RWTHLM_PY, "selftest", "x-i100000-m100000", cwd=tmp_path), "rwthlm-py",
                          "network x-i100000-m100000", "for its weights, gradients and momentum alone")


# -- on a device: the strict cupy double with a small memory ----------------------------------------

def run_on_a_small_device(folder, monkeypatch, capsys, memory_limit, *arguments):
    """(status, standard error, the files of `folder` before and after) of `rwthlm-py
    ARGUMENTS` run in `folder` on the strict cupy double with `memory_limit` bytes of
    device memory."""
    from rwthlm_py import cli, commands
    from rwthlm_py.testing.strict_cupy import strict_backend

    monkeypatch.setattr(commands, "make_backend",
                        lambda name, dtype, console: strict_backend(dtype, memory_limit=memory_limit))
    monkeypatch.chdir(folder)
    before = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}
    capsys.readouterr()
    status = cli.main([str(argument) for argument in arguments])
    after = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}
    return status, capsys.readouterr().err, before, after


def weight_bytes(model_path):
    """The bytes of a float32 model's weights (parameters only)."""
    from rwthlm_py.model.checkpoint import build_network, read_model
    from rwthlm_py.runtime.backend import get_backend

    return build_network(read_model(model_path), get_backend("numpy")).num_params() * 4


TRAIN_ON = ["train", "--train", "train.txt", "--dev", "dev.txt", "--vocab", "vocab", "--batch-size", 64,
            "--sequence-length", 12, "--learning-rate", 0.05, "--max-epoch", 3, "toy-i8-m8"]


@pytest.mark.parametrize("share, fragments", [
    (1.5, ["network toy-i8-m8 over 18 words needs ", " for its weights, gradients and momentum alone; this device "
           "has ", ": choose smaller layers or a smaller vocabulary"]),
    (3.1, ["a batch of 704 predicted words needs ", " for the network's activations, with its ",
           " of weights, gradients and momentum; this device has ", ": lower --batch-size or --sequence-length"]),
])
def test_a_network_or_batch_too_large_for_the_device_is_one_line_and_the_model_is_untouched(
        trained, monkeypatch, capsys, share, fragments):
    """The checks before allocating, on a device of `share` times the weights' bytes (the
    weights, their gradients and momentum need 3)."""
    limit = int(share * weight_bytes(trained / "toy-i8-m8"))
    status, err, before, after = run_on_a_small_device(trained, monkeypatch, capsys, limit, *TRAIN_ON)
    assert_one_line_error((status, "", err), "rwthlm-py", *fragments, f"device has {format_bytes(limit)}:")
    assert after == before


def test_an_allocation_past_the_devices_memory_is_one_line_and_the_model_is_untouched(trained, monkeypatch, capsys):
    """An allocation that the checks did not foresee (here: the batch's check left out) ends
    with cupy's OutOfMemoryError: one line with what it asked for, what the device has and
    what to change."""
    from rwthlm_py import commands

    monkeypatch.setattr(commands, "require_batch_memory", lambda *args, **kwargs: None)
    limit = 3 * weight_bytes(trained / "toy-i8-m8") + 1000
    status, err, before, after = run_on_a_small_device(trained, monkeypatch, capsys, limit, *TRAIN_ON)
    assert_one_line_error((status, "", err), "rwthlm-py", "out of memory: Out of memory allocating ",
                          f"; the device has {format_bytes(limit)}: lower --batch-size or --sequence-length, or use "
                          "word classes (--classes) where the output has none")
    assert after == before
