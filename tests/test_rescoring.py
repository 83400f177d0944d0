"""Scoring hypotheses: the same ln p as perplexity, whatever the batch size and with or
without prefix sharing; word error counts as SRILM counts them; ARPA interpolation in ppl."""

import math
import pathlib
import subprocess
import sys

import numpy
import pytest
from conftest import run_cli

from rwthlm_py.errors import InputError
from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.rescoring.scores import ranking
from rwthlm_py.rescoring.sentence_scores import PrefixTree, score_sentences, sentence_log_prob
from rwthlm_py.rescoring.wer import WordErrorTally, align_counts
from rwthlm_py.scoring.evaluate import score_corpus
from rwthlm_py.text import data
from rwthlm_py.text.vocabulary import remap

DATA = pathlib.Path(__file__).parent / "data"
RWTHLM_PY = [sys.executable, "-m", "rwthlm_py"]


def nbest_like_sentences(vocab, count, seed):
    """Variants of a few base sentences with 0-3 substitutions, insertions or deletions:
    the shape of real n-best lists, duplicates and an empty one included."""
    rng = numpy.random.default_rng(seed)
    words_only = [k for k in range(len(vocab)) if k != vocab.sb]
    vocab_size = len(words_only)
    bases = [list(rng.integers(0, vocab_size, rng.integers(6, 14))) for _ in range(3)]
    sentences = []
    for _ in range(count):
        words = list(bases[rng.integers(len(bases))])
        for _ in range(rng.integers(0, 4)):
            position = int(rng.integers(len(words) + 1))
            kind = rng.integers(3)
            if kind == 0 and position < len(words):
                words[position] = rng.integers(vocab_size)
            elif kind == 1:
                words.insert(position, rng.integers(vocab_size))
            elif len(words) > 1 and position < len(words):
                del words[position]
        sentences.append([words_only[word] for word in words])
    return sentences + [[]]


@pytest.fixture(params=["t-i12-m10", "t-i10-m8-m6", "t-36-M8"])
def network_and_sentences(request, backend):
    vocab = remap([(f"w{k}", k % 6) for k in range(40)], "<sb>")
    network = Network.build(parse_network(request.param), vocab, backend, seed=5)
    return network, nbest_like_sentences(vocab, 120, seed=7)


def perplexity_token_log_probs(network, sentences, tmp_path):
    """ln p of every token through `ppl`'s path: verbatim wrapping, one line at a time."""
    path = tmp_path / "hypotheses.txt"
    path.write_text("".join(" ".join(network.vocab.words[w] for w in words) + "\n" for words in sentences))
    corpus = data.read_corpus(path, network.vocab)
    scores = score_corpus(network, corpus, data.wrap(corpus, "verbatim", 1, 100), 1, keep_tokens=True)
    return [scores.token_log_probs[corpus.line_starts[k]:corpus.line_starts[k + 1]] for k in range(len(sentences))]


def test_a_hypothesis_score_is_its_perplexity_sum_exactly(network_and_sentences, tmp_path):
    network, sentences = network_and_sentences
    expected = perplexity_token_log_probs(network, sentences, tmp_path)
    scored = score_sentences(network, sentences, batch_size=1, share_prefixes=False)
    for got, want in zip(scored, expected, strict=True):
        assert numpy.array_equal(got, want)
        assert sentence_log_prob(got) == math.fsum(want.tolist())


