"""Reading the real PTB text from ../shared/corpora (skipped, saying why, where it is absent)."""

from rwthlm_py import data
from rwthlm_py.vocabulary import count_words, vocabulary_from_counts

from conftest import corpus_file


def test_ptb_counts_match_its_source_description():
    train = corpus_file("ptb", "ptb.train.txt.gz")
    counts, lines = count_words(train)
    vocab = vocabulary_from_counts(counts)
    assert lines == 42068
    assert len(vocab) == 10000  # 9,999 word types plus <sb>
    corpus = data.read_corpus(train, vocab)
    assert len(corpus.stream) == 929589
    valid = data.read_corpus(corpus_file("ptb", "ptb.valid.txt.gz"), vocab)
    assert len(valid.stream) == 73760 and valid.unk_count == 0
