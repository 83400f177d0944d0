"""`rwthlm-py nbest`: read the lists, score every hypothesis, re-rank, write, count word errors.

    lists ─ nbest.read_* ─► hypotheses (words, acoustic, list LM, nwords; log10)
      ─ the words the LM scores: all but SRILM's pause `-pau-` and the --noise-vocab words,
        which SRILM's `ngram -nbest` leaves out of the LM score too (its non-events)
      ─ words to ids (unknown words: <unk> with --unk, else an error naming the line)
      ─ sentence_scores.score_sentences (prefix tree, batches) ─► ln p per token
      ─ [--arpa: log_probs.interpolate_linear per token with the ARPA model's ln p]
      ─ scores.combine_lm, scores.total_score ─► new ranking
      ─ Outputs (--out DIR: each list in its own format, and 1best.txt; else 1-best lines)
      ─ [--refs: wer.align_counts for the original and rescored 1-best and the oracle,
         summed by wer.WordErrorTally; on stdout with --out DIR, else on stderr, so that
         stdout holds only the 1-best lines]

SRILM lists are read, scored and written a group at a time (whole utterances, at most
GROUP_HYPOTHESES hypotheses), so that memory stays bounded whatever the number of lists;
a Kaldi text is one file and is read whole.

Split into jobs (--num-jobs J --job I, or the ranks of mpiexec; runtime/jobs.py), a job
rescores a contiguous block of the lists, balanced by the files' bytes (Kaldi: by the
hypotheses), writes its lists under their own names and its part of 1best.txt (Kaldi's
text, ac_cost, lm_cost) as 1best.txt.I, and prints the WER lines of its utterances
(`rwthlm-py wer-totals` sums those of the jobs). Under MPI rank 0 prints every rank's
lines, and the totals, and joins the parts into the files of one process.
"""

import contextlib
import dataclasses
import math
import os
import time

import numpy

from rwthlm_py.errors import InputError
from rwthlm_py.log_probs import LN10, interpolate_linear
from rwthlm_py.rescoring import nbest as formats
from rwthlm_py.rescoring.scores import combine_lm, ranking, total_score
from rwthlm_py.rescoring.sentence_scores import score_sentences, sentence_log_prob
from rwthlm_py.rescoring.wer import WordErrorTally, align_counts, read_references, remove_noise
from rwthlm_py.runtime.jobs import ONE_JOB, file_sizes
from rwthlm_py.text.textio import DEFAULT_ENCODING, atomic_directory, atomic_output, refuse_overwriting_inputs

GROUP_HYPOTHESES = 4096
ONE_BEST = "1best.txt"
KALDI_OUTPUTS = ("text", "ac_cost", "lm_cost")
PAUSE = "-pau-"  # SRILM's pause word (Vocab_Pause), never scored by its LMs


@dataclasses.dataclass
class Settings:
    lm_weight: float = 1.0
    word_penalty: float = 0.0
    nn_weight: float = 1.0
    lam: float = 1.0  # network weight against the ARPA model
    batch_size: int = 128
    share_prefixes: bool = True
    unk_penalty: float = 0.0  # ln(num_oovs + 1) with --unk, for the network's <unk>
    num_oovs: int = 0  # p(<unk>) of the ARPA model is divided by num_oovs + 1
    noise: frozenset = frozenset()  # words left out of the LM score and of the error counts
    encoding: str = DEFAULT_ENCODING  # of the lists read and written

    def scores(self, word):
        """Whether the LMs score `word`: SRILM's non-events (the pause and the noise words)
        are neither predicted nor a context."""
        return word != PAUSE and word not in self.noise

    def lm_words(self, words):
        return [word for word in words if self.scores(word)]


@dataclasses.dataclass
class Rescored:
    """The new scores of one list: per hypothesis the LM score used (log10), its total, the
    per-token log10 scores of the models (None without one), and the new order."""

    lm: list
    totals: list
    token_scores: list
    order: list


@dataclasses.dataclass
class Counts:
    utterances: int = 0
    hypotheses: int = 0
    words: int = 0
    network_oovs: int = 0
    arpa_oovs: int = 0


