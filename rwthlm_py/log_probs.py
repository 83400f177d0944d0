"""Log-probabilities as every part of the toolkit combines them: natural logs, with log10
(SRILM's and ARPA's unit) one division by LN10 away.

    log10 p = ln p / LN10
    ln p(w|h) = ln(lam * e^nn + (1 - lam) * e^arpa)       interpolate_linear, per word
    ln p(<unk>) -= ln(num_oovs + 1)                       unk_penalty: <unk> stands for
                                                          num_oovs + 1 words, p shared by them
"""

import math

import numpy
from numpy.typing import ArrayLike

LN10 = math.log(10.0)


def interpolate_linear(nn_log_probs: ArrayLike, arpa_log_probs: ArrayLike, lam: float) -> numpy.ndarray:
    """ln(lam e^nn + (1 - lam) e^arpa) per word; lam 1 and 0 give either side exactly."""
    if lam == 1.0:
        return numpy.asarray(nn_log_probs, dtype=numpy.float64)
    if lam == 0.0:
        return numpy.asarray(arpa_log_probs, dtype=numpy.float64)
    with numpy.errstate(divide="ignore"):
        return numpy.logaddexp(math.log(lam) + numpy.asarray(nn_log_probs, dtype=numpy.float64),
                               math.log1p(-lam) + numpy.asarray(arpa_log_probs, dtype=numpy.float64))


def unk_penalty(num_oovs: int, unk: bool = True) -> float:
    """ln(num_oovs + 1), subtracted from ln p(<unk>); 0 where `unk` is false: the network's
    <unk> is divided only with --unk, as in rwthlm (an ARPA model's <unk> always is)."""
    return math.log(num_oovs + 1) if unk else 0.0
