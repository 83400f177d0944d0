"""N-best rescoring: list formats (nbest), scoring hypotheses with the network through a
prefix tree (sentence_scores), the score formulas (scores), word error rates (wer) and the
command that ties them together (command)."""
