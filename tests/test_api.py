"""The Python API gives the numbers the command line gives, from the same model file."""

import math
import subprocess
import sys

import numpy
import pytest
from conftest import RWTHLM_PY, run_cli

import rwthlm_py
from rwthlm_py.errors import InputError


def call(*args, cwd):
    status, out, err = run_cli(RWTHLM_PY, *args, cwd=cwd)
    assert status == 0, err
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two toy models: one trained in rwthlm-py train's layout, one with --unk --num-oovs 4."""
    from conftest import toy_sentences

    folder = tmp_path_factory.mktemp("api")
    for name, count, seed in (("train", 400, 1), ("dev", 60, 2)):
        (folder / f"{name}.txt").write_text("\n".join(toy_sentences(count, seed)) + "\n")
    (folder / "train-unk.txt").write_text((folder / "train.txt").read_text().replace(" dog ", " <unk> "))
    # sequences of 8: the development text spans several batches, whose state `stream` carries
    call("train", "--train", "train.txt", "--dev", "dev.txt", "--sequence-length", 8, "--learning-rate", 0.05,
         "--max-epoch", 1, "t-i8-m8", cwd=folder)
    call("train", "--train", "train-unk.txt", "--dev", "dev.txt", "--unk", "--num-oovs", 4, "--learning-rate", 0.05,
         "--max-epoch", 1, "u-i8-m8", cwd=folder)
    return folder


def last_value(out):
    return out.strip().splitlines()[-1]


def test_perplexity_is_the_figure_of_rwthlm_py_ppl(models):
    lm = rwthlm_py.load(models / "t-i8-m8", backend="numpy")
    assert (lm.options.batch_size, lm.options.sequence_length, lm.options.word_wrapping) == (20, 8, "stream")
    text = (models / "dev.txt").read_text()
    assert f"{lm.perplexity(text):.20f}" == last_value(call("ppl", "--ppl", "dev.txt", "t-i8-m8", cwd=models))
    assert lm.perplexity(text.splitlines()) == lm.perplexity(text)
    one = rwthlm_py.load(models / "t-i8-m8", backend="numpy", batch_size=1, word_wrapping="verbatim",
                         sequence_length=100)
    assert f"{one.perplexity(text):.20f}" == last_value(call("ppl", "--ppl", "dev.txt", "--batch-size", 1,
                                                             "--word-wrapping", "verbatim", "--sequence-length", 100,
                                                             "t-i8-m8", cwd=models))
    (models / "oov.txt").write_text("the zebra sees the cat\n")
    assert f"{lm.perplexity(['the zebra sees the cat']):.20f}" == last_value(
        call("ppl", "--ppl", "oov.txt", "t-i8-m8", cwd=models))  # an OOV left out, as the command does


def test_sentence_log_probs_are_the_scores_of_rwthlm_py_nbest(models):
    sentences = ["the cat sees the dog", "a big dog likes the cat", "the dog"]
    (models / "s.nbest").write_text("".join(f"0 0 {len(s.split())} {s}\n" for s in sentences))
    call("nbest", "--nbest", "s.nbest", "--dtype", "float64", "--no-prefix-sharing", "--out", "out", "t-i8-m8",
         cwd=models)
    written = {" ".join(line.split()[3:]): float(line.split()[1])
               for line in (models / "out" / "s.nbest").read_text().splitlines()}
    lm = rwthlm_py.load(models / "t-i8-m8", backend="numpy", dtype="float64")
    scores = lm.sentence_log_probs(sentences)
    for sentence, score in zip(sentences, scores, strict=True):
        assert score.log10_prob == pytest.approx(written[sentence], rel=1e-6)  # nbest writes 7 digits
        assert score.words == sentence.split() and len(score.word_log_probs) == len(score.words) + 1
        assert isinstance(score.word_log_probs, numpy.ndarray) and score.word_log_probs.dtype == numpy.float64
        assert score.word_log10_probs == pytest.approx(score.word_log_probs / math.log(10))
        assert score.log_prob == pytest.approx(score.word_log_probs.sum())
    (models / "s.txt").write_text("\n".join(sentences) + "\n")
    verbose = call("ppl", "--ppl", "s.txt", "--verbose", "--dtype", "float64", "--word-wrapping", "verbatim",
                   "--batch-size", 1, "t-i8-m8", cwd=models)
    printed = [float(line.split("[ ")[1].split(" ]")[0]) for line in verbose.splitlines() if line.startswith("\tp( ")]
    expected = numpy.concatenate([score.word_log10_probs for score in scores])
    assert printed == pytest.approx(expected.tolist(), abs=5e-6)  # five decimals printed
    assert lm.sentence_log_probs([["the", "dog"]])[0].log_prob == pytest.approx(scores[2].log_prob, rel=1e-12)
    with pytest.raises(InputError, match="sentence 2: unknown word 'zebra'"):
        lm.sentence_log_probs(["the cat", "the zebra"])


