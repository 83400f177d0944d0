"""The vocabulary: words, their classes, the sentence boundary `<sb>` and the unknown word.

rwthlm's rules (§4.2, §4.4, §5.1): a vocabulary file has one `word` or `word class` entry
per line (gzip allowed); without a class column every word is its own class; `<sb>` is
added in a class of its own when missing. Words are then renumbered ("remapped") by the key
(class size, class id, line number), so that the single-word classes come first (the
"shortlist", ids 0..S-1, which need no word-level softmax) and every other class is a
contiguous id range, smallest classes first. Classes are renumbered in the same order.

Not rwthlm: malformed, duplicate or mixed one- and two-column entries are errors naming the
line, and a `<sb>` that already occurs in the training text is handled.
"""

import hashlib

import numpy

from rwthlm_py.errors import InputError
from rwthlm_py.text.textio import DEFAULT_ENCODING, atomic_output, read_lines, split_words


class Vocabulary:
    """Words in network order with their classes.

    words[i] is the word with network index i; word_class[i] its class (0..C-1);
    class_start[c] and class_size[c] the id range of class c; classes 0..S-1 are the
    single-word shortlist, so word_class[i] == i for i < S.
    """

    def __init__(self, words, classes, sb="<sb>", unk=None):
        self.words = list(words)
        self.word_class = numpy.asarray(classes, dtype=numpy.int64)
        self.index = {word: position for position, word in enumerate(self.words)}
        sizes = numpy.bincount(self.word_class, minlength=self.word_class.max() + 1)
        self.class_size = sizes
        self.class_start = numpy.concatenate([[0], numpy.cumsum(sizes)[:-1]])
        self.num_classes = len(sizes)
        self.shortlist_size = int(numpy.sum(sizes == 1))
        self.sb_name = sb
        self.sb = self.index[sb]
        self.unk_name = unk
        self.unk = None if unk is None else self.index[unk]
        self._check_layout()

    def __len__(self):
        return len(self.words)

    def _check_layout(self):
        expected = numpy.repeat(numpy.arange(self.num_classes), self.class_size)
        if not numpy.array_equal(expected, self.word_class):
            raise ValueError("classes must be contiguous id ranges in ascending class order")
        if numpy.any(self.class_size[: self.shortlist_size] != 1):
            raise ValueError("single-word classes must come first")

    def fingerprint(self):
        """A hash of the words and their classes: two vocabularies with equal hashes are one."""
        digest = hashlib.sha256()
        for word, word_class in zip(self.words, self.word_class.tolist(), strict=True):
            digest.update(f"{word}\t{word_class}\n".encode())
        return digest.hexdigest()

    def write(self, path, encoding=DEFAULT_ENCODING):
        """Writes `word<TAB>class` lines in network order, in `encoding`. Every line ends in
        a newline, the last too (rwthlm leaves it out, which makes `cat` and `wc -l` go wrong;
        its reader, and ours, read both)."""
        with atomic_output(path, encoding=encoding) as handle:
            classes = self.word_class.tolist()
            handle.writelines(f"{word}\t{word_class}\n" for word, word_class in zip(self.words, classes, strict=True))

    def with_unk(self, unk):
        """The same vocabulary with `unk` enabled as the unknown word; it must be a word of it."""
        if unk is not None and unk not in self.index:
            raise InputError(f"--unk is given but the vocabulary has no '{unk}' (see --map-unk)")
        return Vocabulary(self.words, self.word_class, self.sb_name, unk)


def remap(entries, sb):
    """Orders (word, class_id) entries the rwthlm way and returns a Vocabulary.

    Adds `sb` in a new class (largest class id + 1) when it is missing.
    """
    entries = list(entries)
    if sb not in {word for word, _ in entries}:
        next_class = max((class_id for _, class_id in entries), default=-1) + 1
        entries.append((sb, next_class))
    sizes = {}
    for _, class_id in entries:
        sizes[class_id] = sizes.get(class_id, 0) + 1
    order = sorted(range(len(entries)), key=lambda i: (sizes[entries[i][1]], entries[i][1], i))
    new_class_of = {}
    words, classes = [], []
    for i in order:
        word, class_id = entries[i]
        new_class = new_class_of.setdefault(class_id, len(new_class_of))
        words.append(word)
        classes.append(new_class)
    return Vocabulary(words, classes, sb)


def read_vocabulary(path, sb="<sb>", encoding=DEFAULT_ENCODING):
    """Reads an rwthlm vocabulary file (`word` or `word class` per line, gzip allowed)."""
    entries, seen, has_classes = [], {}, None
    for line_number, text in read_lines(path, encoding):
        fields = split_words(text)
        if not fields:
            continue
        if len(fields) > 2:
            raise InputError(
                f"malformed vocabulary entry '{text.strip()}': expected 'word' or 'word class'",
                path, line_number,
            )
        word = fields[0]
        if word in seen:
            raise InputError(
                f"duplicate word '{word}' (first on line {seen[word]})", path, line_number
            )
        if has_classes is None:
            has_classes = len(fields) == 2
        elif has_classes != (len(fields) == 2):
            raise InputError(
                "some entries have a class column and others do not; give every word a class or none",
                path, line_number,
            )
        class_id = _parse_class(fields[1], path, line_number) if has_classes else len(entries)
        seen[word] = line_number
        entries.append((word, class_id))
    if not entries:
        raise InputError("the vocabulary file has no entries", path)
    return remap(entries, sb)


def _parse_class(text, path, line_number):
    try:
        class_id = int(text)
    except ValueError:
        raise InputError(f"class '{text}' is not an integer", path, line_number) from None
    if class_id < 0:
        raise InputError(f"class '{text}' is negative", path, line_number)
    return class_id


def count_words(path, encoding=DEFAULT_ENCODING):
    """Counts the tokens of a text: ({word: count} in order of first occurrence, number of lines)."""
    counts, line_number = {}, 0
    for line_number, text in read_lines(path, encoding):  # noqa: B007 - the last number is the count
        for word in split_words(text):
            counts[word] = counts.get(word, 0) + 1
    return counts, line_number


def vocabulary_from_counts(counts, sb="<sb>", classes=None):
    """A vocabulary of the counted words (first-occurrence order) plus `sb`.

    `classes` maps words (and possibly `sb`) to class ids; by default every word is its own
    class, as rwthlm builds it from training data.
    """
    words = list(counts)
    if classes is None:
        return remap([(word, position) for position, word in enumerate(words)], sb)
    if sb in classes and sb not in counts:
        words.append(sb)
    return remap([(word, classes[word]) for word in words], sb)
