"""Writes n-best lists for the toy recipe's test sentences, as a recogniser might produce them.

    python make_nbest.py TEST_TXT OUT_DIR [--utterances N] [--hypotheses N] [--seed N]

For each of the first N test sentences (utterance ids utt000, utt001, ...), OUT_DIR/lists/
gets one SRILM n-best list (`ascore lscore nwords words`, log10) of up to --hypotheses
distinct hypotheses: the sentence itself and variants with 1 to 3 errors a recogniser
makes on this grammar (a verb of the wrong number, a confusable noun, a dropped or an
inserted word). The acoustic score is -0.4 per error plus Gaussian noise
(sd 0.8), so that the acoustically best hypothesis is often wrong; the LM score is 0 (no
LM). Hypotheses are sorted by acoustic score, best first. OUT_DIR/refs holds the
references (`utt-id words`).
"""

import argparse
import pathlib
import random

VERB_NUMBER = {"sees": "see", "likes": "like", "feeds": "feed", "follows": "follow"}
VERB_NUMBER.update({plural: singular for singular, plural in VERB_NUMBER.items()})
CONFUSABLE = {"cat": "cats", "dog": "dogs", "bird": "birds", "farmer": "farmers", "teacher": "teachers",
              "child": "children", "the": "a", "a": "the", "old": "young", "small": "happy"}
CONFUSABLE.update({value: key for key, value in list(CONFUSABLE.items()) if value not in CONFUSABLE})
INSERTED = ["the", "a", "that"]


def variant(words, rng):
    """One recognition error: wrong verb number, a confusable word, a deletion or an insertion."""
    words = list(words)
    kind = rng.random()
    verbs = [k for k, word in enumerate(words) if word in VERB_NUMBER]
    confusable = [k for k, word in enumerate(words) if word in CONFUSABLE]
    if kind < 0.35 and verbs:
        k = rng.choice(verbs)
        words[k] = VERB_NUMBER[words[k]]
    elif kind < 0.7 and confusable:
        k = rng.choice(confusable)
        words[k] = CONFUSABLE[words[k]]
    elif kind < 0.85 and len(words) > 2:
        del words[rng.randrange(len(words))]
    else:
        words.insert(rng.randrange(len(words) + 1), rng.choice(INSERTED))
    return words


def hypotheses(reference, count, rng):
    found = {tuple(reference): 0}
    for _ in range(count * 20):
        if len(found) >= count:
            break
        words, errors = list(reference), rng.randint(1, 3)
        for _ in range(errors):
            words = variant(words, rng)
        found.setdefault(tuple(words), errors)
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("test")
    parser.add_argument("out_dir")
    parser.add_argument("--utterances", type=int, default=100)
    parser.add_argument("--hypotheses", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    out = pathlib.Path(args.out_dir)
    (out / "lists").mkdir(parents=True, exist_ok=True)
    references = [line.split() for line in pathlib.Path(args.test).read_text().splitlines()][:args.utterances]
    with open(out / "refs", "w") as refs:
        for number, reference in enumerate(references):
            utterance = f"utt{number:03d}"
            refs.write(" ".join([utterance] + reference) + "\n")
            scored = [(-0.4 * errors + rng.gauss(0.0, 0.8), words)
                      for words, errors in hypotheses(reference, args.hypotheses, rng).items()]
            scored.sort(key=lambda pair: -pair[0])
            lines = [f"{score:.4f} 0 {len(words)} " + " ".join(words) for score, words in scored]
            (out / "lists" / f"{utterance}.nbest").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
