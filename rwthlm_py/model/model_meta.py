"""The metadata of a model file (the `meta` member of checkpoint.py's archive): read within
bounds and checked whole, so that no command trusts a field that was not checked.

- Bounds: at most MAX_META_BYTES of JSON (checked before the member is read), nested at most
  MAX_DEPTH levels. json's parser recurses once per level, so deeper input would end in a
  RecursionError, as would any later walk over the parsed value.
- Fields: each of its type and range (META_FIELDS; files written before a field existed
  lack the OPTIONAL_META_FIELDS).
- The network string parses, and tied weights are possible with it and the vocabulary.
  Whether the arrays fit it is checked when they are loaded (checkpoint.load_weights).
- The vocabulary is one that rwthlm_py writes: distinct words that a text can hold, the
  sentence boundary among them (the --map-sb of the recorded options), classes in
  vocabulary.remap's layout, and its sha256 (`vocabulary_sha256`, Vocabulary.fingerprint)
  the one stored with it: a file whose words were swapped, renamed or duplicated after it
  was written is refused, not scored.
"""

import json
import math
import re

from rwthlm_py.errors import InputError
from rwthlm_py.model.network import check_tying
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.text.textio import split_words
from rwthlm_py.text.vocabulary import Vocabulary

FORMAT = "rwthlm_py model"
VERSION = 1
# Room for a vocabulary of about ten million words (some 20 bytes of JSON each).
MAX_META_BYTES = 256 * 1024 * 1024
# save_model writes 4 levels (the metadata, epoch_in_progress, its recurrent state, a layer's
# state); the bound leaves room for more.
MAX_DEPTH = 32
_SHA256 = re.compile(r"[0-9a-f]{64}")


def check_meta_size(size, path):
    """Refuses a metadata member of more than MAX_META_BYTES, before it is read."""
    if size > MAX_META_BYTES:
        raise InputError(f"corrupt model file (its metadata is {size:,} bytes; at most {MAX_META_BYTES:,} "
                         "are read)", path)


def parse_meta(raw, path):
    """The metadata object of the JSON bytes `raw`; an InputError for anything else."""
    try:
        meta = json.loads(raw.decode())
    except RecursionError:
        raise _too_deep(path) from None
    except UnicodeDecodeError:
        raise InputError("corrupt model file (its metadata is not UTF-8 text)", path) from None
    except json.JSONDecodeError as error:
        raise InputError(f"corrupt model file (its metadata is not JSON: {error})", path) from None
    except ValueError:  # what else json.loads raises: an integer longer than int() converts
        raise InputError("corrupt model file (its metadata holds a number of too many digits)", path) from None
    if _depth(meta) > MAX_DEPTH:
        raise _too_deep(path)
    return meta


def _too_deep(path):
    return InputError(f"corrupt model file (its metadata is nested deeper than {MAX_DEPTH} levels)", path)


def _depth(value):
    """How deeply lists and objects nest in `value` (a scalar: 0), without recursion."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        value, level = pending.pop()
        children = list(value.values()) if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if _CONTAINERS & set(map(type, children)):  # the type set first: a vocabulary's lists hold none
            pending.extend((child, level + 1) for child in children if type(child) in _CONTAINERS)
    return deepest


_CONTAINERS = {list, dict}  # what json.loads makes of arrays and objects


def check_meta(meta, path):
    """Checks parsed metadata: its format and version, every field, and that the fields
    agree with each other. Returns its Vocabulary."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputError("not an rwthlm_py model file", path)
    if meta.get("version") != VERSION:
        raise InputError(f"model file format version {_shown(meta.get('version'))}; this rwthlm_py reads "
                         f"version {VERSION}", path)
    for name, (accepts, wanted) in META_FIELDS.items():
        if name not in meta and name not in OPTIONAL_META_FIELDS:
            raise InputError(f"corrupt model file (its metadata has no '{name}')", path)
        if name in meta and not accepts(meta[name]):
            raise InputError(f"corrupt model file (metadata '{name}' is {_shown(meta[name])}: it must be {wanted})",
                             path)
    vocab = _vocabulary(meta, path)
    _check_network(meta, vocab, path)
    _check_sentence_boundary(meta, path)
    return vocab


def _shown(value):
    return json.dumps(value)[:60]


