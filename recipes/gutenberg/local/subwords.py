"""Trains a sentencepiece model on the normalised training text and writes every split as
pieces, plus the language model's vocabulary (every piece of the model).

    python subwords.py DATA_DIR VOCAB_SIZE

Reads DATA_DIR/{train,dev,test}.txt.gz (one normalised sentence per line); writes
DATA_DIR/pieces.model, DATA_DIR/{train,dev,test}.pieces.gz (pieces separated by spaces; a
word's first piece starts with U+2581) and DATA_DIR/pieces.vocab.lm (one piece per line, an
rwthlm vocabulary file). Characters the model has not seen become the piece <unk>, which
is an ordinary word of the language model. The text is not normalised again by
sentencepiece (normalize.py did it), so the pieces of a line spell it exactly.
"""

import argparse
import gzip
import pathlib

import sentencepiece


def read_lines(path):
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            yield line.rstrip("\n")


def train(data, vocab_size):
    model_prefix = data / "pieces"
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=read_lines(data / "train.txt.gz"), model_prefix=str(model_prefix),
        vocab_size=vocab_size, model_type="unigram", character_coverage=1.0,
        normalization_rule_name="identity", bos_id=-1, eos_id=-1, num_threads=2,
        max_sentence_length=1 << 16, minloglevel=1)  # book sentences reach 10,000 bytes
    return sentencepiece.SentencePieceProcessor(model_file=f"{model_prefix}.model")


def encode(processor, source, target):
    lines = pieces = 0
    with gzip.open(target, "wt", encoding="utf-8") as out:
        for line in read_lines(source):
            ids = processor.encode(line)
            out.write(" ".join(processor.id_to_piece(i) for i in ids) + "\n")
            lines, pieces = lines + 1, pieces + len(ids)
    return lines, pieces


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data_dir", type=pathlib.Path)
    parser.add_argument("vocab_size", type=int)
    args = parser.parse_args()
    processor = train(args.data_dir, args.vocab_size)
    pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
    (args.data_dir / "pieces.vocab.lm").write_text("".join(piece + "\n" for piece in pieces), encoding="utf-8")
    print(f"sentencepiece model: {len(pieces)} pieces (unigram)")
    for split in ("train", "dev", "test"):
        lines, count = encode(processor, args.data_dir / f"{split}.txt.gz", args.data_dir / f"{split}.pieces.gz")
        words = sum(len(line.split()) for line in read_lines(args.data_dir / f"{split}.txt.gz"))
        print(f"{split}: {lines:,} sentences, {words:,} words, {count:,} pieces ({count / max(words, 1):.2f} per word)")


if __name__ == "__main__":
    main()
