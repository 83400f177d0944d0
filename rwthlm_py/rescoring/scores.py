"""The formulas of rescoring, in one place.

N-best scores are log10 probabilities (SRILM's unit; Kaldi costs are converted on reading):

    LM    = nn_weight * LM_model + (1 - nn_weight) * LM_list       log-linear; nn_weight 0 keeps
                                                                  the list's own score, 1 the model's
    total = acoustic + lm_weight * LM + word_penalty * nwords     SRILM's NBestHyp::reweight

A hypothesis's LM_model is the sum over its words and the final sentence boundary of

    ln p(w|h) = ln(lam * p_nn(w|h) + (1 - lam) * p_arpa(w|h))      per-word linear interpolation

(log_probs.interpolate_linear; just ln p_nn without --arpa), converted to log10. Ranking
sorts by total, best first; equal totals keep the list's order.

Lattice scores are costs, negated natural logs (rwthlm §7.3). A link with acoustic
log-probability a and LM log-probability l (the lattice's own, or the new one) costs

    link_cost = -acoustic_scale * a - lm_scale * l - word_penalty [LM-scored]

where a link is LM-scored when its LM score in the lattice is not 0 (silence, noise and
epsilon links have 0 and pay no word penalty); a path costs the sum over its links, and
the least is the best.
"""

from collections.abc import Sequence


def combine_lm(model_lm: float, list_lm: float, nn_weight: float) -> float:
    """The LM score used in the total (log10); with nn_weight 0 the model is not needed."""
    if nn_weight == 0.0:
        return list_lm
    if nn_weight == 1.0:
        return model_lm
    return nn_weight * model_lm + (1.0 - nn_weight) * list_lm


def total_score(acoustic: float, lm: float, num_words: int, lm_weight: float, word_penalty: float) -> float:
    """The total; a weight of 0 leaves its score out, also an LM score of -inf (SRILM's
    probability 0), which would otherwise make the total NaN."""
    weighted_lm = lm_weight * lm if lm_weight else 0.0
    return acoustic + weighted_lm + word_penalty * num_words


def link_cost(acoustic: float, lm_log_prob: float | None, lm_scored: bool, acoustic_scale: float = 1.0,
              lm_scale: float = 1.0, word_penalty: float = 0.0) -> float:
    """The cost of one link (word_penalty in natural-log units). lm_log_prob None leaves the
    LM term out: the search adds it itself, once the network has computed it."""
    cost = -acoustic_scale * acoustic
    if lm_log_prob is not None:
        cost -= lm_scale * lm_log_prob
    return cost - (word_penalty if lm_scored else 0.0)


def ranking(totals: Sequence[float]) -> list[int]:
    """Hypothesis indices, best total first; ties keep their original order."""
    return sorted(range(len(totals)), key=lambda h: -totals[h])
