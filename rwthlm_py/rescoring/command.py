"""`rwthlm-py nbest`: read the lists, score every hypothesis, re-rank, write, measure WER.

    lists ─ nbest.read_* ─► hypotheses (words, acoustic, list LM, nwords; log10)
      ─ words to ids (unknown words: <unk> with --unk, else an error naming the line)
      ─ sentence_scores.score_sentences (prefix tree, batches) ─► ln p per token
      ─ [--arpa: scores.interpolate_linear per token with the ARPA model's ln p]
      ─ scores.combine_lm, scores.total_score ─► new ranking
      ─ nbest.write_* (--out DIR: each list in its own format, and 1best.txt)
      ─ [--refs: wer.align_counts for the original and rescored 1-best and the oracle]

Utterances are scored a group at a time (at most GROUP_HYPOTHESES hypotheses), so that
memory stays bounded whatever the number of lists.
"""

import dataclasses
import math
import os
import time

import numpy

from rwthlm_py.errors import InputError
from rwthlm_py.rescoring import nbest as formats
from rwthlm_py.rescoring.scores import LN10, combine_lm, interpolate_linear, ranking, total_score
from rwthlm_py.rescoring.sentence_scores import score_sentences, sentence_log_prob
from rwthlm_py.rescoring.wer import ErrorCounts, align_counts, remove_noise
from rwthlm_py.textio import atomic_output, read_lines, split_words

GROUP_HYPOTHESES = 4096


@dataclasses.dataclass
class Settings:
    lm_weight: float = 1.0
    word_penalty: float = 0.0
    nn_weight: float = 1.0
    lam: float = 1.0  # network weight against the ARPA model
    batch_size: int = 64
    share_prefixes: bool = True
    unk_penalty: float = 0.0  # ln(num_oovs + 1) with --unk, for the network's <unk>
    num_oovs: int = 0  # p(<unk>) of the ARPA model is divided by num_oovs + 1


@dataclasses.dataclass
class Rescored:
    """The new scores of one list: per hypothesis the LM score used (log10), its total, the
    per-token log10 scores of the model (None without one), and the new order."""

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


def read_lists(list_paths, listing, kaldi_files):
    """All n-best lists: SRILM files (paths, directories, a listing file) or Kaldi text and costs."""
    if kaldi_files:
        if list_paths or listing:
            raise InputError("give either SRILM lists (--nbest, --nbest-files) or Kaldi files, not both")
        return formats.read_kaldi_lists(*kaldi_files)
    paths = formats.list_files(list_paths, listing)
    if not paths:
        raise InputError("no n-best lists: give --nbest FILE|DIR..., --nbest-files LIST or the Kaldi files")
    lists, owner = [], {}
    for path in paths:
        nbest = formats.read_srilm_list(path)
        if nbest.utterance in owner:
            raise InputError(f"utterance '{nbest.utterance}' has a list already: '{owner[nbest.utterance]}'", path)
        owner[nbest.utterance] = path
        lists.append(nbest)
    return lists


def rescore(lists, network, arpa, settings, console, counts):
    """Rescored results of every list, in list order."""
    results = []
    progress = console.progress("rescoring", sum(
        sum(len(h.words) + 1 for h in nbest.hypotheses) for nbest in lists)) if network is not None else None
    for group in _groups(lists):
        token_scores = _model_token_scores(group, network, arpa, settings, counts, progress)
        for nbest, scores in zip(group, token_scores):
            results.append(_rank(nbest, scores, settings))
            counts.utterances += 1
            counts.hypotheses += len(nbest.hypotheses)
            counts.words += sum(len(h.words) for h in nbest.hypotheses)
    if progress is not None:
        progress.close()
    return results


def _groups(lists):
    group, size = [], 0
    for nbest in lists:
        if group and size + len(nbest.hypotheses) > GROUP_HYPOTHESES:
            yield group
            group, size = [], 0
        group.append(nbest)
        size += len(nbest.hypotheses)
    if group:
        yield group


