"""--encoding end to end: a corpus in Latin-1 trains, scores and writes its files in
Latin-1 (SRILM and rwthlm read bytes, so older corpora come in such encodings)."""

from conftest import HAND_LATTICE, RWTHLM, RWTHLM_PY, assert_one_line_error, run_cli, toy_sentences


def run(command, *args, cwd):
    """(status, stdout bytes, stderr text): stdout is in the chosen encoding."""
    status, out, err = run_cli(command, *args, cwd=cwd, text=False)
    return status, out, err.decode()


def accented(sentences):
    """The toy sentences with some words spelled in Latin-1's letters."""
    return [sentence.replace("cat", "ca\u00f1a").replace("dog", "d\u00f6g") for sentence in sentences]


def test_a_latin1_corpus_trains_scores_and_writes_latin1(tmp_path):
    for name, count, seed in (("train", 300, 1), ("dev", 40, 2)):
        text = "\n".join(accented(toy_sentences(count, seed))) + "\n"
        (tmp_path / f"{name}.txt").write_bytes(text.encode("latin-1"))
    assert "ca\u00f1a" in (tmp_path / "train.txt").read_bytes().decode("latin-1")

    result = run(RWTHLM_PY, "train", "--train", "train.txt", "--dev", "dev.txt", "--encoding", "latin-1",
                 "--vocab", "vocab", "--remap", "remapped", "--learning-rate", 0.05, "--max-epoch", 1, "t-i4-m4",
                 cwd=tmp_path)
    assert result[0] == 0, result[2]
    for name in ("vocab", "remapped"):
        words = [line.split("\t")[0] for line in (tmp_path / name).read_bytes().decode("latin-1").splitlines()]
        assert "ca\u00f1a" in words and "d\u00f6g" in words  # UTF-8 bytes would read as "ca\u00c3\u00b1a"

    status, out, err = run(RWTHLM_PY, "ppl", "--ppl", "dev.txt", "--verbose", "t-i4-m4", cwd=tmp_path)
    assert status == 0, err  # the encoding training read its texts in is recorded in the model
    assert "\tp( ca\u00f1a | ... )".encode("latin-1") in out  # the verbose lines in the text's encoding

    assert_one_line_error(run(RWTHLM, "--ppl", "dev.txt", "t-i4-m4", cwd=tmp_path), "rwthlm", "dev.txt:",
                          "not UTF-8 text", "--encoding")
    status, out, err = run(RWTHLM, "--ppl", "dev.txt", "--encoding", "iso-8859-1", "t-i4-m4", cwd=tmp_path)
    assert status == 0, err

    status, _, err = run(RWTHLM_PY, "vocab", "--train", "train.txt", "--encoding", "latin-1", "--out", "vocab2",
                         cwd=tmp_path)
    assert status == 0, err
    assert "d\u00f6g\t".encode("latin-1") in (tmp_path / "vocab2").read_bytes()


def test_references_noise_words_and_lattices_are_read_in_the_encoding(tmp_path):
    """An n-best list with Latin-1 noise words and references, and a Latin-1 lattice: read
    as UTF-8 each would be refused, so each is read in the --encoding."""
    for name, count, seed in (("train", 300, 1), ("dev", 40, 2)):
        text = "\n".join(accented(toy_sentences(count, seed))) + "\n"
        (tmp_path / f"{name}.txt").write_bytes(text.encode("latin-1"))
    result = run(RWTHLM_PY, "train", "--train", "train.txt", "--dev", "dev.txt", "--encoding", "latin-1",
                 "--learning-rate", 0.05, "--max-epoch", 1, "t-i4-m4", cwd=tmp_path)
    assert result[0] == 0, result[2]
    (tmp_path / "u.nbest").write_bytes("-10 -5 3 the [ri\u00f1a] ca\u00f1a sees\n-10 -9 3 the d\u00f6g sees\n"
                                       .encode("latin-1"))
    (tmp_path / "noise").write_bytes("[ri\u00f1a]\n".encode("latin-1"))
    (tmp_path / "refs").write_bytes("u the ca\u00f1a sees\n".encode("latin-1"))
    status, out, err = run(RWTHLM_PY, "nbest", "--nbest", "u.nbest", "--noise-vocab", "noise", "--refs", "refs",
                           "t-i4-m4", cwd=tmp_path)
    assert status == 0, err
    assert out == "u the [ri\u00f1a] ca\u00f1a sees\n".encode("latin-1")  # the encoding the model recorded
    assert "original 1-best:  WER 0.00% [ 0 / 3," in err  # the noise word is no error
    lattice = HAND_LATTICE.replace("W=cat", "W=ca\u00f1a").replace("W=dog", "W=d\u00f6g").replace("</s>", "<sb>")
    (tmp_path / "x.lat").write_bytes(lattice.encode("latin-1"))
    status, out, err = run(RWTHLM_PY, "lattice", "--lambda", 1, "--pruning-threshold", 0, "--output", "ctm",
                           "x.lat", "t-i4-m4", cwd=tmp_path)
    assert status == 0, err
    words = [line.split()[4] for line in (tmp_path / "x.lat.ctm").read_bytes().decode("latin-1").splitlines()]
    assert words[0] == "the" and words[1] in ("ca\u00f1a", "d\u00f6g")


def test_a_bad_encoding_is_one_line_before_any_work(tmp_path):
    (tmp_path / "t.txt").write_text("a b\n")
    assert_one_line_error(run(RWTHLM_PY, "train", "--train", "t.txt", "--dev", "t.txt", "--encoding", "utf-32",
                              "t-i4-m4", cwd=tmp_path), "rwthlm-py", "--encoding utf-32:", "ASCII")
    assert not (tmp_path / "t-i4-m4").exists()
