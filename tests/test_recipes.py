"""The recipes: the toy recipe end to end (every stage, reruns, TensorBoard, run records);
the shell syntax of every recipe."""

import os
import pathlib
import subprocess
import sys

import pytest

RECIPES = pathlib.Path(__file__).resolve().parents[1] / "recipes"


def run_recipe(name, *args, cwd):
    # the console scripts live beside this interpreter (the venv the package is installed in)
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    return subprocess.run(["bash", str(RECIPES / name / "run.sh"), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_the_toy_recipe_runs_every_stage_and_reruns_nothing(tmp_path):
    exp = tmp_path / "exp"
    first = run_recipe("toy", "--exp-dir", exp, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    for number in range(1, 7):
        assert f"Stage {number}: " in first.stdout
    test_perplexity = float((exp / "perplexity.test").read_text())
    assert 1 < test_perplexity < 5  # the grammar is learnt: 38 words, perplexity far below
    assert any((exp / "tensorboard").glob("events.out.tfevents.*"))
    errors = {line.split(":")[0]: float(line.split("WER ")[1].split("%")[0])
              for line in (exp / "wer.test").read_text().splitlines()}
    assert errors["oracle"] == 0 and errors["rescored 1-best"] < errors["original 1-best"] / 2
    assert len(list((exp / "nbest" / "rescored").glob("utt*.nbest"))) == 100
    # the same lists as lattices: the search finds what n-best rescoring ranks first
    assert (exp / "lattice.wer.test").read_text() == (exp / "wer.test").read_text()
    assert len(list((exp / "lattices" / "rescored").glob("utt*.lat.ctm"))) == 100
    commands = sorted(path.name.split("-")[1] for path in (exp / "runs").iterdir())
    assert commands == ["lattice", "nbest", "ppl", "ppl", "rwthlm", "vocab"]
    second = run_recipe("toy", "--exp-dir", exp, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("done already") == 6 and "Stage 3: " not in second.stdout
    assert len(list((exp / "runs").iterdir())) == 6
    assert (exp / ".done.3").read_text().startswith("network=toy-i16-m16\nbatch_size=8\n")
    assert "stage2.classes=6" in (exp / ".done.4").read_text()
    # another setting is no silent reuse of the old results: the stage that uses it stops, naming it
    changed = run_recipe("toy", "--exp-dir", exp, "--max-epoch", 7, cwd=tmp_path)
    assert changed.returncode != 0 and "Stage 3" not in changed.stdout
    assert "stage 3 (training toy-i16-m16) was done with other settings" in changed.stderr
    assert "< max_epoch=6\n> max_epoch=7\n" in changed.stderr and f"remove {exp}/.done.3" in changed.stderr
    assert len(list((exp / "runs").iterdir())) == 6


@pytest.mark.slow
def test_an_interrupted_training_stage_resumes(tmp_path):
    exp = tmp_path / "exp"
    assert run_recipe("toy", "--exp-dir", exp, "--stop-stage", 2, cwd=tmp_path).returncode == 0
    # train two epochs, then "crash": the training stage is not marked done
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    subprocess.run(["rwthlm", "--train", exp / "data" / "train.txt", "--dev", exp / "data" / "dev.txt",
                    "--vocab", exp / "vocab.6", "--batch-size", "8", "--sequence-length", "20",
                    "--learning-rate", "0.02", "--gradient-clipping", "1", "--max-epoch", "2",
                    exp / "toy-i16-m16"], env=env, check=True, capture_output=True)
    resumed = run_recipe("toy", "--exp-dir", exp, "--stage", 3, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "Best development perplexity after 2 epochs" in resumed.stdout
    assert resumed.stdout.count("development perplexity =") == 4  # epochs 3 to 6


@pytest.mark.parametrize("script", sorted(RECIPES.glob("*/run.sh")), ids=lambda path: path.parent.name)
def test_every_recipe_is_valid_bash_with_the_common_flags(script):
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    for flag in ("--stage", "--stop-stage", "--quick", "--exp-dir"):
        assert flag in text, f"{script} lacks {flag}"
    assert (script.parent / "README.md").is_file()


def load_local(recipe, name):
    """A recipe's local/ script as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"{recipe}_{name}", RECIPES / recipe / "local" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gutenberg_normalisation_decodes_splits_and_holds_out_the_ends(tmp_path):
    import gzip

    normalize = load_local("gutenberg", "normalize")
    assert normalize.decode("é".encode("iso-8859-1")) == ("é", "ISO-8859-1")
    assert normalize.decode("é".encode("utf-8")) == ("é", "UTF-8")
    assert list(normalize.sentences("Mr. Smith met Dr. J. Watson.\r\nThen \"Go!\" He went.\n\n\ufb01n.")) == [
        "Mr. Smith met Dr. J. Watson.", "Then \"Go!\"", "He went.", "fin."]
    books = tmp_path / "books"
    books.mkdir()
    crlf = "".join(f"Chapter {k}.\r\nMr. Smith met\r\nDr. J. Watson.\r\n\r\n" for k in range(20))
    (books / "a.txt").write_bytes(crlf.encode("ascii"))
    (books / "b.txt.gz").write_bytes(gzip.compress("Brunetière écrit. Une ligne?\n".encode("iso-8859-1")))
    subprocess.run([sys.executable, str(RECIPES / "gutenberg" / "local" / "normalize.py"), str(books),
                    str(tmp_path / "out"), "--held-out", "0.1"], check=True, capture_output=True)
    splits = {name: gzip.decompress((tmp_path / "out" / f"{name}.txt.gz").read_bytes()).decode("utf-8").splitlines()
              for name in ("train", "dev", "test")}
    # book a has 40 sentences: the last 4 go to test, the 4 before to dev; book b has 2
    watson = "Mr. Smith met Dr. J. Watson."
    assert splits["train"] == [line for k in range(16) for line in (f"Chapter {k}.", watson)]
    assert splits["dev"] == ["Chapter 16.", watson, "Chapter 17.", watson, "Brunetière écrit."]
    assert splits["test"] == ["Chapter 18.", watson, "Chapter 19.", watson, "Une ligne?"]


def test_word_perplexity_charges_each_word_its_pieces(tmp_path):
    import gzip

    (tmp_path / "ppl.out").write_text("file t: 2 sentences, 7 words, 0 OOVs\n"
                                      "0 zeroprobs, logprob= -9 ppl= 12.9155 ppl1= 19.3070\nperplexity:\n12.9\n")
    (tmp_path / "text.gz").write_bytes(gzip.compress(b"a bb\nccc\n"))
    result = subprocess.run([sys.executable, str(RECIPES / "gutenberg" / "local" / "word_perplexity.py"),
                             str(tmp_path / "ppl.out"), str(tmp_path / "text.gz")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(f"per piece 12.92, per word {10 ** (9 / (3 + 2)):.2f}")
