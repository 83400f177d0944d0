"""What `rwthlm-py`'s scoring commands take from the model file: the layout training used
(ppl) and how its texts were read (--unk, --map-unk, --num-oovs, --encoding); and SRILM's
OOVs for a model without the unknown word."""

import io
import json
import math
import zipfile

import numpy
import pytest
from conftest import RWTHLM, RWTHLM_PY, assert_one_line_error
from conftest import run_cli as call


def last_value(out):
    return out.strip().splitlines()[-1]


def test_ppl_prints_the_development_perplexity_training_printed_last(toy):
    """The layout of training (rwthlm-py train's batch 20 and stream wrapping, sequences of 8
    so that the development text spans batches whose state stream carries) is recorded in
    the model, and rwthlm-py ppl scores with it: the very figure training printed."""
    status, out, err = call(RWTHLM_PY, "train", "--train", "train.txt", "--dev", "dev.txt", "--learning-rate", 0.05,
                            "--sequence-length", 8, "--max-epoch", 2, "t-i8-m8", cwd=toy)
    assert status == 0, err
    printed = [line.split("=")[1].split(",")[0].strip() for line in out.splitlines()
               if line.startswith("development perplexity = ")]
    assert len(printed) == 2
    figure = min(printed, key=float)  # the model file holds the best epoch (here epoch 2 is rolled back)
    assert f"Best development perplexity after 2 epochs: {figure}" in call(
        RWTHLM_PY, "ppl", "--ppl", "dev.txt", "t-i8-m8", cwd=toy)[1]
    status, out, err = call(RWTHLM_PY, "ppl", "--ppl", "dev.txt", "t-i8-m8", cwd=toy)
    assert status == 0, err
    assert f"{float(last_value(out)):.15f}" == figure
    assert ("scoring layout: batch size 20 (the model's), sequence length 8 (the model's), word wrapping "
            "stream (the model's)") in err

    status, out, err = call(RWTHLM_PY, "ppl", "--ppl", "dev.txt", "--batch-size", 1, "t-i8-m8", cwd=toy)
    assert status == 0, err
    assert "batch size 1 (given), sequence length 8 (the model's)" in err
    assert f"{float(last_value(out)):.15f}" != figure
    _, rwthlm_out, rwthlm_err = call(RWTHLM, "--ppl", "dev.txt", "t-i8-m8", cwd=toy)  # rwthlm's own defaults
    _, defaults_out, _ = call(RWTHLM_PY, "ppl", "--ppl", "dev.txt", "--batch-size", 1, "--sequence-length", 100,
                              "--word-wrapping", "fixed", "t-i8-m8", cwd=toy)
    assert last_value(rwthlm_out) == last_value(defaults_out) and "scoring layout" not in rwthlm_err


@pytest.fixture
def unk_model(toy):
    """A model trained with --unk --num-oovs 4 on a text that has <unk> for its rare words."""
    text = (toy / "train.txt").read_text().replace(" dog ", " <unk> ")
    (toy / "train-unk.txt").write_text(text)
    status, _, err = call(RWTHLM_PY, "train", "--train", "train-unk.txt", "--dev", "dev.txt", "--unk",
                          "--num-oovs", 4, "--learning-rate", 0.05, "--max-epoch", 1, "u-i8-m8", cwd=toy)
    assert status == 0, err
    (toy / "oov.txt").write_text("the zebra sees the cat\n")
    (toy / "u.nbest").write_text("-10 -5 5 the zebra sees the cat\n")
    return toy


def test_unk_given_at_training_is_used_by_the_scoring_commands(unk_model):
    toy = unk_model
    status, out, err = call(RWTHLM_PY, "ppl", "--ppl", "oov.txt", "u-i8-m8", cwd=toy)
    assert status == 0, err
    assert "1 words not in the vocabulary were scored as <unk>" in out and "0 OOVs" in out
    _, given, _ = call(RWTHLM_PY, "ppl", "--ppl", "oov.txt", "--unk", "--num-oovs", 4, "u-i8-m8", cwd=toy)
    _, other_penalty, _ = call(RWTHLM_PY, "ppl", "--ppl", "oov.txt", "--num-oovs", 0, "u-i8-m8", cwd=toy)
    assert last_value(given) == last_value(out) != last_value(other_penalty)

    lm_scores, summaries = {}, {}
    for name, extra in (("model's", []), ("none", ["--num-oovs", 0])):
        status, out, summaries[name] = call(RWTHLM_PY, "nbest", "--nbest", "u.nbest", "--dtype", "float64", *extra,
                                            "--out", name, "u-i8-m8", cwd=toy)
        assert status == 0, summaries[name]
        lm_scores[name] = float((toy / name / "u.nbest").read_text().split()[1])
    assert "1 words not in the network's vocabulary were scored as <unk> (p divided by 5)" in summaries["model's"]
    assert lm_scores["model's"] == pytest.approx(lm_scores["none"] - math.log10(5), abs=1e-6)  # 7 digits written

    (toy / "zebra.lat").write_text("N=4 L=3\nI=0 t=0.00\nI=1 t=0.10\nI=2 t=0.20\nI=3 t=0.30\n"
                                   "J=0 S=0 E=1 W=the a=-1 l=-1\nJ=1 S=1 E=2 W=zebra a=-1 l=-1\n"
                                   "J=2 S=2 E=3 W=<sb> a=0 l=-1\n")
    link_lm = {}
    for name, extra in (("model's", []), ("none", ["--num-oovs", 0])):
        status, out, err = call(RWTHLM_PY, "lattice", "--lambda", 1, "--pruning-threshold", 0, "--dtype", "float64",
                                *extra, "--out", f"lat-{name}", "zebra.lat", "u-i8-m8", cwd=toy)
        assert status == 0, err
        link_lm[name] = float(next(line for line in out.splitlines() if "\tW=zebra\tJ=1" in line).split("l=")[1])
    assert link_lm["model's"] == pytest.approx(link_lm["none"] - math.log(5), rel=1e-5)  # printed with %g


