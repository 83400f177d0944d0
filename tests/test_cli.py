"""Both command lines end to end on toy data, and one clear line for every kind of bad input."""

import gzip
import os
import subprocess
import sys

import pytest
from conftest import HAND_LATTICE as TOY_LATTICE
from conftest import assert_one_line_error, wait_for_line
from conftest import run_cli as call

RWTHLM = [sys.executable, "-c", "import sys; from rwthlm_py.cli import rwthlm_main; sys.exit(rwthlm_main())"]
RWTHLM_PY = [sys.executable, "-m", "rwthlm_py"]


@pytest.fixture
def trained(toy):
    """The toy folder with toy-i8-m8 trained by rwthlm itself (rwthlm's defaults: fixed word
    wrapping, no clipping); in this module it takes the place of conftest's `trained`, a
    model of rwthlm-py train."""
    status, out, err = call(RWTHLM, "--train", "train.txt", "--dev", "dev.txt", "--batch-size", 8,
                            "--sequence-length", 12, "--learning-rate", 0.05, "--max-epoch", 1,
                            "--vocab", "vocab", "toy-i8-m8", cwd=toy)
    assert status == 0, err
    return toy


def test_help_without_network(tmp_path):
    status, out, _ = call(RWTHLM, cwd=tmp_path)
    assert status == 0 and "Usage: rwthlm [OPTION]... [LATTICE]... NETWORK".lower() in out.lower()
    assert "--word-wrapping" in out and "--self-test" not in out
    status, out, _ = call(RWTHLM_PY, "--help", cwd=tmp_path)
    assert status == 0 and all(c in out for c in ("train", "ppl", "selftest", "vocab"))


def test_rwthlm_training_prints_rwthlms_lines(trained):
    status, out, _ = call(RWTHLM, "--ppl", "test.txt", "toy-i8-m8", cwd=trained)
    assert status == 0
    assert "Reading neural network from file 'toy-i8-m8' ..." in out
    assert "Best development perplexity after 1 epochs: " in out
    lines = out.strip().splitlines()
    assert lines[-2] == "perplexity:" and float(lines[-1]) > 1
    assert (trained / "vocab").exists() and (trained / "toy-i8-m8").exists()


def test_rwthlm_py_ppl_equals_rwthlm_ppl(trained):
    """rwthlm keeps its own defaults (sequences of 100); rwthlm-py takes the model's
    training layout (sequences of 12) unless given another."""
    _, rwthlm_out, _ = call(RWTHLM, "--ppl", "test.txt", "--batch-size", 3, "toy-i8-m8", cwd=trained)
    _, py_out, _ = call(RWTHLM_PY, "ppl", "--ppl", "test.txt", "--batch-size", "3", "--sequence-length", 100,
                        "toy-i8-m8", cwd=trained)
    assert rwthlm_out.splitlines()[-1] == py_out.splitlines()[-1]
    _, trained_layout, _ = call(RWTHLM, "--ppl", "test.txt", "--batch-size", 8, "--sequence-length", 12,
                                "toy-i8-m8", cwd=trained)
    _, py_out, _ = call(RWTHLM_PY, "ppl", "--ppl", "test.txt", "toy-i8-m8", cwd=trained)
    assert trained_layout.splitlines()[-1] == py_out.splitlines()[-1] != rwthlm_out.splitlines()[-1]


def test_verbose_lines_do_not_depend_on_batch_size(trained):
    outputs = []
    for batch_size in (1, 7):
        _, out, _ = call(RWTHLM, "--ppl", "test.txt", "--verbose", "--word-wrapping", "verbatim",
                         "--batch-size", batch_size, "toy-i8-m8", cwd=trained)
        outputs.append([line.split() for line in out.splitlines() if line.startswith("\tp( ")])
    assert len(outputs[0]) == len(outputs[1]) > 100
    for one, seven in zip(*outputs, strict=True):
        # the same word in the same place; the numbers agree to float32 rounding
        assert one[1] == seven[1]
        assert float(one[7]) == pytest.approx(float(seven[7]), rel=1e-5, abs=2e-8)