@dataclasses.dataclass
class ListSource:
    """Where the lists come from: SRILM files (read one by one) or Kaldi lists (read whole)."""

    paths: list
    kaldi_files: tuple = None
    kaldi_lists: list = None
    encoding: str = DEFAULT_ENCODING

    @property
    def format(self):
        return "kaldi" if self.kaldi_files else "srilm"

    def count_lists(self):
        return len(self.kaldi_lists) if self.kaldi_lists is not None else len(self.paths)

    def part(self, share):
        """The lists of this job's part (runtime.jobs.Share): a contiguous block, balanced by
        the files' bytes (SRILM) or the hypotheses (Kaldi)."""
        if share.count == 1:
            return self
        if self.kaldi_lists is not None:
            sizes = [len(nbest.hypotheses) for nbest in self.kaldi_lists]
            return dataclasses.replace(self, kaldi_lists=share.take(self.kaldi_lists, sizes))
        return dataclasses.replace(self, paths=share.take(self.paths, file_sizes(self.paths)))

    def lists(self):
        if self.kaldi_lists is not None:
            yield from self.kaldi_lists
            return
        seen = {}
        for path in self.paths:
            nbest = formats.read_srilm_list(path, self.encoding)
            if nbest.utterance in seen:
                raise InputError(f"utterance '{nbest.utterance}' has a list already: '{seen[nbest.utterance]}'", path)
            seen[nbest.utterance] = path
            yield nbest


NO_LISTS = "no n-best lists: give --nbest FILE|DIR, --nbest-files LIST or --kaldi TEXT AC LM"


def check_list_inputs(list_paths, listing, kaldi_files):
    """The errors of the list options alone, before any file is read."""
    if kaldi_files and (list_paths or listing):
        raise InputError("give either SRILM lists (--nbest, --nbest-files) or Kaldi files (--kaldi), not both")
    if not (list_paths or listing or kaldi_files):
        raise InputError(NO_LISTS)


def list_roles(list_paths, listing, kaldi_files):
    """The list files as (role, path) inputs, for textio.refuse_overwriting_inputs."""
    files = [("--kaldi", path) for path in kaldi_files or ()]
    if not kaldi_files:
        files += [("--nbest", path) for path in formats.list_files(list_paths)]
    return files + [("--nbest-files", listing)]


def open_lists(list_paths, listing, kaldi_files, encoding=DEFAULT_ENCODING):
    """The ListSource of the SRILM lists (paths, directories, a listing file) or Kaldi files."""
    check_list_inputs(list_paths, listing, kaldi_files)
    if kaldi_files:
        return ListSource([], tuple(kaldi_files), formats.read_kaldi_lists(*kaldi_files, encoding), encoding)
    paths = formats.list_files(list_paths, listing)
    if not paths:
        raise InputError(NO_LISTS)  # the directories hold none
    return ListSource(paths, encoding=encoding)


def groups(lists, size_of=lambda nbest: len(nbest.hypotheses)):
    """Whole lists, at most GROUP_HYPOTHESES hypotheses a group (one list may exceed it)."""
    group, size = [], 0
    for nbest in lists:
        if group and size + size_of(nbest) > GROUP_HYPOTHESES:
            yield group
            group, size = [], 0
        group.append(nbest)
        size += size_of(nbest)
    if group:
        yield group


# -- scoring ---------------------------------------------------------------------------------

def rescore_group(group, network, arpa, settings, counts):
    """The Rescored result of every list of the group."""
    token_scores = _model_token_scores(group, network, arpa, settings, counts)
    results = [_rank(nbest, scores, settings) for nbest, scores in zip(group, token_scores, strict=True)]
    counts.utterances += len(group)
    counts.hypotheses += sum(len(nbest.hypotheses) for nbest in group)
    counts.words += sum(len(h.words) for nbest in group for h in nbest.hypotheses)
    return results


def _model_token_scores(group, network, arpa, settings, counts):
    """Per list, per hypothesis: log10 scores of the words the LMs score and of </s>, or
    None without a model."""
    if network is None and arpa is None:
        return [[None] * len(nbest.hypotheses) for nbest in group]
    pairs = [(nbest, h) for nbest in group for h in nbest.hypotheses]
    if not pairs:
        return [[] for _ in group]
    words = [settings.lm_words(h.words) for _, h in pairs]
    log_probs = None
    if network is not None:
        sentences = [_word_ids(network.vocab, nbest, h, lm_words, counts)
                     for (nbest, h), lm_words in zip(pairs, words, strict=True)]
        log_probs = score_sentences(network, sentences, settings.batch_size, settings.share_prefixes,
                                    settings.unk_penalty)
    if arpa is not None:
        arpa_log_probs = [_arpa_log_probs(arpa, lm_words, settings, counts) for lm_words in words]
        log_probs = arpa_log_probs if log_probs is None else [
            interpolate_linear(nn, backoff, settings.lam)
            for nn, backoff in zip(log_probs, arpa_log_probs, strict=True)]
    if not numpy.isfinite(numpy.concatenate(log_probs)).all():
        for (nbest, h), lm_words, values in zip(pairs, words, log_probs, strict=True):
            _check_finite(nbest, h, lm_words, values)
    per_hypothesis = iter([values / LN10 for values in log_probs])
    return [[next(per_hypothesis) for _ in nbest.hypotheses] for nbest in group]


