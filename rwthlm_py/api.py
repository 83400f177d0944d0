"""The Python API: a trained model for notebooks and other toolkits.

    lm = rwthlm_py.load("ptb-i200-m200")              # backend="auto", dtype="float32"
    lm.perplexity(["the cat sat", "a dog barked"])    # the figure `rwthlm-py ppl` prints
    [score] = lm.sentence_log_probs(["the cat sat"])  # as `rwthlm-py nbest` scores a line
    score.log_prob, score.log10_prob                  # the sentence: its words and its end
    score.word_log_probs, score.word_log10_probs      # per word, then the sentence end
    lm.next_word_log_probs("the cat")                 # ln p(w | <sb> the cat) for every w
    lm.sample(5, temperature=0.8, seed=1)             # as `rwthlm-py sample` draws them
    lm.vocabulary                                     # the words, in the order of those arrays

A thin layer over the code the commands use, with the options the model's training was
given (its layout, --unk, --num-oovs, ...) unless `load` is given others by their Python
names (batch_size=1, unk=False, num_oovs=4, ...). Natural logs unless the name says log10;
results are host numpy arrays in float64 on any backend. Bad input raises
rwthlm_py.errors.InputError with the message the commands print.
"""

import dataclasses
import math
from collections.abc import Iterable, Sequence

import numpy

from rwthlm_py.commands import schedule_from, score_text
from rwthlm_py.config import (
    FROM_THE_MODEL,
    OPTION_FIELDS,
    Options,
    closest_names,
    recorded_options,
    suggestion,
    validate,
)
from rwthlm_py.errors import InputError
from rwthlm_py.log_probs import LN10, unk_penalty
from rwthlm_py.model.checkpoint import build_network, model_vocabulary, read_model
from rwthlm_py.model.memory import require_model_memory
from rwthlm_py.model.network import Network
from rwthlm_py.preparation import require_words
from rwthlm_py.rescoring.sentence_scores import score_sentences, sentence_log_prob
from rwthlm_py.runtime import threads
from rwthlm_py.runtime.backend import get_backend
from rwthlm_py.scoring.sampling import sample_sentences
from rwthlm_py.text.data import corpus_from_lines
from rwthlm_py.text.textio import split_words

SENTENCES_PER_BATCH = 128  # sentences (or prefix-tree nodes) scored together, rwthlm-py nbest's default


def load(path: str, backend: str = "auto", dtype: str = "float32", **options: object) -> "LanguageModel":
    """The model in the file `path`, on `backend` ("auto", "numpy" or "cupy") in `dtype`;
    `options` (Python names of the command-line options) replace what training recorded.
    threads=N sets the BLAS and OpenMP pools of the whole process to N threads."""
    unknown = sorted(set(options) - set(OPTION_FIELDS))
    if unknown:
        raise InputError(f"unknown option{'s' if len(unknown) > 1 else ''}: "
                         + ", ".join(_with_suggestion(name) for name in unknown))
    model_file = read_model(path)
    recorded = recorded_options(model_file.meta["options"], FROM_THE_MODEL["ppl"], model_file.path)
    settings = validate(Options(**{**recorded, **options, "backend": backend, "dtype": dtype}))
    vocab = model_vocabulary(model_file)
    if vocab.sb_name != settings.map_sb:
        raise InputError(f"the model's sentence boundary is '{vocab.sb_name}', not map_sb '{settings.map_sb}'",
                         model_file.path)
    if settings.unk:
        vocab = vocab.with_unk(settings.map_unk)
    if settings.threads is not None:  # the caller's process: its pools are set only where asked
        threads.settle(settings.threads)
    network_backend = get_backend(settings.backend, settings.dtype)
    require_model_memory(model_file, network_backend, vocab)
    return LanguageModel(build_network(model_file, network_backend, vocab), settings)


@dataclasses.dataclass
class SentenceScore:
    """A sentence's words and ln p of each, then of the sentence end (the boundary)."""

    words: list[str]
    word_log_probs: numpy.ndarray

    @property
    def log_prob(self) -> float:
        return sentence_log_prob(self.word_log_probs)

    @property
    def log10_prob(self) -> float:
        return self.log_prob / LN10

    @property
    def word_log10_probs(self) -> numpy.ndarray:
        return self.word_log_probs / LN10