def test_config_file_values_and_command_line_precedence(trained):
    (trained / "conf").write_text("# a comment\nbatch-size = 5\nword-wrapping = verbatim\nverbose = true\n")
    _, out, _ = call(RWTHLM, "--config", "conf", "--ppl", "test.txt", "--verbose", "toy-i8-m8", cwd=trained)
    assert "Reading options from config file 'conf' ..." in out
    _, plain, _ = call(RWTHLM, "--ppl", "test.txt", "--batch-size", 5, "--word-wrapping", "verbatim",
                       "toy-i8-m8", cwd=trained)
    assert out.splitlines()[-1] == plain.splitlines()[-1]
    _, override, _ = call(RWTHLM, "--config", "conf", "--word-wrapping", "fixed", "--ppl", "test.txt",
                          "toy-i8-m8", cwd=trained)
    _, fixed, _ = call(RWTHLM, "--ppl", "test.txt", "--batch-size", 5, "toy-i8-m8", cwd=trained)
    assert override.splitlines()[-1] == fixed.splitlines()[-1]


def test_selftest_commands(trained):
    status, out, _ = call(RWTHLM, "--train", "train.txt", "--self-test", "toy-i8-m8", cwd=trained)
    assert status == 0 and "Gradient test SUCCEEDED!" in out
    status, out, _ = call(RWTHLM_PY, "selftest", "t-r4-m3", cwd=trained)
    assert status == 0 and out.count("Gradient test SUCCEEDED!") == 2
    status, out, _ = call(RWTHLM_PY, "selftest", "--dropout", 0.3, "--variational-dropout", "t-r4-m3", cwd=trained)
    assert status == 0 and out.count("Gradient test SUCCEEDED!") == 2 and "with dropout 0.3" in out
    status, out, _ = call(RWTHLM, "--train", "train.txt", "--self-test", "--dropout", 0.3, "toy-i8-m8", cwd=trained)
    assert status == 0 and "Gradient test SUCCEEDED!" in out and "with dropout 0.3" in out


def test_vocab_subcommand_writes_frequency_classes(toy):
    status, out, _ = call(RWTHLM_PY, "vocab", "--train", "train.txt", "--classes", 4, "--out", "classes",
                          cwd=toy)
    assert status == 0
    lines = (toy / "classes").read_text().splitlines()
    assert len({line.split("\t")[1] for line in lines}) == 4
    status, _, err = call(RWTHLM, "--train", "train.txt", "--dev", "dev.txt", "--vocab", "classes",
                          "--learning-rate", 0.05, "--max-epoch", 1, "--batch-size", 8, "toy-i8-m8", cwd=toy)
    assert status == 0, err


def test_stream_mode_is_named_in_the_output(trained):
    _, out, _ = call(RWTHLM, "--ppl", "test.txt", "--word-wrapping", "stream", "toy-i8-m8", cwd=trained)
    assert "word wrapping 'stream'" in out and "not an rwthlm mode" in out


BAD_OPTIONS = [
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--batch-size", "x"], "--batch-size takes an integer, not 'x'"),
    (["--momentum", "1.5"], "--momentum must lie in [0, 1)"),
    (["--learning-rate", "-1"], "--learning-rate must be a positive number"),
    (["--word-wrapping", "wrapped"], "--word-wrapping must be one of"),
    (["--sequence-length", "1"], "--sequence-length must be at least 2"),
    (["--num-oovs", "-3"], "--num-oovs must not be negative"),
    (["--no-such-option"], "unrecognized option --no-such-option"),
    (["--lambda", "0.5"], "--lambda: only for lattice rescoring (give LATTICE files before the NETWORK)"),
]


@pytest.mark.parametrize("arguments, message", BAD_OPTIONS)
def test_nonsensical_options(trained, arguments, message):
    result = call(RWTHLM, "--ppl", "test.txt", *arguments, "toy-i8-m8", cwd=trained)
    assert_one_line_error(result, "rwthlm", message)




