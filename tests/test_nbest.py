"""N-best lists: the formats read and written (golden files), score combination and
ranking, and one clear line for every kind of bad list."""

import gzip
import math
import pathlib
import shutil
import subprocess
import sys

import pytest
from conftest import assert_one_line_error, run_cli

from rwthlm_py.errors import InputError
from rwthlm_py.log_probs import interpolate_linear
from rwthlm_py.rescoring import nbest as formats
from rwthlm_py.rescoring.scores import combine_lm, ranking, total_score

DATA = pathlib.Path(__file__).parent / "data"
GOLDEN = pathlib.Path(__file__).parent / "golden" / "nbest"
RWTHLM_PY = [sys.executable, "-m", "rwthlm_py"]
ARPA_ONLY = ["--arpa", DATA / "toy.arpa", "--lambda", 0]


def nbest_command(*args, cwd):
    return run_cli(RWTHLM_PY, "nbest", *args, cwd=cwd)


def assert_input_error(result, *fragments):
    assert result[0] == 1, result[2]
    assert_one_line_error(result, "rwthlm-py", *fragments)


def assert_same_files(written, golden):
    names = sorted(path.name for path in golden.iterdir() if path.name != "stdout.txt")
    assert sorted(path.name for path in written.iterdir()) == names
    for name in names:
        assert (written / name).read_text() == (golden / name).read_text(), name


# -- golden files ----------------------------------------------------------------------------

def test_srilm_formats_written_back_in_their_own_format(tmp_path):
    """Plain, NBestList1.0 and NBestList2.0 lists rescored with the toy ARPA model alone:
    utt1's first line is -120.5 + new LM -2.85 (p(the|<s>) -0.1, cat -0.3, sees = <unk>
    after a back-off -1.3, the -0.5, dog -0.4, </s> -0.25)."""
    status, out, err = nbest_command("--nbest", DATA / "nbest", *ARPA_ONLY, "--lm-weight", 2,
                                     "--word-penalty", -0.5, "--refs", DATA / "refs", "--noise-vocab",
                                     DATA / "noise", "--out", tmp_path / "out", cwd=tmp_path)
    assert status == 0, err
    assert_same_files(tmp_path / "out", GOLDEN / "srilm")
    assert out == (GOLDEN / "srilm" / "stdout.txt").read_text()
    assert "-120.5 -2.85 5 the cat sees the dog" in (tmp_path / "out" / "utt1.nbest").read_text()


def test_kaldi_text_and_costs_written_back(tmp_path):
    status, out, err = nbest_command("--kaldi", DATA / "kaldi" / "text", DATA / "kaldi" / "ac_cost",
                                     DATA / "kaldi" / "lm_cost", *ARPA_ONLY, "--nn-weight", 0.5,
                                     "--refs", DATA / "refs", "--noise-vocab", DATA / "noise",
                                     "--out", tmp_path / "out", cwd=tmp_path)
    assert status == 0, err
    assert_same_files(tmp_path / "out", GOLDEN / "kaldi")
    assert out == (GOLDEN / "kaldi" / "stdout.txt").read_text()
    # `the dog`: ARPA log10 -0.75, list cost 8.25: (0.75 ln 10 + 8.25) / 2
    costs = dict(line.split() for line in (tmp_path / "out" / "lm_cost").read_text().splitlines())
    assert float(costs["spk-1-3"]) == pytest.approx((0.75 * math.log(10) + 8.25) / 2, rel=1e-6)


def test_one_best_on_stdout_without_out(tmp_path):
    status, out, _ = nbest_command("--nbest", DATA / "nbest", *ARPA_ONLY, cwd=tmp_path)
    assert status == 0
    assert out == (GOLDEN / "srilm" / "1best.txt").read_text()


