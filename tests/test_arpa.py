"""ARPA back-off models: reading, back-off arithmetic checked by hand, and bad files."""

import math
import pathlib

import numpy
import pytest

from rwthlm_py.arpa import read_arpa
from rwthlm_py.errors import InputError

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


@pytest.mark.parametrize("text, message", [
    ("\\1-grams:\n-1 a\n\\end\\\n", "expected \\data\\"),
    ("\\data\\\nngram 1=x\n\\end\\\n", "expected `ngram N=count`"),
    ("\\data\\\nngram 1=2\n\n\\1-grams:\n-1 <s>\n-1 </s>\n", "no \\end\\ line"),
    ("\\data\\\nngram 1=2\n\n\\1-grams:\n-1 <s>\nminus </s>\n\\end\\\n", "not a number"),
    ("\\data\\\nngram 1=2\n\n\\1-grams:\n-1 <s>\n-1 </s> 0 0\n\\end\\\n", "has 4 fields"),
    ("\\data\\\nngram 1=2\n\n\\2-grams:\n-1 <s> </s>\n\\end\\\n", "not declared"),
    ("\\data\\\nngram 1=1\n\n\\1-grams:\n-1 </s>\n\\end\\\n", "no unigram <s>"),
    (BIGRAM_HEAD + "\n\\2-grams:\n-0.1 a </s>\n\\end\\\nmore\n", "bad.arpa:13: text after \\end\\: 'more'"),
    ("\\data\\\nngram 1=4\n\n\\1-grams:\n-99 <s>\n-1 </s>\n-1 a\n\\end\\\n",
     "bad.arpa:4: section \\1-grams: has 3 n-grams; \\data\\ declares 4"),
    (BIGRAM_HEAD + "\\end\\\n", "bad.arpa:9: \\end\\ before section \\2-grams: that \\data\\ declares"),
    (BIGRAM_HEAD + "\n\\2-grams:\n0.5 a </s>\n\\end\\\n", "bad.arpa:11: log10 p = 0.5 is above 0"),
    (BIGRAM_HEAD + "\n\\2-grams:\nnan a </s>\n\\end\\\n", "bad.arpa:11: the probability is nan"),
    (BIGRAM_HEAD + "\n\\2-grams:\n-0.1 a </s> inf\n\\end\\\n", "bad.arpa:11: the back-off weight is inf"),
    (BIGRAM_HEAD + "\n\\2-grams:\n-0.1 a </s> -inf\n\\end\\\n", "bad.arpa:11: the back-off weight -inf is not finite"),
    (BIGRAM_HEAD + "\n\\2-grams:\n-0.1 a </s> nan\n\\end\\\n", "bad.arpa:11: the back-off weight is nan"),
    (BIGRAM_HEAD + "-0.4 a\n\\2-grams:\n-0.1 a </s>\n\\end\\\n", "bad.arpa:9: the 1-gram 'a' is listed twice"),
    (BIGRAM_HEAD + "\n\\2-grams:\n-0.1 a b\n\\end\\\n", "bad.arpa:11: 'b' has no unigram"),
    (BIGRAM_HEAD + "\n\\2-grams:\n-0.1 a </s> a\n\\end\\\n", "bad.arpa:11: a 2-gram line has `log10p w1 .. w2 [bow]`: "
     "'a' is no back-off weight (a 3-gram in the 2-grams section?)"),
    (BIGRAM_HEAD + "\n\\2-grams:\n-0.1 a </s>\n\\2-grams:\n\\end\\\n", "bad.arpa:12: section \\2-grams: where \\3-grams:"),
    ("\\data\\\nngram 2=1\n\n\\2-grams:\n-1 <s> </s>\n\\end\\\n", "bad.arpa:4: section \\2-grams: where \\1-grams:"),
    ("\\data\\\nngram 1=1\nngram 1=1\n\\end\\\n", "bad.arpa:3: ngram 1 is declared twice"),
    ("\\data\\\nngram 1=1\n\\data\\\n\\end\\\n", "bad.arpa:3: a second \\data\\ section"),
])
def test_bad_files_name_the_line(tmp_path, text, message):
    (tmp_path / "bad.arpa").write_text(text)
    with pytest.raises(InputError) as error:
        read_arpa(tmp_path / "bad.arpa")
    assert message in str(error.value) and "bad.arpa" in str(error.value)


def write_backoff_bigram(path, sentences, discount=0.5):
    """A bigram model in ARPA form with absolute discounting, its back-off weights chosen so
    that every p(. | h) sums to one over the vocabulary (</s> included, <s> excluded)."""
    from collections import Counter

    unigrams, bigrams = Counter(), Counter()
    for words in sentences:
        tokens = ["<s>"] + words + ["</s>"]
        unigrams.update(tokens[1:])
        bigrams.update(zip(tokens[:-1], tokens[1:]))
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