class LanguageModel:
    """A network with the options it scores with (`options`, a config.Options)."""

    def __init__(self, network: Network, options: Options) -> None:
        self.network, self.options = network, options

    @property
    def vocabulary(self) -> tuple[str, ...]:
        """The words in network order: index i of next_word_log_probs is the word [i]."""
        return tuple(self.network.vocab.words)

    def perplexity(self, lines: str | Iterable[str]) -> float:
        """The perplexity of the lines (a list of sentences, or one text of lines) as
        `rwthlm-py ppl` computes it: in the model's layout, a word the vocabulary lacks an
        OOV left out of the text unless the model maps it to its unknown word."""
        options = self.options
        numbered = enumerate(_lines_of(lines), start=1)
        corpus = corpus_from_lines(numbered, "text", self.network.vocab, use_unk=options.unk,
                                   debug_no_sb=options.debug_no_sb, skip_unknown=True)
        return score_text(self.network, require_words(corpus, "given"), schedule_from(options)).perplexity

    def sentence_log_probs(self, sentences: Iterable[str | Sequence[str]],
                           batch_size: int = SENTENCES_PER_BATCH) -> list[SentenceScore]:
        """A SentenceScore for every sentence (a string of words, or a list of words), each
        scored alone from the sentence boundary, as `rwthlm-py nbest` scores a hypothesis."""
        word_lists = [split_words(sentence) if isinstance(sentence, str) else list(sentence)
                      for sentence in sentences]
        ids = [self._word_ids(words, f"sentence {k + 1}") for k, words in enumerate(word_lists)]
        penalty = unk_penalty(self.options.num_oovs, self.options.unk)
        log_probs = score_sentences(self.network, ids, batch_size, unk_penalty=penalty)
        return [SentenceScore(words, values) for words, values in zip(word_lists, log_probs, strict=True)]

    def next_word_log_probs(self, history: str | Sequence[str]) -> numpy.ndarray:
        """ln p(w | history) of every word w of the vocabulary after the history (a string of
        words, or a list; from the sentence start), as scoring gives them: with --unk,
        p(<unk>) is divided by num_oovs + 1 (the array then sums to less than 1)."""
        network, vocab = self.network, self.network.vocab
        words = split_words(history) if isinstance(history, str) else list(history)
        inputs = numpy.asarray([vocab.sb] + self._word_ids(words, "history"), dtype=numpy.int32)[:, None]
        xp = network.xp
        hidden, _, _ = network.hidden(xp.asarray(inputs), None, xp.asarray([len(inputs)]), train=False)
        log_probs = network.backend.to_numpy(network.output.log_distribution(hidden[-1])[0]).astype(numpy.float64)
        if vocab.unk is not None:
            log_probs[vocab.unk] -= unk_penalty(self.options.num_oovs, self.options.unk)
        return log_probs

    def sample(self, count: int = 10, temperature: float = 1.0, seed: int = 1, max_length: int = 200) -> list[str]:
        """`count` sentences drawn from the model, as `rwthlm-py sample` prints them."""
        if count < 1 or max_length < 1 or not 0 < temperature < math.inf:
            raise InputError("sample needs count and max_length of at least 1 and a positive temperature")
        drawn = sample_sentences(self.network, count, temperature, seed, max_length)
        return [" ".join(words) for words in drawn]

    def _word_ids(self, words: Sequence[str], where: str) -> list[int]:
        vocab = self.network.vocab
        ids = []
        for word in words:
            word_id = vocab.index.get(word, vocab.unk)
            if word_id is None:
                raise InputError(f"unknown word '{word}' (not in the vocabulary; load with unk=True to map unknown "
                                 "words to the unknown word)", where)
            if word_id == vocab.sb:
                raise InputError(f"the sentence boundary '{word}' is no word of a sentence", where)
            ids.append(word_id)
        return ids


def _with_suggestion(name: str) -> str:
    """An unknown option's name and, in parentheses, the Python names it most likely meant."""
    known = [field.replace("_", "-") for field in OPTION_FIELDS]
    hint = suggestion([option.replace("-", "_") for option in closest_names(name, known)])
    return f"{name} ({hint})" if hint else name


def _lines_of(lines: str | Iterable[str]) -> list[str]:
    """The lines of a text given as one string (split at newlines, as a file is read) or as
    an iterable of lines."""
    if isinstance(lines, str):
        lines = lines.split("\n")
        if lines[-1] == "":
            lines.pop()
    return [line.rstrip("\r\n") for line in lines]