def test_next_word_log_probs_are_the_distribution_after_the_history(models):
    lm = rwthlm_py.load(models / "t-i8-m8", backend="numpy", dtype="float64")
    distribution = lm.next_word_log_probs("the big")
    assert distribution.shape == (len(lm.vocabulary),) and distribution.dtype == numpy.float64
    assert numpy.exp(distribution).sum() == pytest.approx(1.0, abs=1e-12)
    for word in ("dog", "cat", "the", "<sb>"):
        words = ["the", "big"] + ([word] if word != "<sb>" else [])
        scored = lm.sentence_log_probs([words])[0].word_log_probs[2]
        assert distribution[lm.vocabulary.index(word)] == pytest.approx(scored, rel=1e-12)
    assert lm.next_word_log_probs(["the", "big"]).tolist() == distribution.tolist()
    assert numpy.exp(lm.next_word_log_probs("")).sum() == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(InputError, match="history: unknown word 'zebra'"):
        lm.next_word_log_probs("the zebra")


def test_the_models_unk_and_num_oovs_are_used(models):
    lm = rwthlm_py.load(models / "u-i8-m8", backend="numpy", dtype="float64")
    assert lm.options.unk and lm.options.num_oovs == 4
    penalised = lm.next_word_log_probs("the")
    plain = rwthlm_py.load(models / "u-i8-m8", backend="numpy", dtype="float64", num_oovs=0).next_word_log_probs("the")
    unk = lm.vocabulary.index("<unk>")
    assert penalised[unk] == pytest.approx(plain[unk] - math.log(5), rel=1e-12)
    assert numpy.delete(penalised, unk).tolist() == numpy.delete(plain, unk).tolist()
    zebra, unknown = lm.sentence_log_probs(["the zebra", "the <unk>"])
    assert zebra.word_log_probs.tolist() == unknown.word_log_probs.tolist()
    [unpenalised] = rwthlm_py.load(models / "u-i8-m8", backend="numpy", dtype="float64",
                                   num_oovs=0).sentence_log_probs(["the zebra"])
    assert zebra.word_log_probs[1] == pytest.approx(unpenalised.word_log_probs[1] - math.log(5), rel=1e-12)
    assert zebra.word_log_probs[[0, 2]].tolist() == unpenalised.word_log_probs[[0, 2]].tolist()
    (models / "oov.txt").write_text("the zebra sees the cat\n")
    assert f"{lm.perplexity(['the zebra sees the cat']):.20f}" == last_value(
        call("ppl", "--ppl", "oov.txt", "--dtype", "float64", "u-i8-m8", cwd=models))
    with pytest.raises(InputError, match="unknown word 'zebra'"):
        rwthlm_py.load(models / "u-i8-m8", backend="numpy", unk=False).sentence_log_probs(["the zebra"])


def test_sample_draws_what_the_command_prints(models):
    lm = rwthlm_py.load(models / "t-i8-m8", backend="numpy")
    assert lm.sample(4, seed=3) == call("sample", "--num", 4, "--seed", 3, "t-i8-m8", cwd=models).splitlines()
    assert lm.sample(2, temperature=0.5, seed=3, max_length=3) == call(
        "sample", "--num", 2, "--temperature", 0.5, "--seed", 3, "--max-length", 3, "t-i8-m8", cwd=models).splitlines()


def test_bad_arguments_are_input_errors(models):
    with pytest.raises(InputError, match=r"^unknown option: batchsize \(did you mean batch_size\?\)$"):
        rwthlm_py.load(models / "t-i8-m8", batchsize=3)
    with pytest.raises(InputError, match=r"^unknown options: lr \(did you mean learning_rate\?\), zzz$"):
        rwthlm_py.load(models / "t-i8-m8", lr=0.1, zzz=1)
    with pytest.raises(InputError, match="--batch-size must be at least 1"):
        rwthlm_py.load(models / "t-i8-m8", batch_size=0)
    with pytest.raises(InputError, match="no such model file"):
        rwthlm_py.load(models / "absent")
    with pytest.raises(InputError, match="no words"):
        rwthlm_py.load(models / "t-i8-m8").perplexity([])


def test_importing_the_package_loads_no_numpy():
    """`import rwthlm_py` stays light: the API is imported on first use."""
    code = "import sys, rwthlm_py; assert 'numpy' not in sys.modules; rwthlm_py.load; assert 'numpy' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