def _model_token_scores(group, network, arpa, settings, counts, progress):
    """Per list, per hypothesis: log10 scores of its words and </s>, or None without a model."""
    if network is None and arpa is None:
        return [[None] * len(nbest.hypotheses) for nbest in group]
    log_probs = None
    if network is not None:
        sentences = [_word_ids(network.vocab, nbest, h, counts) for nbest in group for h in nbest.hypotheses]
        log_probs = score_sentences(network, sentences, settings.batch_size, settings.share_prefixes,
                                    settings.unk_penalty, progress)
    if arpa is not None:
        arpa_log_probs = []
        for nbest in group:
            for h in nbest.hypotheses:
                values, unknown = arpa.sentence_log10_probs(h.words)
                counts.arpa_oovs += unknown
                arpa_log_probs.append(_arpa_natural(values, unknown, settings, arpa, nbest, h))
        log_probs = arpa_log_probs if log_probs is None else [
            interpolate_linear(nn, backoff, settings.lam) for nn, backoff in zip(log_probs, arpa_log_probs)]
    per_hypothesis = [values / LN10 for values in log_probs]
    _check_finite(group, per_hypothesis)
    result, start = [], 0
    for nbest in group:
        result.append(per_hypothesis[start:start + len(nbest.hypotheses)])
        start += len(nbest.hypotheses)
    return result


def _arpa_natural(values, unknown, settings, arpa, nbest, hypothesis):
    """ln p of the ARPA model, with p(<unk>) divided by num_oovs + 1 for unknown words."""
    values = values * LN10
    if unknown and settings.num_oovs and arpa.unk >= 0:
        for position, word in enumerate(hypothesis.words):
            if word not in arpa.word_ids:
                values[position] -= math.log(settings.num_oovs + 1)
    return values


def _check_finite(group, per_hypothesis):
    start = 0
    for nbest in group:
        for h, values in zip(nbest.hypotheses, per_hypothesis[start:start + len(nbest.hypotheses)]):
            if not numpy.all(numpy.isfinite(values)):
                position = int(numpy.flatnonzero(~numpy.isfinite(values))[0])
                word = h.words[position] if position < len(h.words) else "</s>"
                raise InputError(f"'{word}' has probability 0 under the models (not in the ARPA model, "
                                 "which has no <unk>; give the network a weight with --lambda)", nbest.path, h.line)
        start += len(nbest.hypotheses)


def _word_ids(vocab, nbest, hypothesis, counts):
    ids = []
    for word in hypothesis.words:
        word_id = vocab.index.get(word)
        if word_id is None or word_id == vocab.sb:
            if word_id == vocab.sb:
                raise InputError(f"the hypothesis has the sentence boundary '{word}' as a word", nbest.path,
                                 hypothesis.line)
            if vocab.unk is None:
                raise InputError(f"unknown word '{word}' (not in the network's vocabulary; --unk maps unknown "
                                 f"words to {vocab.unk_name or '<unk>'})", nbest.path, hypothesis.line)
            word_id = vocab.unk
            counts.network_oovs += 1
        ids.append(word_id)
    return ids


def _rank(nbest, token_scores, settings):
    lm, totals = [], []
    for h, tokens in zip(nbest.hypotheses, token_scores):
        model_lm = sentence_log_prob(tokens) if tokens is not None else None
        lm.append(combine_lm(model_lm, h.lm, settings.nn_weight))
        totals.append(total_score(h.acoustic, lm[-1], h.num_words, settings.lm_weight, settings.word_penalty))
    return Rescored(lm, totals, token_scores, ranking(totals))


# -- writing -------------------------------------------------------------------------------------

def write_outputs(lists, results, directory, settings):
    """Each list in its own format under `directory`, and 1best.txt."""
    os.makedirs(directory, exist_ok=True)
    if lists[0].format == "kaldi":
        formats.write_kaldi(lists, directory, [r.order for r in results], [r.lm for r in results])
    else:
        for nbest, result in zip(lists, results):
            lm = result.lm if nbest.format != "nbest2" else _word_lm_scores(nbest, result, settings)
            formats.write_list(nbest, os.path.join(directory, os.path.basename(nbest.path)),
                               result.order, lm, result.totals)
    with atomic_output(os.path.join(directory, "1best.txt")) as out:
        for line in one_best_lines(lists, results):
            out.write(line + "\n")


