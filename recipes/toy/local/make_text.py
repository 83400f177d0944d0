"""Writes the toy recipe's text: sentences of a small English grammar with agreement.

    python make_text.py OUT_DIR [--seed N]

Writes OUT_DIR/{train,dev,test}.txt (3000, 300 and 300 sentences), one sentence per line.
The grammar: a subject (singular or plural, with an optional adjective), a verb that
agrees with it, an object, and sometimes a time phrase or a relative clause; a model
that learns agreement and word order reaches a perplexity far below the vocabulary size.
"""

import argparse
import pathlib
import random

SINGULAR = ["cat", "dog", "bird", "farmer", "teacher", "child"]
PLURAL = ["cats", "dogs", "birds", "farmers", "teachers", "children"]
VERBS = {"sees": "see", "likes": "like", "feeds": "feed", "follows": "follow"}
ADJECTIVES = ["old", "young", "small", "happy"]
OBJECTS = ["the apple", "the river", "a ball", "the house", "a letter"]
TIMES = ["today", "every morning", "at night"]
SPLITS = {"train": 3000, "dev": 300, "test": 300}


def sentence(rng):
    plural = rng.random() < 0.5
    words = ["the"]
    if rng.random() < 0.3:
        words.append(rng.choice(ADJECTIVES))
    words.append(rng.choice(PLURAL if plural else SINGULAR))
    if rng.random() < 0.2:
        verb = rng.choice(list(VERBS))
        words += ["that", "the", rng.choice(SINGULAR), verb, rng.choice(OBJECTS)]
    verb = rng.choice(list(VERBS))
    words += [VERBS[verb] if plural else verb, rng.choice(OBJECTS)]
    if rng.random() < 0.3:
        words.append(rng.choice(TIMES))
    return " ".join(words)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    out = pathlib.Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for offset, (split, count) in enumerate(SPLITS.items()):
        rng = random.Random(args.seed * 1000 + offset)
        text = "\n".join(sentence(rng) for _ in range(count)) + "\n"
        (out / f"{split}.txt").write_text(text)
        print(f"{split}.txt: {count} sentences, {len(text.split())} words")


if __name__ == "__main__":
    main()