def _vocabulary(meta, path):
    """The Vocabulary of checked metadata, itself checked against its stored sha256."""
    entry = meta["vocabulary"]
    words, classes = entry["words"], entry["classes"]
    _check_words(words, entry["sb"], path)
    if max(classes) >= len(words):  # before numpy and bincount see a class number of any size
        raise InputError(f"corrupt model file (its vocabulary has class {max(classes)} for {len(words)} words)", path)
    try:
        vocab = Vocabulary(words, classes, entry["sb"])
    except ValueError as error:
        raise InputError(f"corrupt model file (its vocabulary's {error})", path) from None
    if vocab.fingerprint() != meta["vocabulary_sha256"]:
        raise InputError("corrupt model file (its vocabulary does not match the vocabulary_sha256 stored with it: "
                         "its words or classes were changed after it was written)", path)
    return vocab


def _check_words(words, sb, path):
    """Distinct words, each one that a text can hold, the sentence boundary among them."""
    if not _all_words(words):
        odd = next(word for word in words if not _all_words([word]))
        raise InputError(f"corrupt model file (its vocabulary holds {_shown(odd)}, which no text can hold as a "
                         "word)", path)
    distinct = set(words)
    if len(distinct) != len(words):
        seen = set()
        twice = next(word for word in words if word in seen or seen.add(word))
        raise InputError(f"corrupt model file (its vocabulary holds '{twice}' twice)", path)
    if sb not in distinct:
        raise InputError(f"corrupt model file (its sentence boundary '{sb}' is not in its vocabulary)", path)


def _all_words(words):
    """Whether every entry is a word as texts are split (not empty, no ASCII whitespace) and
    text in Unicode (no lone surrogate, which JSON can spell): one split of them all tells."""
    joined = "\n".join(words)
    try:
        joined.encode()
    except UnicodeEncodeError:
        return False
    return split_words(joined) == words


def _check_sentence_boundary(meta, path):
    """Training refuses a model whose boundary is not its --map-sb, so a file it wrote has
    the one its options record (the sha256 covers the words, not which one is the boundary)."""
    recorded, sb = meta["options"].get("map_sb"), meta["vocabulary"]["sb"]
    if isinstance(recorded, str) and recorded != sb:
        raise InputError(f"corrupt model file (its sentence boundary is '{sb}', but it was trained with --map-sb "
                         f"'{recorded}')", path)


def _check_network(meta, vocab, path):
    try:
        spec = parse_network(meta["network"])
    except InputError as error:
        raise InputError(f"corrupt model file ({error.message})", path) from None
    if meta.get("tie_weights", False):
        try:
            check_tying(spec, vocab)
        except InputError as error:
            raise InputError(f"corrupt model file (its weights are tied, but {error.message})", path) from None


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _is_vocabulary(value):
    """Words (strings), as many classes (integers >= 0), the sentence boundary (a string).
    The sets of types are taken in C: this runs on every read of vocabularies of millions."""
    return (isinstance(value, dict) and isinstance(value.get("words"), list) and isinstance(value.get("sb"), str)
            and isinstance(value.get("classes"), list) and len(value["classes"]) == len(value["words"]) > 0
            and set(map(type, value["words"])) == {str}
            and set(map(type, value["classes"])) == {int} and min(value["classes"]) >= 0)


META_FIELDS = {  # name: (test, what it must be)
    "network": (lambda value: isinstance(value, str), "a network string"),
    "bias": (lambda value: isinstance(value, bool), "true or false"),
    "vocabulary": (_is_vocabulary, "words, a class (an integer >= 0) per word, and the sentence boundary"),
    "vocabulary_sha256": (lambda value: isinstance(value, str) and _SHA256.fullmatch(value) is not None,
                          "the sha256 of the vocabulary (64 hexadecimal digits)"),
    "epoch": (lambda value: _is_int(value) and value >= 0, "an integer >= 0"),
    "learning_rate": (lambda value: _is_number(value) and value > 0, "a finite number > 0"),
    "best_perplexity": (lambda value: value is None or _is_number(value) and value >= 1,
                        "null or a finite number >= 1"),
    "options": (lambda value: isinstance(value, dict), "an object"),
    "tie_weights": (lambda value: isinstance(value, bool), "true or false"),
    "halvings_in_a_row": (lambda value: _is_int(value) and value >= 0, "an integer >= 0"),
}
# files written before --tie-weights and --stop-after-halvings existed have none
OPTIONAL_META_FIELDS = {"tie_weights", "halvings_in_a_row"}
