"""rwthlm_py: word-level LSTM language models trained the way RWTH's rwthlm trains them."""

__version__ = "0.1.0"
