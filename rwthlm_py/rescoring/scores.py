"""The formulas of rescoring, in one place.

N-best scores are log10 probabilities (SRILM's unit; Kaldi costs are converted on reading):

    LM    = nn_weight * LM_model + (1 - nn_weight) * LM_list       log-linear; nn_weight 0 keeps
                                                                  the list's own score, 1 the model's
    total = acoustic + lm_weight * LM + word_penalty * nwords     SRILM's NBestHyp::reweight

A hypothesis's LM_model is the sum over its words and the final sentence boundary of

    ln p(w|h) = ln(lam * p_nn(w|h) + (1 - lam) * p_arpa(w|h))      per-word linear interpolation

(just ln p_nn without --arpa), converted to log10. Ranking sorts by total, best first;
equal totals keep the list's order.
"""

import math

import numpy

LN10 = math.log(10.0)


def interpolate_linear(nn_log_probs, arpa_log_probs, lam):
    """ln(lam e^nn + (1 - lam) e^arpa) per word; lam 1 and 0 give either side exactly."""
    if lam == 1.0:
        return numpy.asarray(nn_log_probs, dtype=numpy.float64)
    if lam == 0.0:
        return numpy.asarray(arpa_log_probs, dtype=numpy.float64)
    with numpy.errstate(divide="ignore"):
        return numpy.logaddexp(math.log(lam) + numpy.asarray(nn_log_probs, dtype=numpy.float64),
                               math.log1p(-lam) + numpy.asarray(arpa_log_probs, dtype=numpy.float64))


def combine_lm(model_lm, list_lm, nn_weight):
    """The LM score used in the total (log10); with nn_weight 0 the model is not needed."""
    if nn_weight == 0.0:
        return list_lm
    if nn_weight == 1.0:
        return model_lm
    return nn_weight * model_lm + (1.0 - nn_weight) * list_lm


def total_score(acoustic, lm, num_words, lm_weight, word_penalty):
    """The total; a weight of 0 leaves its score out, also an LM score of -inf (SRILM's
    probability 0), which would otherwise make the total NaN."""
    weighted_lm = lm_weight * lm if lm_weight else 0.0
    return acoustic + weighted_lm + word_penalty * num_words


def ranking(totals):
    """Hypothesis indices, best total first; ties keep their original order."""
    return sorted(range(len(totals)), key=lambda h: -totals[h])