def _word_ids(vocab, nbest, hypothesis, words, counts):
    ids = []
    for word in words:
        word_id = vocab.index.get(word)
        if word_id == vocab.sb:
            raise InputError(f"the hypothesis has the sentence boundary '{word}' as a word", nbest.path,
                             hypothesis.line)
        if word_id is None:
            if vocab.unk is None:
                raise InputError(f"unknown word '{word}' (not in the network's vocabulary; --unk maps unknown "
                                 f"words to {vocab.unk_name or '<unk>'})", nbest.path, hypothesis.line)
            word_id = vocab.unk
            counts.network_oovs += 1
        ids.append(word_id)
    return ids


def _arpa_log_probs(arpa, words, settings, counts):
    values, unknown = arpa.sentence_log_probs(words, settings.num_oovs)
    counts.arpa_oovs += unknown
    return values


def _check_finite(nbest, hypothesis, words, values):
    if numpy.all(numpy.isfinite(values)):
        return
    position = int(numpy.flatnonzero(~numpy.isfinite(values))[0])
    word = words[position] if position < len(words) else "</s>"
    raise InputError(f"'{word}' has probability 0 under the models (not in the ARPA model, which has no "
                     "<unk>; give the network a weight with --lambda)", nbest.path, hypothesis.line)


def _rank(nbest, token_scores, settings):
    lm, totals = [], []
    for h, tokens in zip(nbest.hypotheses, token_scores, strict=True):
        model_lm = sentence_log_prob(tokens) if tokens is not None else None
        lm.append(combine_lm(model_lm, h.lm, settings.nn_weight))
        totals.append(total_score(h.acoustic, lm[-1], h.num_words, settings.lm_weight, settings.word_penalty))
    return Rescored(lm, totals, token_scores, ranking(totals))


# -- writing -------------------------------------------------------------------------------------

class Outputs:
    """Where results go: with a directory, each list in its own format (Kaldi: text,
    ac_cost, lm_cost) and 1best.txt, written into a temporary folder that is moved into the
    directory at the end (all results or none); else the 1-best lines on the console. A job
    of several (runtime.jobs.Share) writes its part of the shared files (1best.txt, Kaldi's
    three) under its job's name."""

    def __init__(self, directory, source, settings, console, share=ONE_JOB):
        self.directory, self.source, self.settings, self.console = directory, source, settings, console
        self.share = share
        self.stack = contextlib.ExitStack()
        self.staging = self.one_best = self.kaldi = None

    def __enter__(self):
        if self.directory is not None:
            self._refuse_overwriting_inputs()
            self.staging = self.stack.enter_context(atomic_directory(self.directory, self.console.note))
            if self.source.kaldi_files:
                self.kaldi = [self._output(name) for name in KALDI_OUTPUTS]
            self.one_best = self._output(ONE_BEST)
        return self

    def _output(self, name):
        return self.stack.enter_context(atomic_output(os.path.join(self.staging, self.share.output_name(name)),
                                                      encoding=self.settings.encoding))

    def shared_files(self):
        """The paths of the files that all lists share (1best.txt, Kaldi's three) under --out."""
        if self.directory is None:
            return []
        return [os.path.join(self.directory, name) for name in (KALDI_OUTPUTS if self.kaldi else ()) + (ONE_BEST,)]

    def __exit__(self, *exception):
        return self.stack.__exit__(*exception)

    def write(self, group, results):
        for nbest, result in zip(group, results, strict=True):
            best = nbest.hypotheses[result.order[0]].words if result.order else []
            line = " ".join([nbest.utterance] + best)
            if self.one_best is None:
                self.console.say(line)
                continue
            self.one_best.write(line + "\n")
            if self.kaldi is not None:
                self._write_kaldi(nbest, result)
            else:
                path = os.path.join(self.staging, os.path.basename(nbest.path))
                lm = result.lm if nbest.format != "nbest2" else _word_lm_scores(nbest, result, self.settings)
                formats.write_list(nbest, path, result.order, lm, result.totals, self.settings.encoding)

    def _write_kaldi(self, nbest, result):
        text, acoustic, lm = self.kaldi
        for h in result.order:
            hypothesis = nbest.hypotheses[h]
            text.write(" ".join([hypothesis.key] + hypothesis.words) + "\n")
            acoustic.write(f"{hypothesis.key} {formats.format_cost(hypothesis.acoustic)}\n")
            lm.write(f"{hypothesis.key} {formats.format_cost(result.lm[h])}\n")

    def _refuse_overwriting_inputs(self):
        """Before any scoring: no output may replace an input, and no two lists may share
        an output name."""
        if self.source.kaldi_files:
            outputs = list(zip(KALDI_OUTPUTS, self.source.kaldi_files, strict=True))  # three distinct names
        else:
            outputs = [(os.path.basename(given), given) for given in self.source.paths]
        first_with_name = {}
        for name, given in outputs:
            if name in first_with_name:
                raise InputError(f"has the file name of '{first_with_name[name]}': --out DIR would keep one "
                                 "of them (rename one, or rescore them into separate directories)", given)
            first_with_name[name] = given
        written = [(name, self.share.output_name(name)) for name, _ in outputs]
        refuse_overwriting_inputs([(f"--out's {name}", os.path.join(self.directory, job_name))
                                   for name, job_name in written],
                                  [(f"the list {given}", given) for _, given in outputs])


