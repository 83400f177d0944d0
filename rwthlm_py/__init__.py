"""rwthlm_py: word-level LSTM language models trained the way RWTH's rwthlm trains them.

`rwthlm_py.load(path)` gives a trained model to score and sample from in Python (see
rwthlm_py.api); it is imported on first use, so that the command line starts fast.
"""

__version__ = "0.1.0"
__all__ = ["LanguageModel", "SentenceScore", "load"]


def __getattr__(name):
    if name in __all__:
        from rwthlm_py import api

        return getattr(api, name)
    raise AttributeError(f"module 'rwthlm_py' has no attribute '{name}'")
