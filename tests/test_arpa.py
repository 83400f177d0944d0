"""ARPA back-off models: reading, back-off arithmetic checked by hand, and bad files."""

import math
import pathlib

import numpy
import pytest

from rwthlm_py.errors import InputError
from rwthlm_py.text.arpa import read_arpa

DATA = pathlib.Path(__file__).parent / "data"


@pytest.fixture
def toy_arpa():
    return read_arpa(DATA / "toy.arpa")


def test_listed_bigrams_and_back_off_by_hand(toy_arpa):
    values, unknown = toy_arpa.sentence_log10_probs(["the", "cat"])
    assert unknown == 0
    assert values.tolist() == pytest.approx([-0.1, -0.3, -0.2])
    # p(dog | cat) is not listed: bow(cat) + p(dog); p(</s> | dog) is listed
    values, _ = toy_arpa.sentence_log10_probs(["the", "cat", "dog"])
    assert values.tolist() == pytest.approx([-0.1, -0.3, -0.1 - 1.0, -0.25])


def test_unknown_words_are_unk_and_counted(toy_arpa):
    values, unknown = toy_arpa.sentence_log10_probs(["the", "cat", "sees"])
    assert unknown == 1
    # p(<unk> | cat) = bow(cat) + p(<unk>); p(</s> | <unk>): <unk> has no bow, so p(</s>)
    assert values.tolist() == pytest.approx([-0.1, -0.3, -0.1 - 1.2, -0.69897])


def test_history_without_a_bigram_uses_the_unigram_and_its_back_off(toy_arpa):
    # p(the | the) = bow(the) + p(the)
    values, _ = toy_arpa.sentence_log10_probs(["the", "the"])
    assert values.tolist() == pytest.approx([-0.1, -0.2 - 0.5, -0.2 - 0.69897])


def test_model_without_unk_gives_probability_zero(tmp_path):
    text = (DATA / "toy.arpa").read_text().replace("ngram 1=6", "ngram 1=5").replace("-1.2\t<unk>\n", "")
    (tmp_path / "no-unk.arpa").write_text(text)
    model = read_arpa(tmp_path / "no-unk.arpa")
    values, unknown = model.sentence_log10_probs(["the", "zebra"])
    assert unknown == 1 and values[1] == -math.inf and numpy.isfinite(values[0])


def test_trigram_with_missing_context_backs_off_correctly(tmp_path):
    (tmp_path / "tri.arpa").write_text(
        "\\data\\\nngram 1=4\nngram 2=1\nngram 3=1\n\n\\1-grams:\n-99 <s> -0.5\n-1 </s>\n-0.6 a -0.25\n-0.7 b\n\n"
        "\\2-grams:\n-0.3 <s> a -0.125\n\n\\3-grams:\n-0.05 a b </s>\n\\end\\\n")
    model = read_arpa(tmp_path / "tri.arpa")
    values, _ = model.sentence_log10_probs(["a", "b"])
    # p(b | <s> a): no trigram -> bow(<s> a) + p(b | a); `a b` is only a context: bow(a) + p(b)
    # p(</s> | a b) is the listed trigram
    assert values.tolist() == pytest.approx([-0.3, -0.125 - 0.25 - 0.7, -0.05])


# lines 1 to 8: \\data\\ declaring 3 unigrams (<s>, a, </s>) and 1 bigram, and the unigrams
BIGRAM_HEAD = "\\data\\\nngram 1=3\nngram 2=1\n\n\\1-grams:\n-99 <s> -0.5\n-0.5 a -0.2\n-0.3 </s>\n"
# a trigram model's head (lines 1 to 9), so that its 2-grams may have back-off weights
TRIGRAM_HEAD = BIGRAM_HEAD.replace("ngram 2=1\n", "ngram 2=1\nngram 3=1\n")
TRIGRAM_TAIL = "\n\\3-grams:\n-0.1 <s> a </s>\n\\end\\\n"