def _word_lm_scores(nbest, result, settings):
    """NBestList2.0: per word, the combined LM score (0 for a word the LM does not score),
    </s> folded into the last word."""
    scores = []
    for h, tokens in zip(nbest.hypotheses, result.token_scores, strict=True):
        listed = [formats.bytelog_to_log10(float(t.lm)) for t in h.tokens if t.is_word]
        model = listed if tokens is None else _per_word(h.words, settings, tokens)
        scores.append([combine_lm(m, old, settings.nn_weight) for m, old in zip(model, listed, strict=True)])
    return scores


def _per_word(words, settings, token_scores):
    """The model's log10 score of every word of a hypothesis, from the scores of the words
    it scored (then </s>): 0 for a pause or noise word, </s> added to the last word."""
    scored = iter(token_scores[:-1])
    per_word = [next(scored) if settings.scores(word) else 0.0 for word in words]
    if per_word:
        per_word[-1] += token_scores[-1]
    return per_word


# -- word error rates ------------------------------------------------------------------------------

def list_error_counts(errors, nbest, result):
    """The ErrorCounts of a list's first hypothesis (the recognizer's 1-best), its rescored
    1-best and its oracle (the hypothesis with the fewest errors), for the WordErrorTally
    `errors`; a list without hypotheses counts an empty 1-best."""
    reference = errors.reference(nbest.utterance)
    hypotheses = [remove_noise(h.words, errors.noise) for h in nbest.hypotheses] or [[]]
    counts = align_counts(reference, hypotheses)
    return counts[0], counts[result.order[0] if result.order else 0], min(counts, key=lambda c: c.errors)


# -- the command ------------------------------------------------------------------------------------

def run_nbest(source, network, arpa, settings, out_dir, references_path, console, share=ONE_JOB):
    """Rescores every list of `source`, or of this job's part of them (runtime.jobs.Share:
    under MPI rank 0 prints every rank's lines, the totals, and joins the shared files);
    returns the exit status."""
    errors = WordErrorTally(references_path, read_references(references_path, settings.encoding), settings.noise) \
        if references_path else None
    counts = Counts()
    part, worker = source.part(share), share.console(console)
    progress = console.progress("rescoring", part.count_lists(), unit="lists")
    start = time.perf_counter()
    with Outputs(out_dir, source, settings, worker, share) as outputs:
        for group in groups(part.lists()):
            results = rescore_group(group, network, arpa, settings, counts)
            outputs.write(group, results)
            if errors is not None:
                for nbest, result in zip(group, results, strict=True):
                    errors.add(*list_error_counts(errors, nbest, result))
            progress.update(len(group))
    progress.close()
    share.print_gathered(worker, console)
    share.join_parts(outputs.shared_files())
    counts = Counts(*share.sum(dataclasses.astuple(counts)))
    if errors is not None:
        errors.merge_ranks(share)
    for line in summary_lines(counts, time.perf_counter() - start, settings, network, arpa):
        console.note(line)
    if errors is not None:
        # stdout holds results of one kind: the 1-best lines, else the word error rates
        report = console.note if out_dir is None else console.say
        for line in errors.lines():
            report(line)
    return 0


def summary_lines(counts, seconds, settings, network, arpa):
    lines = [f"{counts.utterances} utterances, {counts.hypotheses} hypotheses, {counts.words} words"]
    if network is not None:
        lines.append(f"{counts.network_oovs} words not in the network's vocabulary were scored as <unk>"
                     + (f" (p divided by {settings.num_oovs + 1})" if settings.num_oovs else ""))
    if arpa is not None:
        lines.append(f"{counts.arpa_oovs} words not in the ARPA model's vocabulary"
                     + (" were scored as <unk>" if arpa.unk >= 0 else " (probability 0 there)"))
    rate = counts.hypotheses / seconds if seconds > 0 else math.inf
    lines.append(f"rescored in {seconds:.2f} s: {rate:.1f} hypotheses/s, "
                 f"{(counts.words + counts.hypotheses) / max(seconds, 1e-9):.0f} words/s")
    return lines
