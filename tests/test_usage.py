"""The command lines as users of rwthlm, SRILM, Kaldi and PyTorch expect them: an unknown
option is named with the nearest known one, help and version, each subcommand's help in its
own words, errors of the command line before any file is read, and training that says when
and why it stops."""

import os
import re
import sys

import pytest
from conftest import HAND_LATTICE, assert_one_line_error, run_cli

from rwthlm_py import __version__

RWTHLM = [sys.executable, "-c", "import sys; from rwthlm_py.cli import rwthlm_main; sys.exit(rwthlm_main())"]
RWTHLM_PY = [sys.executable, "-m", "rwthlm_py"]
SUBCOMMANDS = ["train", "ppl", "nbest", "lattice", "selftest"]
TOY_TRAINING = ["--train", "train.txt", "--dev", "dev.txt", "--batch-size", 8, "--sequence-length", 12]


def call(command, *args, cwd):
    """(status, stdout, stderr); help is never wrapped, so that a flag stays in one piece."""
    return run_cli(command, *args, cwd=cwd, env={**os.environ, "COLUMNS": "1000"})


def assert_usage_error(result, program, line):
    """Exit status 2 and exactly `line` as the error."""
    assert result[0] == 2, result[2]
    assert_one_line_error(result, program)
    assert result[2].strip().splitlines()[-1] == f"{program}: error: {line}"


def option_help(help_text, flag):
    """The help of `flag`, on one line (argparse puts it below a long flag)."""
    entries = re.split(r"\n(?=  -)", help_text)
    return " ".join(next(entry for entry in entries if entry.strip().startswith(flag + " ")).split())


# -- unknown options ---------------------------------------------------------------------------

@pytest.mark.parametrize("command, program, arguments, line", [
    (RWTHLM, "rwthlm", ["--max-epochs", 3], "unrecognized option --max-epochs (did you mean --max-epoch?)"),
    (RWTHLM, "rwthlm", ["--batch", 2], "unrecognized option --batch (did you mean --batch-size?)"),
    (RWTHLM, "rwthlm", ["-ppl", "test.txt"], "unrecognized option -ppl (did you mean --ppl?)"),
    (RWTHLM, "rwthlm", ["--batch_size=2"], "unrecognized option --batch_size (did you mean --batch-size?)"),
    (RWTHLM, "rwthlm", ["--pruning", 9], "unrecognized option --pruning (did you mean --pruning-limit or "
                                          "--pruning-threshold?)"),
    (RWTHLM, "rwthlm", ["--zzz"], "unrecognized option --zzz (see rwthlm --help)"),
    (RWTHLM, "rwthlm", ["--num-jobs", 2, "--job", 1],
     "unrecognized option --num-jobs (an option of rwthlm-py nbest and rwthlm-py lattice; see rwthlm --help)"),
    (RWTHLM_PY, "rwthlm-py", ["train", "--lr", 0.1], "unrecognized option --lr (did you mean --learning-rate?)"),
    (RWTHLM_PY, "rwthlm-py", ["train", "--epochs", 9], "unrecognized option --epochs (did you mean --max-epoch?)"),
    (RWTHLM_PY, "rwthlm-py", ["ppl", "--batch", 2], "unrecognized option --batch (did you mean --batch-size?)"),
    (RWTHLM_PY, "rwthlm-py", ["ppl", "--max-epoch", 2],
     "unrecognized option --max-epoch (an option of train; see rwthlm-py ppl --help)"),
    (RWTHLM_PY, "rwthlm-py", ["ppl", "--num-jobs", 2, "--job", 1],
     "unrecognized option --num-jobs (an option of nbest and lattice; see rwthlm-py ppl --help)"),
    (RWTHLM_PY, "rwthlm-py", ["lattice", "x.lat", "--batch", 2, "y.lat"],
     "unrecognized option --batch (did you mean --batch-size?)"),
    (RWTHLM_PY, "rwthlm-py", ["trian"], "unknown command 'trian' (did you mean train?)"),
    (RWTHLM_PY, "rwthlm-py", ["--verison"], "unrecognized option --verison (did you mean --version?)"),
])
def test_an_unknown_option_is_named_with_the_nearest_before_any_file_is_read(toy, command, program, arguments,
                                                                              line):
    result = call(command, "--train", "missing.txt", "--dev", "dev.txt", *arguments, "t-i4-m4", cwd=toy) \
        if command is RWTHLM else call(command, *arguments, "t-i4-m4", cwd=toy)
    assert_usage_error(result, program, line)
    assert sorted(os.listdir(toy)) == ["dev.txt", "test.txt", "train.txt"]


