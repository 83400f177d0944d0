"""Perplexity: scoring a corpus with rwthlm's counting (§6.5) and printing the results.

PPL = exp(-sum ln p / N), N = every predicted token: all words, <unk> included, and one
<sb> per line; context tokens are not predicted. The same wrapping, batching and state
reset as in training are used (stream mode carries the state from batch to batch;
--feedforward resets the recurrent layers at every step but keeps n-gram histories).

With --arpa each word's probability is interpolated with an ARPA model's (interpolate_with_arpa).
Besides rwthlm's `perplexity:` lines this prints SRILM's `ngram -ppl` summary, whose
ppl = 10^(-logprob10 / (words - OOVs + sentences)) equals rwthlm's value, and ppl1 divides
by the words less the OOVs alone; the OOVs are the words left out of the text because the
vocabulary does not have them (SRILM's convention, `rwthlm-py ppl` without --unk). Per-word
`--verbose` lines come in text order whatever the batch size, an OOV as SRILM prints it.
"""

import dataclasses
import math

import numpy

from rwthlm_py.errors import InputError
from rwthlm_py.log_probs import LN10, interpolate_linear
from rwthlm_py.model.network import select_state
from rwthlm_py.output.reporting import perplexity_of
from rwthlm_py.runtime.jobs import ONE_JOB
from rwthlm_py.text import data


@dataclasses.dataclass
class Scores:
    log_prob: float  # natural log, summed over all predicted tokens
    num_targets: int
    num_sb: int  # predicted sentence-boundary tokens
    num_sentences: int
    unk_count: int
    token_log_probs: numpy.ndarray = None  # ln p per stream position, NaN where not predicted
    oov_count: int = 0  # words left out, not scored

    @property
    def perplexity(self):
        return perplexity_of(-self.log_prob, self.num_targets)

    @property
    def num_words(self):
        return self.num_targets - self.num_sb


def score_corpus(network, corpus, sequences, batch_size, carry_state=False, unk_penalty=0.0,
                 feedforward=False, keep_tokens=False, progress=None, share=ONE_JOB):
    """Scores every target of `sequences`; returns Scores (host float64 sums).

    Under MPI (`share`, runtime.jobs.Share) the ranks score contiguous blocks of the
    batches and rank 0 adds up the batches' sums in batch order, as one process adds them,
    and returns the Scores of all (the other ranks None); with `carry_state` each batch
    starts from the state the one before left, so rank 0 scores them all."""
    token_log_probs = numpy.full(len(corpus.stream), numpy.nan) if keep_tokens else None
    sequences = _sequences_of_job(sequences, batch_size, carry_state, share)
    if progress is not None and share.merges:  # rank 0's progress: its own part
        progress.total = max(int((sequences.end - sequences.first).sum()), 1)
    batch_sums = []  # (sum ln p, targets, sentence-boundary targets) of every batch scored here
    state = None
    for batch in data.batches(corpus, sequences, batch_size):
        if carry_state:
            state = network_state_for(state, batch.batch_size)
        else:
            state = None
        if feedforward:
            logp, state = feedforward_log_probs(network, batch, state, unk_penalty)
        else:
            logp, state = network.log_probs(batch, state, unk_penalty)
        logp = network.backend.to_numpy(logp).astype(numpy.float64)
        targets = batch.targets.ravel()[batch.valid]
        batch_sums.append((float(logp.sum()), len(logp), int(numpy.count_nonzero(targets == corpus.sb))))
        if keep_tokens:
            token_log_probs[batch.positions.ravel()[batch.valid]] = logp
        if progress is not None:
            progress.update(len(logp), -batch_sums[-1][0])
    if share.merges:
        batch_sums, token_log_probs = _gathered(share, batch_sums, token_log_probs)
        if batch_sums is None:
            return None
    total, count, sb_count = 0.0, 0, 0
    for batch_total, batch_count, batch_sb in batch_sums:  # in batch order: one process's sum, bit for bit
        total += batch_total
        count += batch_count
        sb_count += batch_sb
    return Scores(total, count, sb_count, corpus.num_lines, corpus.unk_count, token_log_probs, corpus.oov_count)