def test_rwthlm_rescores_lattices_and_writes_next_to_them(trained):
    (trained / "x.lat").write_text(TOY_LATTICE)
    with gzip.open(trained / "y.lat.gz", "wt") as handle:
        handle.write(TOY_LATTICE)
    for output, names in (("lattice", ("x.lat.rescored", "y.lat.rescored.gz")), ("ctm", ("x.lat.ctm", "y.lat.ctm.gz"))):
        status, out, err = call(RWTHLM, "--lambda", 0.8, "--pruning-threshold", 0, "--map-sb", "</s>", "--output",
                                output, "x.lat", "y.lat.gz", "toy-i8-m8", cwd=trained)
        assert status == 1  # the model's boundary is <sb>: --map-sb must match it
        assert "the model's sentence boundary is '<sb>'" in err
        status, out, err = call(RWTHLM, "--lambda", 0.8, "--pruning-threshold", 0, "--set-sb-last",
                                "--output", output, "x.lat", "y.lat.gz", "toy-i8-m8", cwd=trained)
        assert status == 0, err
        lines = out.splitlines()
        assert lines.count("Rescoring ...") == 1
        assert "lattice 'x.lat' ..." in lines and "lattice 'y.lat.gz' ..." in lines
        assert "Setting final epsilon link 6 to <sb>!" in lines
        assert any(line.startswith("t=20 #hyps/#nodes: 1/1 ") for line in lines)
        best = [line.split("\t") for line in lines if line.startswith("\tW=")]
        assert [fields[1] for fields in best[:len(best) // 2]][-1] == "W=</s>"
        assert all((trained / name).exists() for name in names)
    ctm = (trained / "x.lat.ctm").read_text().splitlines()
    assert ctm[0] == "x.lat 1 0.000 0.200 the" and "</s>" not in " ".join(ctm)
    rescored = (trained / "x.lat.rescored").read_text().splitlines()
    assert rescored[:9] == TOY_LATTICE.splitlines()[:9]
    assert all(" l=" in line and not line.endswith("l=-1.0") for line in rescored[9:10])


def test_a_broken_lattice_is_one_error_and_the_others_go_on(trained):
    (trained / "good.lat").write_text(TOY_LATTICE.replace("W=</s>", "W=<sb>"))
    (trained / "bad.lat").write_text("VERSION=1.0\n")
    status, out, err = call(RWTHLM, "--lambda", 0.5, "--pruning-threshold", 10, "bad.lat", "good.lat",
                            "toy-i8-m8", cwd=trained)
    assert status == 1 and "Traceback" not in err
    lines = err.splitlines()
    assert "rwthlm: error: bad.lat:1: no size line (N= L=)" in lines
    assert lines[-1] == "rwthlm: 1 of 2 lattices failed"
    assert lines[-2].startswith("rescored 1 lattice (0.80 s of audio) in ")
    assert "single best: " in out and (trained / "good.lat.rescored").exists()
    assert not (trained / "bad.lat.rescored").exists()


def test_rwthlm_py_lattice_writes_under_out_with_a_word_penalty(trained):
    (trained / "x.lat").write_text(TOY_LATTICE)
    (trained / "out").mkdir()
    common = ["lattice", "--lambda", 0.5, "--pruning-threshold", 50, "--set-sb-last", "--output", "ctm"]
    status, out, err = call(RWTHLM_PY, *common, "--out", "out", "x.lat", "toy-i8-m8", cwd=trained)
    assert status == 0, err
    assert (trained / "out" / "x.lat.ctm").exists() and not (trained / "x.lat.ctm").exists()
    assert "real-time factor" in err.splitlines()[-1]
    plain = float(next(line for line in out.splitlines() if line.startswith("single best: ")).split()[-1])
    status, out, err = call(RWTHLM_PY, *common, "--out", "out", "--word-penalty", 1, "--acoustic-scale", 0.5,
                            "x.lat", "toy-i8-m8", cwd=trained)
    assert status == 0, err
    scaled = float(next(line for line in out.splitlines() if line.startswith("single best: ")).split()[-1])
    assert scaled < plain - 30  # half the acoustic cost (at least 60 on any path), less 4 ln 10 for 4 words
    (trained / "y.lat").write_text(TOY_LATTICE)
    status, before, err = call(RWTHLM_PY, *common, "--out", "out", "--word-penalty", 1, "x.lat", "y.lat",
                               "toy-i8-m8", cwd=trained)
    assert status == 0, err
    status, among, err = call(RWTHLM_PY, *common, "x.lat", "--out", "out", "--word-penalty", 1, "y.lat",
                              "toy-i8-m8", cwd=trained)  # options among the files, as rwthlm takes them
    assert status == 0, err
    assert [line for line in among.splitlines() if "best" in line] == \
        [line for line in before.splitlines() if "best" in line] and "single best: " in among
    (trained / "sub").mkdir()
    (trained / "sub" / "x.lat").write_text(TOY_LATTICE)
    assert_one_line_error(call(RWTHLM_PY, *common, "--out", "out", "x.lat", "sub/x.lat", "toy-i8-m8", cwd=trained),
                          "rwthlm-py", "out/x.lat.ctm: the output of LATTICE sub/x.lat would overwrite the output of "
                          "LATTICE x.lat: they are one file")


def test_rwthlm_py_lattice_counts_word_errors(trained):
    """The lattice's own best path (the dog feeds: acoustic and LM scores 25 + 1 beat the
    !NULL and sees, 1 + 20 + 1.5), the rescored one and the oracle (the cat sees)."""
    (trained / "utt1.lat").write_text(TOY_LATTICE.replace("W=</s>", "W=<sb>"))
    (trained / "refs").write_text("utt1 the cat sees\n")
    status, out, err = call(RWTHLM_PY, "lattice", "--lambda", 0.0, "--pruning-threshold", 0, "--refs", "refs",
                            "utt1.lat", "toy-i8-m8", cwd=trained)
    assert status == 0, err
    lines = out.splitlines()[-3:]
    assert lines[0] == "original 1-best:  WER 33.33% [ 1 / 3, 0 ins, 0 del, 1 sub ]"
    assert lines[1].startswith("rescored 1-best:  WER 33.33%")  # lambda 0: the lattice's own LM again
    assert lines[2] == "oracle:           WER 0.00% [ 0 / 3, 0 ins, 0 del, 0 sub ]"
    (trained / "refs").write_text("utt2 the cat sees\n")
    result = call(RWTHLM_PY, "lattice", "--lambda", 0.0, "--pruning-threshold", 0, "--refs", "refs", "utt1.lat",
                  "toy-i8-m8", cwd=trained)
    assert_one_line_error(result, "rwthlm-py", "no reference for utterance 'utt1'")


def test_a_lattice_from_standard_input_is_refused(trained):
    """Standard input has no file name for the outputs (rwthlm's x.lat -> x.lat.rescored)."""
    rescore = ["--lambda", "1", "--pruning-threshold", "100", "--set-sb-last"]
    for program, command in (("rwthlm", RWTHLM + rescore),
                             ("rwthlm-py", RWTHLM_PY + ["lattice", *rescore, "--out", "out"])):
        result = subprocess.run(command + ["-", "toy-i8-m8"], cwd=trained, input=TOY_LATTICE, capture_output=True,
                                text=True, timeout=300)
        assert_one_line_error((result.returncode, result.stdout, result.stderr), program,
                              "-: standard input cannot be a lattice", "write it to a file first")
        assert "Rescoring ..." not in result.stdout
    assert not list(trained.rglob("*rescored*")) and not (trained / "out").exists()


def test_lattice_rescoring_needs_its_options_and_a_model(trained):
    (trained / "x.lat").write_text(TOY_LATTICE)
    assert_one_line_error(call(RWTHLM, "--pruning-threshold", 0, "x.lat", "toy-i8-m8", cwd=trained), "rwthlm",
                          "lattice rescoring needs --lambda")
    assert_one_line_error(call(RWTHLM, "--lambda", 1, "x.lat", "toy-i8-m8", cwd=trained), "rwthlm",
                          "lattice rescoring needs --pruning-threshold")
    assert_one_line_error(call(RWTHLM, "--lambda", 1, "--pruning-threshold", 0, "x.lat", "missing", cwd=trained),
                          "rwthlm", "needs a trained model")
    result = call(RWTHLM, "--lambda", 1, "--pruning-threshold", 0, "x.lat", "toy-i8-m8", cwd=trained)
    assert_one_line_error(result, "rwthlm", "x.lat:16:", "link 6: '</s>' is not in the vocabulary, whose sentence "
                          "boundary is '<sb>': relabel the last links with --set-sb-last")


def test_texts_without_words_are_refused_before_any_work(trained):
    """An empty dev text used to train for ever (every epoch rolled back); an empty --ppl
    text printed nan."""
    (trained / "empty.txt").write_text("")
    (trained / "blank.txt").write_text("\n\n")
    cases = ((["--train", "train.txt", "--dev", "empty.txt"], "empty.txt: the development text has no words"),
             (["--train", "blank.txt", "--dev", "dev.txt"], "blank.txt: the training text has no words"),
             (["--ppl", "blank.txt"], "blank.txt: the --ppl text has no words"))
    for args, message in cases:
        result = call(RWTHLM, *args, "--vocab", "vocab", "--max-epoch", 0, "toy-i8-m8", cwd=trained)
        assert_one_line_error(result, "rwthlm", message)


@pytest.mark.parametrize("signal_name, status", [("SIGTERM", 143), ("SIGHUP", 129)])
def test_a_terminated_training_ends_with_one_line_and_leaves_no_litter(toy, signal_name, status, children):
    import signal

    process = children.start(RWTHLM, "--train", "train.txt", "--dev", "dev.txt", "--batch-size", 8,
                             "--sequence-length", 12, "--learning-rate", 0.05, "--vocab", "vocab", "toy-i8-m8", cwd=toy)
    wait_for_line(process, "development perplexity")  # the first epoch ends, its model is saved
    process.send_signal(getattr(signal, signal_name))
    _, err = process.communicate(timeout=120)
    assert process.returncode == status, err
    assert err.strip().splitlines()[-1] == f"rwthlm: stopped by {signal_name}" and "Traceback" not in err
    assert not [path.name for path in toy.iterdir() if path.name.endswith(".tmp")]
    assert call(RWTHLM, "--ppl", "test.txt", "toy-i8-m8", cwd=toy)[0] == 0


def test_bad_vocabulary_files(toy):
    (toy / "dup").write_text("the\ncat\nthe\n")
    assert_one_line_error(call(RWTHLM, "--vocab", "dup", "--train", "train.txt", "--dev", "dev.txt", "t-i4-m4",
                               cwd=toy), "rwthlm", "dup:3:", "duplicate word 'the'")
    (toy / "bad").write_text("the 1\ncat one\n")
    assert_one_line_error(call(RWTHLM, "--vocab", "bad", "--train", "train.txt", "--dev", "dev.txt", "t-i4-m4",
                               cwd=toy), "rwthlm", "bad:2:", "not an integer")
    assert not (toy / "t-i4-m4").exists()


def test_unknown_words_without_unk(toy):
    (toy / "small").write_text("the\ncat\n")
    assert_one_line_error(call(RWTHLM, "--vocab", "small", "--train", "train.txt", "--dev", "dev.txt",
                               "--learning-rate", 0.1, "t-i4-m4", cwd=toy),
                          "rwthlm", "dev.txt:1:", "unknown word", "--unk")
    assert not (toy / "t-i4-m4").exists()


HUGE_TOKEN = "q" * 10_000_000


@pytest.mark.parametrize("name, content, program, arguments, shown", [
    ("huge.txt", f"the cat sees a dog\nthe {HUGE_TOKEN} sees\n", "rwthlm", ["--ppl", "huge.txt"],
     f"huge.txt:2: unknown word '{'q' * 100}...{'q' * 40}' (10,000,000 characters) (not in the vocabulary"),
    ("huge.arpa", "\\data\\\nngram 1=3\n" + "ab " * 3_400_000 + "\n", "rwthlm-py",
     ["ppl", "--ppl", "test.txt", "--arpa", "huge.arpa", "--lambda", 0.5],
     "huge.arpa:3: expected `ngram N=count` in \\data\\, not 'ab ab ab"),
])
def test_input_quoted_in_an_error_line_is_shortened(trained, name, content, program, arguments, shown):
    """A 10 MB token, or a 10 MB line of short words, quoted in an error: the line names
    file and line, the input's start and its length, and stays short."""
    (trained / name).write_text(content)
    result = call(RWTHLM if program == "rwthlm" else RWTHLM_PY, *arguments, "toy-i8-m8", cwd=trained)
    assert_one_line_error(result, program, shown)
    [line] = [line for line in result[2].splitlines() if line.startswith(f"{program}: error: ")]
    assert len(line) < 1200 and " characters" in line


def test_an_unknown_word_of_up_to_300_characters_is_shown_whole_a_longer_one_shortened(trained):
    """errors.shortened keeps a word of 300 characters (a URL, a path) whole; from 301 on it
    shows the first 100 and the last 40 characters, and the length."""
    word = "".join(f"{number:03d}-" for number in range(100))  # where each character stands is visible
    (trained / "300.txt").write_text(f"the cat sees a dog\nthe {word[:300]} sees\n")
    assert_one_line_error(call(RWTHLM, "--ppl", "300.txt", "toy-i8-m8", cwd=trained), "rwthlm",
                          f"300.txt:2: unknown word '{word[:300]}' (not in the vocabulary")
    (trained / "301.txt").write_text(f"the cat sees a dog\nthe {word[:301]} sees\n")
    assert_one_line_error(call(RWTHLM, "--ppl", "301.txt", "toy-i8-m8", cwd=trained), "rwthlm",
                          f"301.txt:2: unknown word '{word[:100]}...{word[261:301]}' (301 characters) (not in the "
                          "vocabulary")


def test_lines_too_long_for_verbatim(toy):
    assert_one_line_error(call(RWTHLM, "--train", "train.txt", "--dev", "dev.txt", "--word-wrapping", "verbatim",
                               "--sequence-length", 6, "--learning-rate", 0.1, "t-i4-m4", cwd=toy),
                          "rwthlm", ".txt:", "more than verbatim word wrapping allows")


def test_non_utf8_text(toy):
    with gzip.open(toy / "latin1.txt.gz", "wb") as handle:
        handle.write("the cat\nthe caf\xe9\n".encode("latin-1"))
    assert_one_line_error(call(RWTHLM, "--train", "latin1.txt.gz", "--dev", "dev.txt", "t-i4-m4", cwd=toy),
                          "rwthlm", "latin1.txt.gz:2:", "not UTF-8")


@pytest.mark.parametrize("network, message", [
    ("toy-m8", "cannot be the first layer"), ("toy-i8-q8", "unknown layer type 'q'"), ("toy", "NAME-LAYER"),
    ("toy-i100-m1000000", "TiB for its weights, gradients and momentum alone; this machine has")])
def test_bad_network_strings(toy, network, message):
    assert_one_line_error(call(RWTHLM, "--train", "train.txt", "--dev", "dev.txt", network, cwd=toy),
                          "rwthlm", message)
    assert not (toy / network).exists()


def test_bad_model_files(trained):
    content = (trained / "toy-i8-m8").read_bytes()
    (trained / "truncated").write_bytes(content[: len(content) // 3])
    assert_one_line_error(call(RWTHLM, "--ppl", "test.txt", "truncated", cwd=trained), "rwthlm",
                          "truncated: not a readable rwthlm_py model file")
    (trained / "other").write_bytes(b"\x00" * 100)
    assert_one_line_error(call(RWTHLM, "--ppl", "test.txt", "other", cwd=trained), "rwthlm", "other:")
    assert_one_line_error(call(RWTHLM, "--ppl", "test.txt", "t-i8-m8", cwd=trained), "rwthlm",
                          "--ppl needs a trained model")


def test_model_that_does_not_match_the_vocabulary(trained):
    words = [line.split("\t")[0] for line in (trained / "vocab").read_text().splitlines()]
    (trained / "other-vocab").write_text("\n".join(reversed(words)))
    assert_one_line_error(call(RWTHLM, "--vocab", "other-vocab", "--ppl", "test.txt", "toy-i8-m8", cwd=trained),
                          "rwthlm", "toy-i8-m8:", "does not match the vocabulary")


def test_missing_files(toy):
    assert_one_line_error(call(RWTHLM, "--train", "nothing.txt", "--dev", "dev.txt", "t-i4-m4", cwd=toy),
                          "rwthlm", "nothing.txt: no such file")
    assert_one_line_error(call(RWTHLM_PY, "train", "--train", "train.txt", "t-i4-m4", cwd=toy),
                          "rwthlm-py", "train needs --dev")
    (toy / "conf").write_text("batch-size = 2\nbogus = 1\n")
    assert_one_line_error(call(RWTHLM, "--config", "conf", "--train", "train.txt", "t-i4-m4", cwd=toy),
                          "rwthlm", "conf:2:", "unknown option 'bogus'")
    assert sorted(os.listdir(toy)) == ["conf", "dev.txt", "test.txt", "train.txt"]


def test_remap_writes_the_network_order(toy):
    (toy / "classes").write_text("the 3\ncat 1\ndog 1\nsees 2\n<unk> 9\n")
    status, out, _ = call(RWTHLM, "--vocab", "classes", "--remap", "remapped", "t-i4-m4", cwd=toy)
    assert status == 0 and "Writing remapped vocabulary ..." in out
    assert (toy / "remapped").read_text() == "sees\t0\nthe\t1\n<unk>\t2\n<sb>\t3\ncat\t4\ndog\t4\n"
    assert not (toy / "t-i4-m4").exists()


def test_unk_and_num_oovs(trained):
    (trained / "oov.txt").write_text("the zebra sees the cat\n")
    assert_one_line_error(call(RWTHLM, "--ppl", "oov.txt", "toy-i8-m8", cwd=trained), "rwthlm",
                          "oov.txt:1:", "unknown word 'zebra'")
    words = [line.split("\t")[0] for line in (trained / "vocab").read_text().splitlines()]
    assert "<unk>" not in words
    assert_one_line_error(call(RWTHLM, "--unk", "--ppl", "oov.txt", "toy-i8-m8", cwd=trained), "rwthlm",
                          "no '<unk>'")
    _, out, _ = call(RWTHLM, "--unk", "--map-unk", "dog", "--ppl", "oov.txt", "toy-i8-m8", cwd=trained)
    assert "1 words not in the vocabulary were scored as <unk>" in out
    _, penalised, _ = call(RWTHLM, "--unk", "--map-unk", "dog", "--num-oovs", 9, "--ppl", "oov.txt",
                           "toy-i8-m8", cwd=trained)
    plain, penalty = float(out.splitlines()[-1]), float(penalised.splitlines()[-1])
    assert penalty == pytest.approx(plain * 10 ** (1 / 6), rel=1e-6)  # 6 predicted tokens


def test_train_builds_class_vocabulary_and_resumes(toy):
    arguments = ["train", "--train", "train.txt", "--dev", "dev.txt", "--classes", 5, "--vocab", "v5",
                 "--learning-rate", 0.05, "--batch-size", 8]
    status, out, err = call(RWTHLM_PY, *arguments, "--max-epoch", 1, "t-i8-m8", cwd=toy)
    assert status == 0, err
    assert "Clustering" in out and "iteration 1/" in out and "words/s; at most" in out
    assert len({line.split("\t")[1] for line in (toy / "v5").read_text().splitlines()}) == 5
    status, out, err = call(RWTHLM_PY, *arguments, "--max-epoch", 2, "t-i8-m8", cwd=toy)
    assert status == 0 and "Clustering" not in out and "Best development perplexity after 1 epochs" in out
    bad = list(arguments)
    bad[bad.index("--classes") + 1] = 6
    assert_one_line_error(call(RWTHLM_PY, *bad, "t-i8-m8", cwd=toy), "rwthlm-py",
                          "--classes 6 does not match the existing vocabulary's 5 classes")


def test_record_keeps_command_configuration_machine_log_and_status(trained):
    import json

    status, out, _ = call(RWTHLM_PY, "ppl", "--ppl", "test.txt", "--batch-size", 3, "--record", "exp",
                          "toy-i8-m8", cwd=trained)
    assert status == 0
    assert_one_line_error(call(RWTHLM, "--ppl", "nosuch.txt", "--record", "exp", "toy-i8-m8", cwd=trained),
                          "rwthlm", "nosuch.txt: no such file")
    good, bad = sorted((trained / "exp" / "runs").iterdir())
    assert good.name.endswith("-ppl") and bad.name.endswith("-rwthlm")
    assert sorted(path.name for path in good.iterdir()) == [
        "command.txt", "config.json", "log.txt", "machine.json", "status.json"]
    assert "ppl --ppl test.txt --batch-size 3 --record exp toy-i8-m8" in (good / "command.txt").read_text()
    config = json.loads((good / "config.json").read_text())
    assert config["batch_size"] == 3 and config["ppl"] == "test.txt" and config["word_wrapping"] == "fixed"
    machine = json.loads((good / "machine.json").read_text())
    assert machine["numpy"] and machine["cores"] >= 1 and "blas" in machine
    assert out.strip().splitlines()[-1] in (good / "log.txt").read_text()
    assert json.loads((good / "status.json").read_text())["exit_status"] == 0
    failed = json.loads((bad / "status.json").read_text())
    assert failed["exit_status"] == 1 and "no such file" in failed["error"]


def test_an_unwritable_tensorboard_directory_is_one_line_and_writes_no_model(trained):
    (trained / "blocker").write_text("a file where a directory should be\n")
    assert_one_line_error(call(RWTHLM_PY, "train", "--train", "train.txt", "--dev", "dev.txt", "--batch-size", 8,
                               "--learning-rate", 0.05, "--max-epoch", 1, "--tensorboard", "blocker/tb",
                               "new-i4-m4", cwd=trained),
                          "rwthlm-py", "blocker/tb: cannot write TensorBoard events here")
    assert not (trained / "new-i4-m4").exists()
    assert_one_line_error(call(RWTHLM_PY, "ppl", "--ppl", "test.txt", "--tensorboard", "blocker/tb", "toy-i8-m8",
                               cwd=trained), "rwthlm-py", "cannot write TensorBoard events here")
