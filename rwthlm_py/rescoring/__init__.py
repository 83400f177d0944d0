"""Rescoring a recognizer's hypotheses with the network. Shared by both: the score
formulas (scores), sentences scored through a prefix tree (sentence_scores), word error
rates and their tally (wer), and the names of utterances (utterances). N-best lists: their
formats (nbest) and the command (nbest_command). HTK lattices: reading and writing them
(htk_lattice), their topology (lattice_topology), the expansion by LM history
(lattice_expansion), the search (lattice_search), oracle paths (lattice_oracle) and the
command (lattice_command)."""