@pytest.mark.parametrize("batch_size", [1, 3, 64])
@pytest.mark.parametrize("share", [False, True])
def test_scores_and_ranking_do_not_depend_on_batching_or_sharing(network_and_sentences, tmp_path, batch_size, share):
    """Equal to the perplexity path up to float32 rounding of the products (the BLAS kernel
    depends on the matrix shape), so every two hypotheses whose scores differ by more than
    that rounding keep their order."""
    network, sentences = network_and_sentences
    expected = perplexity_token_log_probs(network, sentences, tmp_path)
    scored = score_sentences(network, sentences, batch_size, share_prefixes=share)
    for got, want in zip(scored, expected, strict=True):
        numpy.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6)
    totals = numpy.asarray([sentence_log_prob(s) for s in scored])
    reference = numpy.asarray([math.fsum(e.tolist()) for e in expected])
    place = numpy.empty(len(totals), dtype=numpy.int64)
    place[ranking(totals.tolist())] = numpy.arange(len(totals))
    clearly_better = reference[:, None] - reference[None, :] > 1e-4
    assert clearly_better.sum() > len(totals) ** 2 / 3
    assert numpy.all((place[:, None] < place[None, :])[clearly_better])
    if batch_size == 1 and not share:
        assert totals.tolist() == reference.tolist()


def test_identical_hypotheses_get_identical_scores(network_and_sentences):
    network, sentences = network_and_sentences
    doubled = sentences + sentences[::-1]
    for share in (False, True):
        scored = score_sentences(network, doubled, batch_size=7, share_prefixes=share)
        for k in range(len(sentences)):
            assert numpy.array_equal(scored[k], scored[len(doubled) - 1 - k])


class CountingProgress:
    def __init__(self):
        self.targets = 0

    def update(self, words, neg_log_prob):
        self.targets += words


def test_prefix_sharing_computes_each_shared_prefix_once(float64):
    vocab = remap([(f"w{k}", 0) for k in range(5)], "<sb>")
    network = Network.build(parse_network("t-i4-m4"), vocab, float64, seed=1)
    sentences = [[0, 1, 2], [0, 1, 3], [0, 1, 3, 4], [0, 1, 2], [4]]
    single = score_sentences(network, sentences, batch_size=4, share_prefixes=False)
    # distinct target sequences in sorted order: 0 1 2 s | 0 1 3 s | 0 1 3 4 s | 4 s
    for batch_size in (1, 2, 4):
        counting = CountingProgress()
        shared = score_sentences(network, sentences, batch_size, share_prefixes=True, progress=counting)
        assert counting.targets == 4 + 2 + 2 + 2
        for a, b in zip(shared, single, strict=True):
            numpy.testing.assert_allclose(a, b, rtol=1e-12)


def test_prefix_tree_of_the_docstring_example():
    a, b, c, d, e, sb = range(6)
    tree = PrefixTree([numpy.asarray(t) for t in ([a, b, c, sb], [a, b, d, sb], [a, b, d, e, sb])])
    assert tree.num_nodes == 4 + 2 + 2
    assert tree.depth.tolist() == [0, 1, 2, 3, 2, 3, 3, 4]
    assert tree.target.tolist() == [a, b, c, sb, d, sb, e, sb]
    assert tree.input.tolist() == [sb, a, b, c, b, d, d, e]
    assert tree.parent.tolist() == [-1, 0, 1, 2, 1, 4, 4, 6]
    shared = numpy.flatnonzero(~tree.in_tail).tolist()
    assert [tree.target[n] for n in shared] == [a, b, d]
    tails = [tree.target[first:end].tolist() for first, end in zip(tree.tail_first, tree.tail_end, strict=True)]
    assert tails == [[c, sb], [sb], [e, sb]]
    assert tree.tail_parent.tolist() == [1, 4, 4]
    assert [ids.tolist() for ids in tree.nodes_of_sentences()] == [[0, 1, 2, 3], [0, 1, 4, 5], [0, 1, 4, 6, 7]]


# -- word error counts -----------------------------------------------------------------------