def test_config_file_keys_get_the_nearest_option_too(toy):
    (toy / "conf").write_text("batch-szie = 2\n")
    assert_one_line_error(call(RWTHLM, "--config", "conf", "t-i4-m4", cwd=toy), "rwthlm",
                          "conf:1: unknown option 'batch-szie' (did you mean batch-size?)")


# -- help and version ---------------------------------------------------------------------------

def test_help_and_version_of_both_commands(tmp_path):
    for flag in ("-h", "--help"):
        status, out, _ = call(RWTHLM, flag, cwd=tmp_path)
        assert status == 0 and out.startswith("usage: rwthlm [OPTION]... [LATTICE]... NETWORK")
    status, out, _ = call(RWTHLM, "--version", cwd=tmp_path)
    assert status == 0 and out == f"rwthlm (rwthlm_py {__version__}), the command line of rwthlm 0.12\n"
    status, out, _ = call(RWTHLM_PY, "--version", cwd=tmp_path)
    assert status == 0 and out == f"rwthlm_py {__version__}\n"


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_a_subcommands_help_names_only_its_own_options(tmp_path, command):
    status, out, _ = call(RWTHLM_PY, command, "--help", cwd=tmp_path)
    own = set(re.findall(r"^\s+(?:-h, )?(--[a-z-]+)", out, re.MULTILINE))
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*[a-z]", out))
    assert status == 0 and len(own) >= 5, out  # the help is there, on stdout
    assert named <= own, f"{command} --help names options it does not have: {sorted(named - own)}"


def test_each_subcommand_describes_its_options_in_its_own_words(tmp_path):
    helps = {command: call(RWTHLM_PY, command, "--help", cwd=tmp_path)[1] for command in SUBCOMMANDS}
    for command in ("ppl", "nbest", "lattice"):
        assert "must match the model's" in option_help(helps[command], "--vocab")
    assert "--train" in option_help(helps["train"], "--vocab")
    assert "1best.txt" in option_help(helps["nbest"], "--out") and "lattice" not in option_help(helps["nbest"], "--out")
    assert "next to each lattice" in option_help(helps["lattice"], "--out")
    assert "1best" not in option_help(helps["lattice"], "--out")
    assert "(default: all those of a time frame" in option_help(helps["lattice"], "--batch-size")
    assert "(default: 128)" in option_help(helps["nbest"], "--batch-size")
    assert "(default: 20)" in option_help(helps["train"], "--batch-size")
    assert "(default: as the model's training was given, else 1)" in option_help(helps["ppl"], "--batch-size")
    assert "(default: as the model's training was given)" in option_help(helps["nbest"], "--unk")
    for flag in ("--lambda", "--pruning-threshold"):
        assert option_help(helps["lattice"], flag).endswith("; required")
    assert "for ever" not in option_help(helps["train"], "--max-epoch")
    assert "(default: 4)" in option_help(helps["train"], "--stop-after-halvings")
    assert "--dtype" not in helps["selftest"] and "--verbose" not in helps["selftest"]


# -- errors of the command line before any file is read ---------------------------------------------

@pytest.mark.parametrize("command, arguments, message", [
    (RWTHLM, ["--train", "missing.txt", "--dev", "dev.txt", "lm-200-200"],
     "in network string 'lm-200-200', layer '200': no layer type letter before the size, e.g. i200 (the letters "
     "are i (projection), 2-9 (n-gram projection), l/L (tanh/sigmoid), r/R (recurrent tanh/sigmoid), m/M (LSTM))"),
    (RWTHLM_PY, ["train", "--train", "missing.txt", "--dev", "dev.txt", "lm-i8-m8-8"], "layer '8': no layer type"),
    (RWTHLM_PY, ["train", "--train", "missing.txt", "--dev", "dev.txt", "--tie-weights", "t-i4-m8"],
     "--tie-weights needs the projection's size (4) equal to the last hidden layer's (8)"),
    (RWTHLM_PY, ["train", "--train", "missing.txt", "--dev", "dev.txt", "--tie-weights", "--classes", 3, "t-i4-m4"],
     "--tie-weights needs a full softmax (every word its own class), not --classes 3"),
    (RWTHLM_PY, ["selftest", "lm-200-200"], "layer '200': no layer type"),
    (RWTHLM_PY, ["lattice", "--lambda", 0.5, "missing.lat", "corrupt-i4-m4"],
     "lattice rescoring needs --pruning-threshold"),
    (RWTHLM_PY, ["lattice", "--pruning-threshold", 5, "missing.lat", "corrupt-i4-m4"],
     "lattice rescoring needs --lambda"),
    (RWTHLM_PY, ["ppl", "--ppl", "missing.txt", "--lambda", 0.5, "corrupt-i4-m4"],
     "--lambda weighs the network against an ARPA model: give --arpa"),
    (RWTHLM_PY, ["ppl", "--ppl", "missing.txt", "--arpa", "missing.arpa", "--lambda", 0.5, "--debug-no-sb",
                 "corrupt-i4-m4"], "--arpa scores sentences and needs their boundaries: remove --debug-no-sb"),
    (RWTHLM_PY, ["nbest", "--nbest", "missing.nbest", "--lambda", 0.5, "corrupt-i4-m4"],
     "--lambda weighs the network against an ARPA model: give --arpa"),
    (RWTHLM_PY, ["nbest", "--kaldi", "missing", "missing", "missing"], "nbest needs the NETWORK model file"),
    (RWTHLM_PY, ["selftest", "--train", "missing.txt"], "selftest --train needs NETWORK"),
])
def test_errors_of_the_command_line_come_before_any_file_is_read(toy, command, arguments, message):
    """The files named are missing, or a model file that cannot be read: an error about
    them would mean that they were read before the options were checked."""
    (toy / "corrupt-i4-m4").write_bytes(b"not a model")
    assert_one_line_error(call(command, *arguments, cwd=toy), "rwthlm" if command is RWTHLM else "rwthlm-py",
                          message)


