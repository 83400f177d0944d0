"""What an utterance is called, each format's rule in one place. The rules differ on
purpose, as the tools that read each name expect it:

    utterance_id(path)     dir/sw_4390-A.0.nbest.gz -> sw_4390-A: the id that finds the
                           reference (--refs) of an SRILM n-best list or a lattice file: the
                           file name without its directory and from its first dot on, as
                           SRILM's tools derive it from a list's name
    kaldi_utterance(key)   spk-1-3 -> spk-1: a Kaldi n-best key `<utt-id>-<n>` cut at its last
                           dash, as nbest-to-lattice cuts it (utt-ids may hold dashes)
    slf_utterance(path)    dir/x.lat.gz -> dir/x: UTTERANCE= of an expanded lattice, the input
                           path without `.gz` and its last extension (rwthlm's)
    ctm_name(path)         dir/x.lat.gz -> dir/x.lat: the first field of CTM lines, the input
                           path without `.gz` (rwthlm's)
"""

import os


def utterance_id(path):
    """SRILM's utterance id of a hypothesis file: its name up to the first dot."""
    return os.path.basename(os.fspath(path)).split(".", 1)[0]


def kaldi_utterance(key):
    """The utt-id of a Kaldi key `<utt-id>-<n>`; None for a key not of that form."""
    utterance, _, rank = key.rpartition("-")
    return utterance if utterance and rank.isdigit() else None


def slf_utterance(path):
    """x.lat.gz -> x, dir/x.lat -> dir/x, dir/x -> dir/x."""
    name = _without_gz(path)
    stem, extension = os.path.splitext(name)
    return stem if extension else name


def ctm_name(path):
    """x.lat.gz -> x.lat, dir/x.lat -> dir/x.lat."""
    return _without_gz(path)


def _without_gz(path):
    return path[:-3] if path.endswith(".gz") else path