def test_training_a_model_further_reads_its_texts_as_its_training_did(unk_model):
    """The second run gives no --unk; its dev text holds a word outside the vocabulary."""
    toy = unk_model
    (toy / "dev-oov.txt").write_text((toy / "dev.txt").read_text() + "the zebra sees the cat\n")
    status, out, err = call(RWTHLM_PY, "train", "--train", "train-unk.txt", "--dev", "dev-oov.txt",
                            "--max-epoch", 2, "u-i8-m8", cwd=toy)
    assert status == 0, err
    assert "epoch 2 took" in out
    status, _, err = call(RWTHLM, "--train", "train-unk.txt", "--dev", "dev-oov.txt", "--max-epoch", 3,
                          "u-i8-m8", cwd=toy)  # rwthlm needs --unk given
    assert status == 1 and "unknown word 'zebra'" in err


def test_no_unk_undoes_the_models_unk(unk_model):
    toy = unk_model
    status, out, err = call(RWTHLM_PY, "ppl", "--ppl", "oov.txt", "--no-unk", "u-i8-m8", cwd=toy)
    assert status == 0, err
    assert "file oov.txt: 1 sentences, 5 words, 1 OOVs" in out
    assert_one_line_error(call(RWTHLM_PY, "nbest", "--nbest", "u.nbest", "--no-unk", "u-i8-m8", cwd=toy),
                          "rwthlm-py", "unknown word 'zebra'")
    assert_one_line_error(call(RWTHLM_PY, "ppl", "--ppl", "oov.txt", "--unk", "--no-unk", "u-i8-m8", cwd=toy),
                          "rwthlm-py", "--unk and --no-unk contradict each other")


@pytest.fixture
def plain_model(toy):
    status, _, err = call(RWTHLM_PY, "train", "--train", "train.txt", "--dev", "dev.txt", "--learning-rate", 0.05,
                          "--max-epoch", 1, "t-i8-m8", cwd=toy)
    assert status == 0, err
    return toy


def test_oovs_of_a_model_without_unk_are_left_out_as_srilm_does(plain_model):
    toy = plain_model
    (toy / "oov.txt").write_text("the zebra sees the cat\nthe cat sees the dog\n")
    (toy / "without.txt").write_text("the sees the cat\nthe cat sees the dog\n")
    status, out, err = call(RWTHLM_PY, "ppl", "--ppl", "oov.txt", "--verbose", "t-i8-m8", cwd=toy)
    assert status == 0, err
    assert "file oov.txt: 2 sentences, 10 words, 1 OOVs" in out
    _, without, _ = call(RWTHLM_PY, "ppl", "--ppl", "without.txt", "--verbose", "t-i8-m8", cwd=toy)
    assert last_value(out) == last_value(without)  # as if the line did not hold the word
    assert "file without.txt: 2 sentences, 9 words, 0 OOVs" in without
    words = [line.split()[1] for line in out.splitlines() if line.startswith("\tp( ")]
    assert words[:4] == ["the", "zebra", "sees", "the"]
    assert "\tp( zebra | ... ) \t = [OOV] 0 [ -inf ]" in out.splitlines()
    # the summary's ppl counts the words less the OOVs, and the sentence ends
    summary = next(line for line in out.splitlines() if line.startswith("0 zeroprobs"))
    logprob = float(summary.split("logprob= ")[1].split()[0])
    assert float(summary.split("ppl= ")[1].split()[0]) == pytest.approx(10 ** (-logprob / 11), rel=1e-5)
    assert_one_line_error(call(RWTHLM, "--ppl", "oov.txt", "t-i8-m8", cwd=toy), "rwthlm", "oov.txt:1:",
                          "unknown word 'zebra'")


def test_a_recorded_option_of_the_wrong_type_is_a_corrupt_model(plain_model):
    toy = plain_model
    with zipfile.ZipFile(toy / "t-i8-m8") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    meta = json.loads(numpy.load(io.BytesIO(members["meta.npy"])).tobytes())
    meta["options"]["batch_size"] = "twenty"
    buffer = io.BytesIO()
    numpy.save(buffer, numpy.frombuffer(json.dumps(meta).encode(), dtype=numpy.uint8))
    members["meta.npy"] = buffer.getvalue()
    with zipfile.ZipFile(toy / "bad-i8-m8", "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    assert_one_line_error(call(RWTHLM_PY, "ppl", "--ppl", "dev.txt", "bad-i8-m8", cwd=toy), "rwthlm-py",
                          "bad-i8-m8:", "corrupt model file (its recorded option --batch-size is 'twenty')")