# -- lattice --out -----------------------------------------------------------------------------------

def test_lattice_out_creates_missing_folders_and_refuses_a_file(trained):
    (trained / "x.lat").write_text(HAND_LATTICE)
    rescore = ["lattice", "--lambda", 0.5, "--pruning-threshold", 50, "--set-sb-last", "--output", "ctm"]
    status, _, err = call(RWTHLM_PY, *rescore, "--out", "new/deeper", "x.lat", "toy-i8-m8", cwd=trained)
    assert status == 0, err
    assert (trained / "new" / "deeper" / "x.lat.ctm").read_text().startswith("x.lat 1 0.000 0.200 the")
    (trained / "taken").write_text("a file\n")
    result = call(RWTHLM_PY, *rescore, "--out", "taken", "x.lat", "toy-i8-m8", cwd=trained)
    assert_one_line_error(result, "rwthlm-py", "taken: --out: is a file, not a directory")
    assert "Rescoring ..." not in result[1]


# -- when training stops --------------------------------------------------------------------------------

def test_a_model_at_max_epoch_says_so_in_one_line_without_reading_the_data(trained):
    model = (trained / "toy-i8-m8").read_bytes()
    for command in (RWTHLM, RWTHLM_PY + ["train"]):
        status, out, err = call(command, "--train", "missing.txt", "--dev", "missing.txt", "--max-epoch", 1,
                                "toy-i8-m8", cwd=trained)
        assert status == 0, err
        assert out == "Nothing to train: the model has reached epoch 1 (--max-epoch 1)\n"
    assert (trained / "toy-i8-m8").read_bytes() == model


def test_rwthlm_py_train_stops_after_halvings_in_a_row_and_says_why(toy):
    """At rate 1000 every epoch diverges, is rolled back and halves the rate: the fourth
    halving in a row (rwthlm-py train's default) ends the run, and so does the second with
    --stop-after-halvings 2."""
    for stop, model in ((None, "t-i8-m8"), (2, "u-i8-m8")):
        given = [] if stop is None else ["--stop-after-halvings", stop]
        status, out, err = call(RWTHLM_PY, "train", *TOY_TRAINING, "--learning-rate", 1000, *given, model, cwd=toy)
        assert status == 0, err
        halvings = stop or 4
        assert out.count("learning rate halved") == halvings
        assert out.splitlines()[-1] == (f"the learning rate was halved in {halvings} epochs in a row "
                                        f"(--stop-after-halvings {halvings}): training stops (the model file holds "
                                        "the best model)")
        status, out, err = call(RWTHLM_PY, "train", *TOY_TRAINING, *given, model, cwd=toy)
        assert status == 0 and out.startswith(f"Nothing to train: the learning rate was halved in {halvings} epochs")


@pytest.mark.parametrize("arguments, line", [
    (["ppl", "toy-i8-m8"], "ppl needs --ppl (see rwthlm-py ppl --help)"),
    (["sample", "--num", 0, "toy-i8-m8"], "--num must lie in [1, 2,147,483,647] (see rwthlm-py sample --help)"),
    (["sample", "--temperature", 0, "toy-i8-m8"], "--temperature must be a positive number (see rwthlm-py sample "
                                                  "--help)"),
])
def test_a_subcommands_usage_error_points_to_its_own_help_before_the_model_is_used(trained, arguments, line):
    result = call(RWTHLM_PY, *arguments, cwd=trained)
    assert_usage_error(result, "rwthlm-py", line)
    assert "scoring layout" not in result[2] and "Reading neural network" not in result[1]