def test_without_out_the_word_error_rates_go_to_stderr(tmp_path):
    """stdout holds only the 1-best lines, as SRILM's and Kaldi's tools write them, so that
    it can be redirected to a file; the error rates (stdout with --out) are on stderr."""
    status, out, err = nbest_command("--nbest", DATA / "nbest", *ARPA_ONLY, "--lm-weight", 2, "--word-penalty", -0.5,
                                     "--refs", DATA / "refs", "--noise-vocab", DATA / "noise", cwd=tmp_path)
    assert status == 0, err
    assert out == (GOLDEN / "srilm" / "1best.txt").read_text()
    wer_lines = (GOLDEN / "srilm" / "stdout.txt").read_text().splitlines()
    assert err.splitlines()[-len(wer_lines):] == wer_lines


def test_written_lists_read_back_with_the_new_scores(tmp_path):
    nbest_command("--nbest", DATA / "nbest", *ARPA_ONLY, "--out", tmp_path / "out", cwd=tmp_path)
    plain = formats.read_srilm_list(tmp_path / "out" / "utt1.nbest")
    # totals -123.35, -123.95 (twice), -125.15
    assert [h.lm for h in plain.hypotheses] == pytest.approx([-2.85, -4.95, -4.95, -4.15])
    decipher2 = formats.read_srilm_list(tmp_path / "out" / "utt3.score.nbest")
    assert decipher2.format == "nbest2"
    assert [h.words for h in decipher2.hypotheses] == [["the", "cat"], ["the", "dog"]]
    # bytelog rounding: -0.5 log10 (p(cat|the) p(</s>|cat)) is -11 bytelog
    assert [t.lm for t in decipher2.hypotheses[0].tokens] == ["-2", "-11"]


# -- reading -----------------------------------------------------------------------------------

def test_bytelog_conversion_is_srilms():
    assert formats.bytelog_to_log10(-10000) == pytest.approx(-10000 * 1024 / 10000.5 / math.log(10))
    for log10p in (-0.1, -3.25, -548.98):
        assert abs(formats.bytelog_to_log10(formats.log10_to_bytelog(log10p)) - log10p) <= 0.5 / 22.48
    assert formats.log10_to_bytelog(-0.1) == round(-0.1 * math.log(10) * 10000.5 / 1024)


def test_nbest2_skips_phone_tokens_and_sums_word_scores():
    nbest = formats.read_srilm_list(DATA / "nbest" / "utt3.score.nbest")
    first = nbest.hypotheses[0]
    assert nbest.utterance == "utt3"
    assert first.words == ["the", "dog"] and first.num_words == 2
    assert [t.is_word for t in first.tokens] == [True, True, False]
    assert first.acoustic == pytest.approx(formats.bytelog_to_log10(-2000))
    assert first.lm == pytest.approx(formats.bytelog_to_log10(-300))


def test_nbest2_token_within_the_previous_word_is_no_word(tmp_path):
    (tmp_path / "u.nbest").write_text(
        "NBestList2.0\n(-30) a ( st: 0.00 et: 0.50 g: -10 a: -10 ) ph ( st: 0.20 et: 0.30 g: -5 a: -5 ) "
        "b ( st: 0.51 et: 0.90 g: -10 a: 0 )\n")
    hypothesis = formats.read_srilm_list(tmp_path / "u.nbest").hypotheses[0]
    assert hypothesis.words == ["a", "b"]
    assert hypothesis.lm == pytest.approx(formats.bytelog_to_log10(-20))


def test_nbest1_score_is_the_acoustic_score_and_lm_zero():
    nbest = formats.read_srilm_list(DATA / "nbest" / "utt2.nbest")
    assert nbest.format == "nbest1"
    assert nbest.hypotheses[0].acoustic == pytest.approx(formats.bytelog_to_log10(-12345))
    assert nbest.hypotheses[0].lm == 0.0 and nbest.hypotheses[0].num_words == 5


def test_gzip_lists_and_utterance_ids(tmp_path):
    with gzip.open(tmp_path / "sw_4390-A.0.nbest.gz", "wt") as out:
        out.write("-1 -2 1 hello\n")
    nbest = formats.read_srilm_list(tmp_path / "sw_4390-A.0.nbest.gz")
    assert nbest.utterance == "sw_4390-A" and nbest.hypotheses[0].words == ["hello"]