def one_best_lines(lists, results):
    for nbest, result in zip(lists, results):
        yield " ".join([nbest.utterance] + nbest.hypotheses[result.order[0]].words)


def _word_lm_scores(nbest, result, settings):
    """NBestList2.0: per word, the combined LM score, </s> folded into the last word."""
    scores = []
    for h, tokens in zip(nbest.hypotheses, result.token_scores):
        listed = [formats.bytelog_to_log10(int(t.lm)) for t in h.tokens if t.is_word]
        model = list(tokens[:-1]) if tokens is not None else listed
        if tokens is not None and model:
            model[-1] += tokens[-1]
        scores.append([combine_lm(m, old, settings.nn_weight) for m, old in zip(model, listed)])
    return scores


# -- word error rates ------------------------------------------------------------------------------

def read_references(path):
    references = {}
    for line, text in read_lines(path):
        fields = split_words(text)
        if not fields:
            continue
        if fields[0] in references:
            raise InputError(f"utterance '{fields[0]}' has a second reference", path, line)
        references[fields[0]] = fields[1:]
    return references


def read_noise(path):
    return {word for _, text in read_lines(path) for word in split_words(text)}


def word_error_rates(lists, results, references, references_path, noise):
    """ErrorCounts of the original 1-best (the list's first hypothesis), the rescored 1-best
    and the oracle (the hypothesis with the fewest errors), summed over the utterances."""
    original, rescored, oracle = ErrorCounts(), ErrorCounts(), ErrorCounts()
    for nbest, result in zip(lists, results):
        if nbest.utterance not in references:
            raise InputError(f"no reference for utterance '{nbest.utterance}'", references_path)
        reference = remove_noise(references[nbest.utterance], noise)
        counts = align_counts(reference, [remove_noise(h.words, noise) for h in nbest.hypotheses])
        original.add(counts[0])
        rescored.add(counts[result.order[0]])
        oracle.add(min(counts, key=lambda c: c.errors))
    return original, rescored, oracle


def summary_lines(counts, seconds, settings, network_used):
    lines = [f"{counts.utterances} utterances, {counts.hypotheses} hypotheses, {counts.words} words"]
    if network_used:
        lines.append(f"{counts.network_oovs} words not in the network's vocabulary were scored as <unk>"
                     + (f" (p divided by {settings.num_oovs + 1})" if settings.num_oovs else ""))
        rate = counts.hypotheses / seconds if seconds > 0 else math.inf
        lines.append(f"scored in {seconds:.2f} s: {rate:.1f} hypotheses/s, "
                     f"{(counts.words + counts.hypotheses) / max(seconds, 1e-9):.0f} words/s")
    return lines


def run_nbest(lists, network, arpa, settings, out_dir, references_path, noise_path, console):
    """The whole command after the inputs are open; returns the exit status."""
    references = read_references(references_path) if references_path else None
    noise = read_noise(noise_path) if noise_path else set()
    counts = Counts()
    start = time.perf_counter()
    results = rescore(lists, network, arpa, settings, console, counts)
    seconds = time.perf_counter() - start
    if out_dir is not None:
        write_outputs(lists, results, out_dir, settings)
    else:
        for line in one_best_lines(lists, results):
            console.say(line)
    for line in summary_lines(counts, seconds, settings, network is not None):
        console.note(line)
    if arpa is not None:
        console.note(f"{counts.arpa_oovs} words not in the ARPA model's vocabulary"
                     + (" were scored as <unk>" if arpa.unk >= 0 else " (probability 0 there)"))
    if references is not None:
        for name, errors in zip(("original 1-best", "rescored 1-best", "oracle"),
                                word_error_rates(lists, results, references, references_path, noise)):
            console.say(f"{name + ':':17s} WER {errors.format()}")
    return 0
