"""errors.shortened at its bounds: a word of up to 300 characters (a URL to download by
hand, a long path) stays whole, bare or quoted; a longer one keeps its first 100 and last 40
characters and says its length, its quotes and punctuation kept around it.
(tests/test_cli.py shows the same through the command line, with a 10 MB word too.)"""

import pytest

from rwthlm_py.errors import shortened

WORD = "".join(f"{number:03d}-" for number in range(100))  # where each character stands is visible


def cut(word):
    return f"{word[:100]}...{word[-40:]}"


@pytest.mark.parametrize("text, shown", [
    (WORD[:300], WORD[:300]),
    (f"see '{WORD[:300]}', then", f"see '{WORD[:300]}', then"),
    (f"(\"{WORD[:300]}\").", f"(\"{WORD[:300]}\")."),
    (WORD[:301], f"{cut(WORD[:301])} (301 characters)"),
    (f"see '{WORD[:301]}', then", f"see '{cut(WORD[:301])}', (301 characters) then"),
    (f"(\"{WORD[:301]}\").", f"(\"{cut(WORD[:301])}\"). (301 characters)"),
])
def test_a_word_of_300_characters_stays_whole_one_of_301_is_shortened(text, shown):
    assert shortened(text) == shown