def test_each_format_names_its_utterance_by_its_own_rule():
    from rwthlm_py.rescoring.utterances import ctm_name, kaldi_utterance, slf_utterance, utterance_id

    assert utterance_id("dir.d/sw_4390-A.0.lat.gz") == utterance_id(pathlib.Path("sw_4390-A.nbest")) == "sw_4390-A"
    assert kaldi_utterance("spk-1-3") == "spk-1" and kaldi_utterance("spk-x") is None
    assert kaldi_utterance("-3") is None
    assert slf_utterance("dir.d/x.y.lat.gz") == "dir.d/x.y" and slf_utterance("dir.d/x") == "dir.d/x"
    assert ctm_name("dir/x.lat.gz") == "dir/x.lat" and ctm_name("dir/x.lat") == "dir/x.lat"


def test_directory_and_listing_file(tmp_path):
    (tmp_path / "lists").mkdir()
    for name in ("b.nbest", "a.nbest"):
        shutil.copy(DATA / "nbest" / "utt1.nbest", tmp_path / "lists" / name)
    (tmp_path / "listing").write_text(f"{DATA / 'nbest' / 'utt2.nbest'}\n\n")
    files = formats.list_files([tmp_path / "lists"], tmp_path / "listing")
    assert [pathlib.Path(f).name for f in files] == ["a.nbest", "b.nbest", "utt2.nbest"]


def test_kaldi_utterance_is_the_key_cut_at_the_last_dash():
    lists = formats.read_kaldi_lists(DATA / "kaldi" / "text", DATA / "kaldi" / "ac_cost", DATA / "kaldi" / "lm_cost")
    assert [(n.utterance, len(n.hypotheses)) for n in lists] == [("spk-1", 3), ("u2", 2)]
    first = lists[0].hypotheses[0]
    assert first.acoustic == pytest.approx(-250.5 / math.log(10))
    assert first.lm == pytest.approx(-20.5 / math.log(10))


# -- the formulas --------------------------------------------------------------------------------

def test_score_formulas():
    assert total_score(-100.0, -10.0, 5, 8.0, -0.5) == -100.0 - 80.0 - 2.5
    assert total_score(-100.0, -math.inf, 5, 0.0, -0.5) == -102.5  # an unused LM score of probability 0
    assert combine_lm(-4.0, -8.0, 0.25) == pytest.approx(-7.0)
    assert combine_lm(None, -8.0, 0.0) == -8.0 and combine_lm(-4.0, None, 1.0) == -4.0
    mixed = interpolate_linear([math.log(0.2)], [math.log(0.6)], 0.25)
    assert mixed[0] == pytest.approx(math.log(0.25 * 0.2 + 0.75 * 0.6))
    assert interpolate_linear([math.log(0.2)], [-math.inf], 0.5)[0] == pytest.approx(math.log(0.1))
    assert ranking([-3.0, -1.0, -3.0, -2.0]) == [1, 3, 0, 2]