def srilm_word_error(reference, hypothesis):
    """SRILM's wordError, cell by cell with a backtrace (the oracle for align_counts)."""
    rows, columns = len(reference) + 1, len(hypothesis) + 1
    cost = [[0] * columns for _ in range(rows)]
    step = [[""] * columns for _ in range(rows)]
    for j in range(1, columns):
        cost[0][j], step[0][j] = 3 * j, "ins"
    for i in range(1, rows):
        cost[i][0], step[i][0] = 3 * i, "del"
        for j in range(1, columns):
            same = hypothesis[j - 1] == reference[i - 1]
            best, kind = cost[i - 1][j - 1] + (0 if same else 4), "cor" if same else "sub"
            if cost[i - 1][j] + 3 < best:
                best, kind = cost[i - 1][j] + 3, "del"
            if cost[i][j - 1] + 3 < best:
                best, kind = cost[i][j - 1] + 3, "ins"
            cost[i][j], step[i][j] = best, kind
    counts = {"sub": 0, "del": 0, "ins": 0, "cor": 0}
    i, j = rows - 1, columns - 1
    while i > 0 or j > 0:
        kind = step[i][j]
        counts[kind] += 1
        i, j = (i - 1, j - 1) if kind in ("cor", "sub") else (i - 1, j) if kind == "del" else (i, j - 1)
    return counts["sub"], counts["del"], counts["ins"]


def test_word_errors_equal_srilms_on_random_pairs():
    rng = numpy.random.default_rng(3)
    for _ in range(200):
        reference = list(rng.choice(list("abcd"), rng.integers(0, 9)))
        hypotheses = [list(rng.choice(list("abcde"), rng.integers(0, 10))) for _ in range(6)]
        for hypothesis, counts in zip(hypotheses, align_counts(reference, hypotheses), strict=True):
            assert (counts.substitutions, counts.deletions, counts.insertions) == \
                srilm_word_error(reference, hypothesis)
            assert counts.reference_words == len(reference)


def test_word_error_examples():
    [same, shifted, empty] = align_counts("a b c d".split(), [["a", "b", "c", "d"], ["b", "c", "d", "e"], []])
    assert (same.errors, shifted.deletions, shifted.insertions, shifted.substitutions) == (0, 1, 1, 0)
    assert empty.deletions == 4 and empty.rate == 100.0
    # sclite's weights prefer one substitution (4) to a deletion and an insertion (6)
    [one] = align_counts(["a", "b"], [["a", "x"]])
    assert (one.substitutions, one.errors) == (1, 1)


def test_the_word_error_tally_sums_three_hypotheses_per_utterance():
    tally = WordErrorTally("refs", {"u1": ["a", "uh", "b"], "u2": ["c"]}, {"uh"})
    assert tally.lines() == []  # nothing counted yet (every lattice failed): no rate of nothing
    assert tally.reference("u1") == ["a", "b"]  # noise words left out
    # (original, rescored, oracle) 1-best of each utterance: three different error counts
    for utterance, hypotheses in (("u1", [["a"], ["a", "b", "x"], ["a", "b"]]), ("u2", [["d", "e"], ["c"], ["c"]])):
        tally.add(*align_counts(tally.reference(utterance), hypotheses))
    assert tally.lines() == ["original 1-best:  WER 100.00% [ 3 / 3, 1 ins, 1 del, 1 sub ]",
                             "rescored 1-best:  WER 33.33% [ 1 / 3, 1 ins, 0 del, 0 sub ]",
                             "oracle:           WER 0.00% [ 0 / 3, 0 ins, 0 del, 0 sub ]"]
    with pytest.raises(InputError, match=r"no reference for utterance 'u3' \(its file name\)"):
        tally.reference("u3", naming="its file name")


# -- ARPA interpolation in ppl -----------------------------------------------------------------------

def ppl_command(*args, cwd):
    status, out, err = run_cli(RWTHLM_PY, "ppl", *args, cwd=cwd)
    assert status == 0, err
    return out


