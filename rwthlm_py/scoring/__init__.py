"""A trained network used forwards: the perplexity of a text with rwthlm's and SRILM's
printed lines, and sentences sampled from it."""
