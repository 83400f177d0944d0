"""--encoding end to end: a corpus in Latin-1 trains, scores and writes its files in
Latin-1 (SRILM and rwthlm read bytes, so older corpora come in such encodings)."""

import subprocess

from conftest import RWTHLM, RWTHLM_PY, assert_one_line_error, toy_sentences



def run(command, *args, cwd):
    """(status, stdout bytes, stderr text): stdout is in the chosen encoding."""
    result = subprocess.run(command + [str(a) for a in args], cwd=cwd, capture_output=True, timeout=300)
    return result.returncode, result.stdout, result.stderr.decode()


def accented(sentences):
    """The toy sentences with some words spelled in Latin-1's letters."""
    return [sentence.replace("cat", "ca\u00f1a").replace("dog", "d\u00f6g") for sentence in sentences]


def test_a_latin1_corpus_trains_scores_and_writes_latin1(tmp_path):
    for name, count, seed in (("train", 300, 1), ("dev", 40, 2)):
        (tmp_path / f"{name}.txt").write_bytes(("\n".join(accented(toy_sentences(count, seed))) + "\n").encode("latin-1"))
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


def test_a_bad_encoding_is_one_line_before_any_work(tmp_path):
    (tmp_path / "t.txt").write_text("a b\n")
    assert_one_line_error(run(RWTHLM_PY, "train", "--train", "t.txt", "--dev", "t.txt", "--encoding", "utf-32",
                              "t-i4-m4", cwd=tmp_path), "rwthlm-py", "--encoding utf-32:", "ASCII")
    assert not (tmp_path / "t-i4-m4").exists()