def test_ppl_with_an_arpa_model(tmp_path, float64):
    vocab = remap([(word, k) for k, word in enumerate(["the", "cat", "dog", "sees"])], "<sb>")
    network = Network.build(parse_network("toy-i6-m6"), vocab, float64, seed=2)
    from rwthlm_py.model.checkpoint import TrainingState, save_model
    from rwthlm_py.training.optim import Sgd

    save_model(tmp_path / "toy-i6-m6", network, Sgd(network, 0.0), TrainingState())
    (tmp_path / "test.txt").write_text("the cat sees\nthe dog\n")
    plain = ppl_command("--ppl", "test.txt", "--verbose", "--batch-size", 1, "toy-i6-m6", cwd=tmp_path)
    same = ppl_command("--ppl", "test.txt", "--arpa", DATA / "toy.arpa", "--lambda", 1, "toy-i6-m6", cwd=tmp_path)
    assert float(same.splitlines()[-1]) == pytest.approx(float(plain.splitlines()[-1]), rel=1e-12)
    arpa_only = ppl_command("--ppl", "test.txt", "--arpa", DATA / "toy.arpa", "--lambda", 0, "toy-i6-m6", cwd=tmp_path)
    # the cat <unk> </s>: -0.1 -0.3 -1.3 -0.69897; the dog </s>: -0.1 -0.4 -0.25 (log10)
    log10_total = -0.1 - 0.3 - 1.3 - 0.69897 - 0.1 - 0.4 - 0.25
    assert float(arpa_only.splitlines()[-1]) == pytest.approx(10 ** (-log10_total / 7), rel=1e-9)
    assert "1 words not in its vocabulary were scored as <unk>" in arpa_only
    nn = [float(line.split("[")[-1].split("]")[0]) for line in plain.splitlines() if line.startswith("\tp(")]
    arpa = [-0.1, -0.3, -1.3, -0.69897, -0.1, -0.4, -0.25]
    mixed = ppl_command("--ppl", "test.txt", "--arpa", DATA / "toy.arpa", "--lambda", 0.3, "toy-i6-m6", cwd=tmp_path)
    expected = math.exp(-sum(math.log(0.3 * 10 ** a + 0.7 * 10 ** b) for a, b in zip(nn, arpa, strict=True)) / 7)
    assert float(mixed.splitlines()[-1]) == pytest.approx(expected, rel=1e-4)  # nn read with 5 decimals


def test_ppl_reads_its_text_once_from_a_pipe(tmp_path, float64):
    """`--ppl -` (standard input) with --arpa gives the figures of the file: the ARPA model
    scores the words read with the text, not a second reading of it; a unigram model works."""
    vocab = remap([(word, k) for k, word in enumerate(["the", "cat", "dog", "sees"])], "<sb>")
    network = Network.build(parse_network("toy-i6-m6"), vocab, float64, seed=2)
    from rwthlm_py.model.checkpoint import TrainingState, save_model
    from rwthlm_py.training.optim import Sgd

    save_model(tmp_path / "toy-i6-m6", network, Sgd(network, 0.0), TrainingState())
    text = "the cat sees\nthe dog\n"
    (tmp_path / "test.txt").write_text(text)
    (tmp_path / "unigram.arpa").write_text("\\data\\\nngram 1=5\n\n\\1-grams:\n-99\t<s>\n-0.5\t</s>\n-0.5\tthe\n"
                                           "-1\tcat\n-1\tdog\n\n\\end\\\n")
    for arpa, lam in ((DATA / "toy.arpa", 0), (DATA / "toy.arpa", 0.3), (tmp_path / "unigram.arpa", 0.5)):
        arguments = ["--arpa", arpa, "--lambda", lam, "toy-i6-m6"]
        from_file = ppl_command("--ppl", "test.txt", *arguments, cwd=tmp_path)
        piped = subprocess.run(RWTHLM_PY + ["ppl", "--ppl", "-"] + [str(a) for a in arguments], cwd=tmp_path,
                               input=text, capture_output=True, text=True, timeout=300)
        assert piped.returncode == 0, piped.stderr
        assert piped.stdout.splitlines()[-1] == from_file.splitlines()[-1]
        assert [line for line in piped.stdout.splitlines() if "not in its vocabulary" in line] == \
            [line for line in from_file.splitlines() if "not in its vocabulary" in line]