@pytest.mark.parametrize("text, message", [
    ("\\1-grams:\n-1 a\n\\end\\\n", "no \\data\\ line: not an ARPA file"),
    ("\\data\\\nngram 1=x\n\\end\\\n", "expected `ngram N=count`"),
    ("\\data\\\nngram 1=2\n\n\\1-grams:\n-1 <s>\n-1 </s>\n", "no \\end\\ line"),
    ("\\data\\\nngram 1=2\n\n\\1-grams:\n-1 <s>\nminus </s>\n\\end\\\n", "bad.arpa:6: the probability 'minus' is not"),
    ("\\data\\\nngram 1=2\n\n\\1-grams:\n-1 <s>\n-1 </s> 0 0\n\\end\\\n", "bad.arpa:6: a 1-gram line has"),
    ("\\data\\\nngram 1=2\n\n\\2-grams:\n-1 <s> </s>\n\\end\\\n", "bad.arpa:4: section \\2-grams: is not declared"),
    ("\\data\\\nngram 1=1\n\\end\\\n", "bad.arpa:3: \\end\\ before any n-gram section"),
    (BIGRAM_HEAD + "\n\\2-grams:\nnan a </s>\n\\end\\\n", "bad.arpa:11: the probability is nan"),
    (BIGRAM_HEAD + "\n\\2-grams:\ninf a </s>\n\\end\\\n", "bad.arpa:11: the probability is inf"),
    (TRIGRAM_HEAD + "\n\\2-grams:\n-0.1 <s> a inf\n" + TRIGRAM_TAIL, "bad.arpa:12: the back-off weight is inf"),
    (TRIGRAM_HEAD + "\n\\2-grams:\n-0.1 <s> a nan\n" + TRIGRAM_TAIL, "bad.arpa:12: the back-off weight is nan"),
    (TRIGRAM_HEAD + "\n\\2-grams:\n-0.1 <s> a </s>\n" + TRIGRAM_TAIL, "bad.arpa:12: a 2-gram line has "
     "`log10p w1 .. w2 [bow]`: '</s>' is no back-off weight (a 3-gram in the 2-grams section?)"),
    ("\\data\\\nngram 1=1\nngram 1=1\n\\end\\\n", "bad.arpa:3: ngram 1 is declared twice"),
    ("\\data\\\nngram 1=1\nngram 101=1\n\n\\1-grams:\n-1 a\n\\end\\\n",
     "bad.arpa:3: ngram order 101 is out of range (1 to 100, as in SRILM)"),
    ("\\data\\\nngram 1=1\n\\data\\\n\\end\\\n", "bad.arpa:3: a second \\data\\ section"),
])
def test_bad_files_name_the_line(tmp_path, text, message):
    """What SRILM's Ngram::read refuses too, and what it would compute with as NaN or an
    infinite back-off weight."""
    (tmp_path / "bad.arpa").write_text(text)
    with pytest.raises(InputError) as error:
        read_arpa(tmp_path / "bad.arpa")
    assert message in str(error.value) and "bad.arpa" in str(error.value)


def read_text_model(tmp_path, text):
    (tmp_path / "lm.arpa").write_text(text)
    return read_arpa(tmp_path / "lm.arpa")


def test_text_before_data_and_after_end_is_ignored_as_srilm_ignores_it(tmp_path):
    text = BIGRAM_HEAD + "\n\\2-grams:\n-0.1 a </s>\n\\end\\\n"
    model = read_text_model(tmp_path, "Language model written by a toolkit\n\n" + text + "another model\n\xff")
    assert model.warnings == []
    assert model.sentence_log10_probs(["a"])[0].tolist() == pytest.approx([-0.5 - 0.5, -0.1])  # bow(<s>) + p(a)


def test_what_srilm_reads_with_a_warning_is_read_with_one(tmp_path):
    text = ("\\data\\\nngram 1=4\nngram 2=1\n\n\\2-grams:\n-0.1 a </s>\n-0.2 a b 1.5\n\n"  # lines 1-7
            "\\1-grams:\n-99 <s> -0.5\n0.25 a -0.2\n-0.3 </s>\n-0.4 a -0.3\n\\end\\\n")   # lines 9-14
    model = read_text_model(tmp_path, text)
    assert model.warnings == [
        f"{tmp_path / 'lm.arpa'}:7: warning: the back-off weight 1.5 of a highest-order n-gram is ignored",
        f"{tmp_path / 'lm.arpa'}:11: warning: log10 p = 0.25 is above 0: a probability above 1",
        f"{tmp_path / 'lm.arpa'}:13: warning: the 1-gram 'a' is listed again; this line counts",
        f"{tmp_path / 'lm.arpa'}:14: warning: 2 2-grams read; \\data\\ declares 1",
    ]
    # the 2-grams came first; the later `a` line counts; `b` has no unigram: p(b | <s>) = 0
    assert model.sentence_log10_probs(["a"])[0].tolist() == pytest.approx([-0.5 - 0.4, -0.1])
    assert model.sentence_log10_probs(["b"])[0][0] == -math.inf
    assert model.sentence_log10_probs(["a", "b"])[0][1] == pytest.approx(-0.2)


def test_a_model_without_sentence_start_or_end_is_read(tmp_path):
    """SRILM reads a model without <s>: the sentence start is then a context no n-gram
    lists (p(w | <s>) = p(w)); without </s>, the sentence end has probability 0."""
    no_start = read_text_model(tmp_path, "\\data\\\nngram 1=2\n\n\\1-grams:\n-0.5 a\n-0.3 </s>\n\\end\\\n")
    assert no_start.sentence_log10_probs(["a", "a"])[0].tolist() == pytest.approx([-0.5, -0.5, -0.3])
    no_end = read_text_model(tmp_path, "\\data\\\nngram 1=2\nngram 2=1\n\n\\1-grams:\n-99 <s> -1\n-0.5 a\n\n"
                                       "\\2-grams:\n-0.2 <s> a\n\\end\\\n")
    values = no_end.sentence_log10_probs(["a", "a"])[0]
    assert values[:2].tolist() == pytest.approx([-0.2, -0.5]) and values[2] == -math.inf


