"""Turns the raw Gutenberg books into normalised sentences, split into train, dev and test.

    python normalize.py BOOK_DIR OUT_DIR [--held-out 0.05]

Each book (`*.txt` or `*.txt.gz`) is decoded as UTF-8, or as ISO-8859-1 where it is not
valid UTF-8 (shakespeare-caesar.txt); CRLF line ends become LF; the text is put in Unicode
NFKC form (ligatures and compatibility characters spelt out). Paragraphs (separated by
blank lines) are joined into one line, whitespace runs become one space, and paragraphs
are cut into sentences after `.`, `!` or `?` (and closing quotes or brackets) followed by
a capital letter, a quote or a bracket, except after titles such as `Mr.` and initials.
Case and punctuation are kept: the subword model sees the text as written.

Of every book, the last HELD_OUT share of its sentences goes to test.txt.gz and the share
before it to dev.txt.gz, the rest to train.txt.gz: contiguous blocks, so that no test
sentence has a neighbour in training. Prints what it did per book.
"""

import argparse
import gzip
import pathlib
import re
import unicodedata

SENTENCE_END = re.compile(r"""(?<=[.!?])["'\u2019\u201d)\]]*\s+(?=["'\u2018\u201c(\[]?[A-Z])""")
# a period after these (or after a single capital, an initial) does not end a sentence
ABBREVIATIONS = {"Mr", "Mrs", "Messrs", "Dr", "St", "Mme", "Mlle", "Capt", "Col", "Gen", "Rev", "Prof",
                 "Sr", "Jr", "Lt", "Hon", "Esq", "Co", "Mt", "No"}


def decode(raw):
    """The book's text and the encoding it was in."""
    try:
        return raw.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        return raw.decode("iso-8859-1"), "ISO-8859-1"


def sentences(text):
    text = unicodedata.normalize("NFKC", text.replace("\r\n", "\n").replace("\r", "\n"))
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = " ".join(paragraph.split())
        if paragraph:
            yield from (part.strip() for part in split_sentences(paragraph) if part.strip())


def split_sentences(paragraph):
    pieces, start = [], 0
    for match in SENTENCE_END.finditer(paragraph):
        word = paragraph[:match.start()].rsplit(" ", 1)[-1]
        if word.endswith(".") and (word[:-1] in ABBREVIATIONS or re.fullmatch(r"[A-Z]", word[:-1])):
            continue
        end = match.start() + len(match.group(0).rstrip())
        pieces.append(paragraph[start:end])
        start = match.end()
    pieces.append(paragraph[start:])
    return pieces


def read_book(path):
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return decode(raw)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("book_dir", type=pathlib.Path)
    parser.add_argument("out_dir", type=pathlib.Path)
    parser.add_argument("--held-out", type=float, default=0.05, help="share of each book for dev and for test")
    args = parser.parse_args()
    books = sorted(path for path in args.book_dir.iterdir() if path.name.endswith((".txt", ".txt.gz")))
    if not books:
        parser.error(f"no *.txt or *.txt.gz books in {args.book_dir}")
    splits = {"train": [], "dev": [], "test": []}
    for path in books:
        text, encoding = read_book(path)
        lines = list(sentences(text))
        held_out = max(1, round(args.held_out * len(lines)))
        train_end, dev_end = len(lines) - 2 * held_out, len(lines) - held_out
        splits["train"] += lines[:train_end]
        splits["dev"] += lines[train_end:dev_end]
        splits["test"] += lines[dev_end:]
        print(f"{path.name}: {encoding}, {len(lines):,} sentences, {sum(len(s.split()) for s in lines):,} words")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for split, lines in splits.items():
        with gzip.open(args.out_dir / f"{split}.txt.gz", "wt", encoding="utf-8") as out:
            out.writelines(line + "\n" for line in lines)
        print(f"{split}.txt.gz: {len(lines):,} sentences, {sum(len(s.split()) for s in lines):,} words")


if __name__ == "__main__":
    main()