def _sequences_of_job(sequences, batch_size, carry_state, share):
    """The sequences of this rank's block of whole batches (all of them without MPI, and on
    rank 0 with carry_state, where the others get none)."""
    if not share.merges:
        return sequences
    if carry_state:
        return sequences if share.is_root else sequences.take(numpy.arange(0))
    first, end = share.block([1] * -(-len(sequences) // batch_size))
    return sequences.take(numpy.arange(first * batch_size, min(end * batch_size, len(sequences))))


def _gathered(share, batch_sums, token_log_probs):
    """On rank 0: every rank's batch sums in batch order and the token log-probabilities of
    all; (None, None) on the others."""
    kept = None
    if token_log_probs is not None:
        positions = numpy.flatnonzero(~numpy.isnan(token_log_probs))
        kept = (positions, token_log_probs[positions])
    gathered = share.ranks.gather((batch_sums, kept))
    if gathered is None:
        return None, None
    for _, rank_tokens in gathered[1:]:
        if rank_tokens is not None:
            token_log_probs[rank_tokens[0]] = rank_tokens[1]
    return [item for rank_sums, _ in gathered for item in rank_sums], token_log_probs


def network_state_for(state, batch_size):
    """The carried state, cut to the columns of the next (possibly smaller) batch."""
    return select_state(state, slice(0, batch_size))


def feedforward_log_probs(network, batch, state, unk_penalty):
    """rwthlm's --feedforward scoring: the recurrent layers restart at every step."""
    xp = network.xp
    logp = xp.zeros(batch.num_targets, dtype=network.backend.dtype)
    order = numpy.empty(batch.inputs.size, dtype=numpy.int64)
    order[batch.valid] = numpy.arange(batch.num_targets)
    for step, flat_positions in data.time_slices(batch):
        slice_logp, state = network.log_probs(step, network.without_recurrence(state), unk_penalty)
        logp[xp.asarray(order[flat_positions])] = slice_logp
    return logp, state


def interpolate_with_arpa(scores, corpus, arpa, lam, num_oovs=0):
    """The scores with every ln p replaced by ln(lam p_nn + (1 - lam) p_arpa).

    The ARPA model scores each line as a sentence (<s> words </s>, its </s> at the line's
    <sb>); a word it does not know is its <unk>, with p divided by num_oovs + 1. Returns
    (new Scores, number of words the ARPA model does not know).
    """
    if corpus.line_words is None:
        raise ValueError("the corpus was read without its words (read_corpus keep_words)")
    token_log_probs = scores.token_log_probs.copy()
    unknown_total = 0
    # the words as written: in the ids, words outside the network's vocabulary are <unk>
    for line, words in enumerate(corpus.line_words):
        values, unknown = arpa.sentence_log_probs(words, num_oovs)
        unknown_total += unknown
        start, end = corpus.line_starts[line], corpus.line_starts[line + 1]
        predicted = ~numpy.isnan(token_log_probs[start:end])
        combined = interpolate_linear(token_log_probs[start:end][predicted], values[predicted], lam)
        if not numpy.all(numpy.isfinite(combined)):
            raise InputError("a word has probability 0 under the models (not in the ARPA model, which "
                             "has no <unk>; give the network a weight with --lambda)", corpus.path, line + 1)
        token_log_probs[start:end][predicted] = combined
    predicted = ~numpy.isnan(token_log_probs)
    total = math.fsum(token_log_probs[predicted].tolist())
    return dataclasses.replace(scores, log_prob=total, token_log_probs=token_log_probs), unknown_total


def verbose_lines(scores, corpus, vocab):
    """rwthlm's per-word lines, `\\tp( w | ... ) \\t = [1gram] P [ LOG10P ]`, in text order;
    an OOV left out of the text `\\tp( w | ... ) \\t = [OOV] 0 [ -inf ]`, as SRILM marks it."""
    predicted = numpy.flatnonzero(~numpy.isnan(scores.token_log_probs))
    words = vocab.words
    oovs = iter(corpus.oovs)
    oov = next(oovs, None)
    for position in predicted.tolist():
        while oov is not None and oov[0] <= position:
            yield f"\tp( {oov[1]} | ... ) \t = [OOV] 0 [ -inf ]"
            oov = next(oovs, None)
        logp = scores.token_log_probs[position]
        word = words[corpus.stream[position]]
        yield f"\tp( {word} | ... ) \t = [1gram] {math.exp(logp):.8f} [ {logp / LN10:.5f} ]"
    for _, word in ([oov] if oov is not None else []) + list(oovs):
        yield f"\tp( {word} | ... ) \t = [OOV] 0 [ -inf ]"


def summary_lines(scores, path):
    """SRILM's `ngram -ppl` summary and rwthlm's `perplexity:` lines (the value last)."""
    logprob = scores.log_prob / LN10
    denominator = scores.num_targets
    ppl = _power10(-logprob / denominator) if denominator > 0 else "undefined"
    ppl1 = _power10(-logprob / scores.num_words) if scores.num_words > 0 else "undefined"
    lines = [
        f"file {path}: {scores.num_sentences} sentences, {scores.num_words + scores.oov_count} words, "
        f"{scores.oov_count} OOVs",
        f"0 zeroprobs, logprob= {logprob:.6g} ppl= {_g(ppl)} ppl1= {_g(ppl1)}",
    ]
    if scores.unk_count:
        lines.append(f"{scores.unk_count} words not in the vocabulary were scored as <unk>")
    lines += ["perplexity:", f"{scores.perplexity:.20f}"]
    return lines


def _power10(exponent):
    return 10.0 ** exponent if exponent < 308 else math.inf


def _g(value):
    return value if isinstance(value, str) else f"{value:.6g}"