def test_only_minus_99_is_log_zero_and_minus_inf_back_off_weights_are_read(tmp_path):
    model = read_text_model(tmp_path, TRIGRAM_HEAD.replace("-0.5 a -0.2", "-100 a -inf") + "\n\\2-grams:\n"
                            "-99 <s> </s>\n" + TRIGRAM_TAIL)
    values = model.sentence_log10_probs([])[0]  # p(</s> | <s>) is the listed -99: zero
    assert values[0] == -math.inf
    values = model.sentence_log10_probs(["a"])[0]  # p(a | <s> ) = bow(<s>) + p(a) = -0.5 - 100
    assert values[0] == pytest.approx(-100.5)
    assert model.sentence_log10_probs(["a", "a"])[0][1] == -math.inf  # bow(a) = -inf


def test_a_latin1_model_is_read_with_its_encoding(tmp_path):
    text = BIGRAM_HEAD.replace(" a ", " a\u00f1o ") + "\n\\2-grams:\n-0.1 a\u00f1o </s>\n\\end\\\n"
    (tmp_path / "es.arpa").write_bytes(text.encode("latin-1"))
    model = read_arpa(tmp_path / "es.arpa", encoding="latin-1")
    assert model.sentence_log10_probs(["a\u00f1o"])[0].tolist() == pytest.approx([-1.0, -0.1])
    with pytest.raises(InputError, match=r"es.arpa:7: not UTF-8 text \(byte 0xf1 at column 7\) \(--encoding"):
        read_arpa(tmp_path / "es.arpa")


def write_backoff_bigram(path, sentences, discount=0.5):
    """A bigram model in ARPA form with absolute discounting, its back-off weights chosen so
    that every p(. | h) sums to one over the vocabulary (</s> included, <s> excluded)."""
    from collections import Counter

    unigrams, bigrams = Counter(), Counter()
    for words in sentences:
        tokens = ["<s>"] + words + ["</s>"]
        unigrams.update(tokens[1:])
        bigrams.update(zip(tokens[:-1], tokens[1:], strict=True))
    total = sum(unigrams.values())
    p1 = {word: count / total for word, count in unigrams.items()}
    history_count = Counter()
    for (history, _), count in bigrams.items():
        history_count[history] += count
    p2 = {pair: (count - discount) / history_count[pair[0]] for pair, count in bigrams.items()}
    bow = {}
    for history in history_count:
        seen = [word for (h, word) in p2 if h == history]
        left = 1.0 - sum(p2[(history, word)] for word in seen)
        bow[history] = left / (1.0 - sum(p1[word] for word in seen))
    lines = ["\\data\\", f"ngram 1={len(p1) + 1}", f"ngram 2={len(p2)}", "", "\\1-grams:",
             f"-99\t<s>\t{math.log10(bow['<s>'])}"]
    lines += [f"{math.log10(p)}\t{word}" + (f"\t{math.log10(bow[word])}" if word in bow else "")
              for word, p in sorted(p1.items())]
    lines += ["", "\\2-grams:"] + [f"{math.log10(p)}\t{h} {w}" for (h, w), p in sorted(p2.items())]
    path.write_text("\n".join(lines + ["", "\\end\\", ""]))
    return sorted(p1)


def test_back_off_distributions_sum_to_one(tmp_path):
    sentences = [s.split() for s in ["a b c", "a c", "b b a", "c a b a", "a"]]
    vocabulary = write_backoff_bigram(tmp_path / "bigram.arpa", sentences)
    model = read_arpa(tmp_path / "bigram.arpa")
    for history in [[], ["a"], ["b"], ["c"], ["a", "b", "b"]]:
        total = 0.0
        for word in vocabulary:  # p(word | <s> history), read off the last value of each sentence
            values, _ = model.sentence_log10_probs(history + [word]) if word != "</s>" else \
                model.sentence_log10_probs(history)
            total += 10 ** values[len(history)]
        assert total == pytest.approx(1.0, abs=1e-12)


def test_the_warnings_are_printed_by_the_commands(tmp_path):
    """What the reader accepts with a warning, the commands say on stderr, as SRILM does."""
    from conftest import RWTHLM_PY, run_cli

    text = BIGRAM_HEAD.replace("ngram 2=1", "ngram 2=2") + "\n\\2-grams:\n-0.1 a </s>\n\\end\\\n"
    (tmp_path / "lm.arpa").write_text(text)
    (tmp_path / "u.nbest").write_text("-10 -5 1 a\n")
    status, out, err = run_cli(RWTHLM_PY, "nbest", "--nbest", "u.nbest", "--arpa", "lm.arpa", "--lambda", 0,
                               cwd=tmp_path)
    assert status == 0, err
    assert "lm.arpa:12: warning: 1 2-grams read; \\data\\ declares 2" in err.splitlines()