def test_nn_weight_zero_reproduces_the_lists_ranking(tmp_path):
    """Lists sorted by their own scores come back in the same order, with the same scores."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "u1.nbest").write_text("-10 -5 2 a b\n-11 -4.5 2 a c\n-9 -7 1 d\n-12 -9 3 e f g\n")
    (tmp_path / "in" / "u2.nbest").write_text("NBestList1.0\n(-100) x\n(-120) y\n(-120) z\n(-300) w\n")
    status, _, err = nbest_command("--nbest", tmp_path / "in", "--nn-weight", 0, "--out", tmp_path / "out",
                                   cwd=tmp_path)
    assert status == 0, err
    for name in ("u1.nbest", "u2.nbest"):
        assert (tmp_path / "out" / name).read_text() == (tmp_path / "in" / name).read_text()


# -- bad input -------------------------------------------------------------------------------------

BAD_LISTS = [
    ("-1 -2 x a b\n", "u.nbest:1:", "word count 'x' is not a whole number >= 0"),
    ("-1 -2 -3 a b\n", "u.nbest:1:", "word count '-3' is not a whole number >= 0"),
    ("-1 -2 1.5 a b\n", "u.nbest:1:", "word count '1.5' is not a whole number >= 0"),
    ("-1 -2\n", "u.nbest:1:", "expected `ascore lscore nwords word...`"),
    ("-1 nan 1 a\n", "u.nbest:1:", "LM score 'nan' is not a number"),
    ("-1 inf 1 a\n", "u.nbest:1:", "LM score 'inf' is an infinite log probability"),
    ("1e400 -2 1 a\n", "u.nbest:1:", "acoustic score '1e400' is an infinite log probability"),
    ("-1 -2 1 a\n-1 minus 1 a\n", "u.nbest:2:", "LM score 'minus' is not a number"),
    ("NBestList1.0\n-100 a b\n", "u.nbest:2:", "score in parentheses"),
    ("NBestList1.0\n(abc) a b\n", "u.nbest:2:", "bytelog score 'abc' is not a number"),
    ("NBestList2.0\n(-1) a ( st: 0 et: 1 g: -1 a: 0 )  b\n", "u.nbest:2:", "11 fields per token"),
    ("NBestList2.0\n(-1) a [ st: 0 et: 1 g: -1 a: 0 ]\n", "u.nbest:2:", "is not followed by"),
    ("NBestList2.0\n(-1) a ( st: 0 et: 1 g: x a: 0 )\n", "u.nbest:2:", "g: 'x' is not a number"),
    ("NBestList3.0\n(-1) a\n", "u.nbest:1:", "unknown n-best format 'NBestList3.0'"),
]


@pytest.mark.parametrize("text, where, message", BAD_LISTS)
def test_malformed_lists_name_file_and_line(tmp_path, text, where, message):
    (tmp_path / "u.nbest").write_text(text)
    assert_input_error(nbest_command("--nbest", "u.nbest", "--nn-weight", 0, cwd=tmp_path), where, message)


def rescore_kaldi_files(tmp_path, text, ac, lm):
    for name, content in (("text", text), ("ac", ac), ("lm", lm)):
        (tmp_path / name).write_text(content)
    return nbest_command("--kaldi", "text", "ac", "lm", "--nn-weight", 0, cwd=tmp_path)


# -- what real recognizers and SRILM write ---------------------------------------------------------

SWITCHBOARD_LIKE = (
    # nwords 11 leaves the pauses and the noise out; the word penalty uses it as given
    "-1792.12 -16.0727 11 -pau- [laugh] yeah that would be that would be nice too -pau- [laugh] -pau-\n"
    # the same scores and 12 words: with the token counts (14 against 12) this one would win
    "-1792.12 -16.0727 12 yeah that would be that would be nice too and yeah right\n"
)


def test_the_word_penalty_uses_the_lists_word_count(tmp_path):
    (tmp_path / "sw_1.nbest").write_text(SWITCHBOARD_LIKE)
    status, out, err = nbest_command("--nbest", "sw_1.nbest", "--nn-weight", 0, "--lm-weight", 10,
                                     "--word-penalty", -1, "--out", "out", cwd=tmp_path)
    assert status == 0, err
    assert (tmp_path / "out" / "sw_1.nbest").read_text() == SWITCHBOARD_LIKE  # nwords 11 beats 12
    assert (tmp_path / "out" / "1best.txt").read_text().startswith("sw_1 -pau- [laugh] yeah")
    status, out, err = nbest_command("--nbest", "sw_1.nbest", "--nn-weight", 0, "--word-penalty", 1,
                                     "--out", "out2", cwd=tmp_path)
    assert (tmp_path / "out2" / "1best.txt").read_text() == "sw_1 " + SWITCHBOARD_LIKE.splitlines()[1].split(
        maxsplit=3)[3] + "\n"  # a bonus per word: 12 beats 11


def test_the_totals_use_the_lists_word_count(tmp_path):
    from rwthlm_py.rescoring.nbest_command import Counts, Settings, rescore_group

    (tmp_path / "sw_1.nbest").write_text(SWITCHBOARD_LIKE)
    nbest = formats.read_srilm_list(tmp_path / "sw_1.nbest")
    assert [h.num_words for h in nbest.hypotheses] == [11, 12]
    assert [len(h.words) for h in nbest.hypotheses] == [14, 12]
    [result] = rescore_group([nbest], None, None, Settings(lm_weight=10, word_penalty=-0.5, nn_weight=0), Counts())
    assert result.totals == [-1792.12 - 160.727 - 5.5, -1792.12 - 160.727 - 6.0]


def test_pauses_and_noise_words_are_not_scored_by_the_lm(tmp_path):
    """As SRILM's `ngram -nbest` with -noise-vocab: `-pau-` and the noise words are neither
    predicted nor a context, so the line scores as the line without them."""
    (tmp_path / "noise").write_text("[laugh]\n[noise]\n")
    (tmp_path / "u.nbest").write_text("-100 -9 3 -pau- [laugh] the cat -pau- sees [noise]\n-100 -9 3 the cat sees\n")
    status, _, err = nbest_command("--nbest", "u.nbest", *ARPA_ONLY, "--noise-vocab", "noise", "--out", "out",
                                   cwd=tmp_path)
    assert status == 0, err
    lines = (tmp_path / "out" / "u.nbest").read_text().splitlines()
    # p(the | <s>) -0.1, p(cat | the) -0.3, p(<unk> | cat) -0.1 - 1.2, p(</s> | <unk>) -0.69897, both
    assert [line.split()[1] for line in lines] == ["-2.39897", "-2.39897"]
    noisy = formats.read_srilm_list(tmp_path / "out" / "u.nbest").hypotheses[0]
    assert noisy.words[:2] == ["-pau-", "[laugh]"] and noisy.num_words == 3


def test_noise_words_without_noise_vocab_are_words(tmp_path, toy_network):
    (tmp_path / "u.nbest").write_text("-100 -9 2 -pau- the [laugh] cat\n")
    assert_input_error(nbest_command("--nbest", "u.nbest", toy_network, cwd=tmp_path),
                       "u.nbest:1:", "unknown word '[laugh]'")
    (tmp_path / "noise").write_text("[laugh]\n")
    status, out, err = nbest_command("--nbest", "u.nbest", "--noise-vocab", "noise", "--out", "out", toy_network,
                                     cwd=tmp_path)
    assert status == 0, err
    (tmp_path / "clean.nbest").write_text("-100 -9 2 the cat\n")
    nbest_command("--nbest", "clean.nbest", "--out", "out", toy_network, cwd=tmp_path)
    assert (tmp_path / "out" / "u.nbest").read_text().split()[1] == \
        (tmp_path / "out" / "clean.nbest").read_text().split()[1]


def test_what_srilm_writes_is_read(tmp_path):
    """SRILM writes bytelog scores with decimals where they are not whole, `-inf` for a
    hypothesis of probability 0, and a recognizer may leave a list empty."""
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "a.nbest").write_text("NBestList1.0\n(-1234.500000) the cat\n(-1300) the dog\n")
    (tmp_path / "lists" / "b.nbest").write_text(
        "NBestList2.0\n(-2300.5) the ( st: 0.00 et: 0.10 g: -100.5 a: -1000 ) cat ( st: 0.11 et: 0.30 g: -200 "
        "a: -1000 )\n")
    (tmp_path / "lists" / "c.nbest").write_text("-100 -inf 2 the zebra\n-110 -5 2 the dog\n")
    (tmp_path / "lists" / "d.nbest").write_text("")
    (tmp_path / "refs").write_text("a the cat\nb the cat\nc the dog\nd the cat sat\n")
    status, out, err = nbest_command("--nbest", "lists", "--nn-weight", 0, "--lm-weight", 10, "--refs", "refs",
                                     "--out", "out", cwd=tmp_path)
    assert status == 0, err
    assert (tmp_path / "out" / "a.nbest").read_text() == "NBestList1.0\n(-1234) the cat\n(-1300) the dog\n"
    assert (tmp_path / "out" / "1best.txt").read_text() == "a the cat\nb the cat\nc the dog\nd\n"
    assert (tmp_path / "out" / "c.nbest").read_text() == "-110 -5 2 the dog\n-100 -inf 2 the zebra\n"
    assert (tmp_path / "out" / "d.nbest").read_text() == ""
    decipher2 = formats.read_srilm_list(tmp_path / "lists" / "b.nbest").hypotheses[0]
    assert decipher2.acoustic == pytest.approx(formats.bytelog_to_log10(-2000))
    assert decipher2.lm == pytest.approx(formats.bytelog_to_log10(-300.5))
    # d's empty list is an empty 1-best (3 deletions); c's zero-probability first hypothesis ranks last
    assert "original 1-best:  WER 44.44% [ 4 / 9, 0 ins, 3 del, 1 sub ]" in out + err
    assert "rescored 1-best:  WER 33.33% [ 3 / 9, 0 ins, 3 del, 0 sub ]" in out + err


def test_an_infinite_kaldi_cost_is_probability_zero(tmp_path):
    status, out, err = rescore_kaldi_files(tmp_path, "u-1 a\nu-2 b\n", "u-1 1\nu-2 1\n", "u-1 inf\nu-2 7\n")
    assert status == 0, err
    assert out == "u b\n"
    assert_input_error(rescore_kaldi_files(tmp_path, "u-1 a\n", "u-1 1\n", "u-1 -inf\n"), "lm:1:",
                       "cost '-inf' is a negative infinite cost")


def test_lists_in_latin1_are_read_and_written_in_latin1(tmp_path):
    line = "-10 -5 2 a\u00f1o espa\u00f1ol\n"
    (tmp_path / "u.nbest").write_bytes(line.encode("latin-1"))
    assert_input_error(nbest_command("--nbest", "u.nbest", "--nn-weight", 0, cwd=tmp_path),
                       "u.nbest:1:", "not UTF-8 text (byte 0xf1 at column 11)", "--encoding")
    status, out, err = nbest_command("--nbest", "u.nbest", "--nn-weight", 0, "--encoding", "latin-1",
                                     "--out", "out", cwd=tmp_path)
    assert status == 0, err
    assert (tmp_path / "out" / "u.nbest").read_bytes() == line.encode("latin-1")
    assert (tmp_path / "out" / "1best.txt").read_bytes() == "u a\u00f1o espa\u00f1ol\n".encode("latin-1")
    assert_input_error(nbest_command("--nbest", "u.nbest", "--nn-weight", 0, "--encoding", "klingon",
                                     cwd=tmp_path), "--encoding klingon: no such encoding")
    assert_input_error(nbest_command("--nbest", "u.nbest", "--nn-weight", 0, "--encoding", "utf-16",
                                     cwd=tmp_path), "--encoding utf-16:", "ASCII")


def test_kaldi_cost_files_that_do_not_line_up(tmp_path):
    assert_input_error(rescore_kaldi_files(tmp_path, "u-1 a\nu-2 b\n", "u-1 1\n", "u-1 1\nu-2 2\n"),
                          "text:2:", "key 'u-2' has no cost in 'ac'")
    assert_input_error(rescore_kaldi_files(tmp_path, "u-1 a\n", "u-1 1\nu-9 1\n", "u-1 1\n"),
                          "ac:2:", "key 'u-9' is not in the n-best text")
    assert_input_error(rescore_kaldi_files(tmp_path, "u-1 a\n", "u-1 1\n", "u-1 1 2\n"), "lm:1:", "expected `key cost`")
    assert_input_error(rescore_kaldi_files(tmp_path, "u1 a\n", "u1 1\n", "u1 1\n"), "text:1:", "is not `<utt-id>-<n>`")
    twice = rescore_kaldi_files(tmp_path, "u-1 a\nu-1 b\n", "u-1 1\n", "u-1 1\n")
    assert_input_error(twice, "text:2:", "appears twice")


def test_other_bad_input(tmp_path):
    shutil.copy(DATA / "nbest" / "utt1.nbest", tmp_path / "utt1.nbest")
    shutil.copy(DATA / "nbest" / "utt1.nbest", tmp_path / "utt1.copy.nbest")
    assert_input_error(nbest_command("--nbest", "utt1.nbest", "--nbest", "utt1.copy.nbest", "--nn-weight", 0,
                                        cwd=tmp_path),
                          "utt1.copy.nbest", "utterance 'utt1' has a list already")
    assert_input_error(nbest_command("--nbest", "missing.nbest", "--nn-weight", 0, cwd=tmp_path),
                          "missing.nbest", "no such file")
    assert_input_error(nbest_command("--nbest", "utt1.nbest", cwd=tmp_path), "needs the NETWORK model file")
    assert_input_error(nbest_command(cwd=tmp_path), "no n-best lists")
    assert_input_error(nbest_command("--nbest", "utt1.nbest", "--nn-weight", 1.5, cwd=tmp_path),
                          "--nn-weight must lie in [0, 1]")
    assert_input_error(nbest_command("--nbest", "utt1.nbest", "--arpa", DATA / "toy.arpa", cwd=tmp_path),
                          "--arpa needs --lambda")
    assert_input_error(nbest_command("--nbest", "utt1.nbest", "--nn-weight", 0, "--out", ".", cwd=tmp_path),
                          "./utt1.nbest:", "--out's utt1.nbest would overwrite the list utt1.nbest: they are one file")
    assert_input_error(nbest_command("--nbest", "utt1.nbest", "--nn-weight", 0, "--out", "utt1.nbest/x",
                                        cwd=tmp_path), "utt1.nbest/x:", "cannot create the output directory")
    (tmp_path / "refs").write_text("other a b\n")
    assert_input_error(nbest_command("--nbest", "utt1.nbest", "--nn-weight", 0, "--refs", "refs", cwd=tmp_path),
                          "refs:", "no reference for utterance 'utt1'")
    assert not (tmp_path / "out").exists()


def test_zero_probability_words_are_an_error(tmp_path):
    text = (DATA / "toy.arpa").read_text().replace("ngram 1=6", "ngram 1=5").replace("-1.2\t<unk>\n", "")
    (tmp_path / "no-unk.arpa").write_text(text)
    (tmp_path / "u.nbest").write_text("-1 -1 2 the cat\n-1 -1 2 the zebra\n")
    assert_input_error(nbest_command("--nbest", "u.nbest", "--arpa", "no-unk.arpa", "--lambda", 0, cwd=tmp_path),
                          "u.nbest:2:", "'zebra' has probability 0")


def test_errors_raised_by_the_reader_are_input_errors(tmp_path):
    (tmp_path / "u.nbest").write_text("-1 -2 0\n")
    hypotheses = formats.read_srilm_list(tmp_path / "u.nbest").hypotheses
    assert hypotheses[0].words == []
    with pytest.raises(InputError):
        formats.read_srilm_list(tmp_path / "absent.nbest")


def test_num_oovs_divides_the_arpa_unk_probability(tmp_path):
    """`sees` is not in the toy ARPA model: with --num-oovs 9 its p(<unk>) is divided by 10."""
    shutil.copy(DATA / "nbest" / "utt1.nbest", tmp_path / "utt1.nbest")
    status, _, err = nbest_command("--nbest", "utt1.nbest", *ARPA_ONLY, "--num-oovs", 9, "--out", "out",
                                   cwd=tmp_path)
    assert status == 0, err
    assert (tmp_path / "out" / "utt1.nbest").read_text().splitlines()[0] == "-120.5 -3.85 5 the cat sees the dog"
    assert "7 words not in the ARPA model's vocabulary were scored as <unk>" in err  # sees 4x, a, big 2x


@pytest.fixture
def toy_network(tmp_path):
    """A random network over the words of the toy lists (and <unk>), saved as a model file."""
    from rwthlm_py.model.checkpoint import TrainingState, save_model
    from rwthlm_py.model.network import Network
    from rwthlm_py.model.network_spec import parse_network
    from rwthlm_py.runtime.backend import get_backend
    from rwthlm_py.text.vocabulary import remap
    from rwthlm_py.training.optim import Sgd

    words = ["the", "cat", "dog", "sees", "a", "big", "likes", "<unk>"]
    vocab = remap([(word, k % 3) for k, word in enumerate(words)], "<sb>")
    network = Network.build(parse_network("toy-i6-m6"), vocab, get_backend("numpy"), seed=3)
    save_model(tmp_path / "toy-i6-m6", network, Sgd(network, 0.0), TrainingState())
    return tmp_path / "toy-i6-m6"


def test_network_scores_equal_its_perplexity_lines(tmp_path, toy_network):
    """The LM score written for a hypothesis is the sum of `ppl --verbose`'s log10 values."""
    status, _, err = nbest_command("--nbest", DATA / "nbest" / "utt1.nbest", "--out", "out", toy_network,
                                   cwd=tmp_path)
    assert status == 0, err
    written = {" ".join(line.split()[3:]): float(line.split()[1])
               for line in (tmp_path / "out" / "utt1.nbest").read_text().splitlines()}
    (tmp_path / "hyps.txt").write_text("\n".join(written) + "\n")
    ppl = subprocess.run(RWTHLM_PY + ["ppl", "--ppl", "hyps.txt", "--verbose", "--word-wrapping", "verbatim",
                                      "--batch-size", "1", str(toy_network)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    lines = [line for line in ppl.stdout.splitlines() if line.startswith("\tp(")]
    sums, position = [], 0
    for sentence in written:
        count = len(sentence.split()) + 1
        sums.append(sum(float(line.split("[ ")[1].split(" ]")[0]) for line in lines[position:position + count]))
        position += count
    assert position == len(lines)
    assert list(written.values()) == pytest.approx(sums, abs=5e-5 * 7)  # 5 printed decimals per word


def test_unknown_words_need_unk(tmp_path, toy_network):
    (tmp_path / "u.nbest").write_text("-1 -1 2 the cat\n-1 -1 2 the zebra\n")
    assert_input_error(nbest_command("--nbest", "u.nbest", toy_network, cwd=tmp_path),
                          "u.nbest:2:", "unknown word 'zebra'", "--unk")
    status, out, err = nbest_command("--nbest", "u.nbest", "--unk", toy_network, cwd=tmp_path)
    assert status == 0, err
    assert "1 words not in the network's vocabulary were scored as <unk>" in err
    assert out.startswith("u the ")


def test_float64_output_does_not_depend_on_batch_size_or_sharing(tmp_path, toy_network):
    """In float64 the products' rounding lies far below the printed digits: every written
    file is the same byte for byte, whatever the batching."""
    import numpy

    rng = numpy.random.default_rng(4)
    words = ["the", "cat", "dog", "sees", "a", "big", "likes"]
    (tmp_path / "lists").mkdir()
    for utterance in range(3):
        base = list(rng.choice(words, 8))
        lines = []
        for _ in range(80):
            hypothesis = list(base)
            for position in rng.choice(len(base), int(rng.integers(1, 4)), replace=False):
                hypothesis[position] = str(rng.choice(words))
            lines.append(f"{rng.normal(-100, 3):.3f} -20 {len(hypothesis)} " + " ".join(hypothesis))
        (tmp_path / "lists" / f"u{utterance}.nbest").write_text("\n".join(lines) + "\n")
    runs = [["--batch-size", 1], ["--batch-size", 7], [], ["--batch-size", 7, "--no-prefix-sharing"],
            ["--no-prefix-sharing"]]
    for k, extra in enumerate(runs):
        status, _, err = nbest_command("--nbest", "lists", "--dtype", "float64", "--out", f"out{k}", *extra,
                                       toy_network, cwd=tmp_path)
        assert status == 0, err
    for k in range(1, len(runs)):
        for name in ("u0.nbest", "u1.nbest", "u2.nbest", "1best.txt"):
            assert (tmp_path / f"out{k}" / name).read_text() == (tmp_path / "out0" / name).read_text()
