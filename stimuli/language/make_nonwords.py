"""Build the non-word lists that match ``sentences.txt`` for the language localizer.

Each line of ``sentences.txt`` (12 words) gets one line of 12 non-words in ``nonwords.txt``.
The j-th non-word of line i has as many letters as the j-th word of sentence i, not counting
apostrophes; words shorter than three letters ("a", "of", ...) are matched with three-letter
non-words, i.e. the target length is ``max(3, n)``, so that no non-word is tiny.

Method: non-words are assembled from English-like syllables, each an onset, a vowel nucleus and
an optional coda taken from the small inventories below (legal English onsets, common vowel
spellings, codas).  Only the first syllable may lack an onset (it then takes a plain vowel),
so vowels never meet across a syllable boundary; after a coda the next onset is a single
consonant, and only the last syllable may have a two-letter coda.  Syllables are added
until the target length is reached; a candidate that overshoots is thrown away and drawn again,
so clusters are never cut.  A candidate is also redrawn when it

* is an English word (``english_words`` sets ``web2`` and ``gcide``, lower-cased),
* is a word of ``sentences.txt`` (apostrophes removed),
* is already used anywhere in ``nonwords.txt`` (all non-words are distinct), or
* has the same letter three times in a row.

All draws come from a single ``random.Random(SEED)`` and the items are filled in reading order,
so the output is identical on every run.

Usage::

    python make_nonwords.py          # write nonwords.txt
    python make_nonwords.py --check  # exit 1 if nonwords.txt is stale or breaks a rule
"""

import argparse
import random
import re
import sys
from pathlib import Path

from english_words import get_english_words_set

HERE = Path(__file__).resolve().parent
SENTENCES = HERE / "sentences.txt"
NONWORDS = HERE / "nonwords.txt"
SEED = 20250101
N_SENTENCES, N_WORDS, MIN_LEN = 240, 12, 3
MAX_DRAWS = 200_000

ONSETS = (
    "b c d f g h j k l m n p r s t v w y z "
    "bl br ch cl cr dr fl fr gl gr pl pr sc sh sk sl sm sn sp st sw th tr tw wh "
    "scr spl spr str thr"
).split()
SIMPLE_ONSETS = "b d f g k l m n p r s t v z".split()  # after a coda
NUCLEI = "a e i o u a e i o u ai au ea ee oa oi oo ou".split()
PLAIN_NUCLEI = "a e i o u ai ea oa ou".split()  # word-initial, without onset
MID_CODAS = [""] * 6 + "b d f g k l m n p r s t".split()
END_CODAS = [""] * 4 + (
    "b d f g k l m n p r s t x ck ff ft ld lk ll lt mp nd ng nk nt rd rk rm rn rt sh sk sp st th"
).split()
TRIPLE = re.compile(r"(.)\1\1")


def target_length(word: str) -> int:
    """Number of letters the non-word matched to ``word`` must have."""
    return max(MIN_LEN, len(word.replace("'", "")))


def draw(rng: random.Random, length: int) -> str | None:
    """Assemble syllables up to ``length`` letters; None if the last syllable overshoots."""
    word = coda = ""
    while len(word) < length:
        if not word:
            onset = rng.choice(ONSETS + [""] * 4)
        else:
            onset = rng.choice(SIMPLE_ONSETS if coda else ONSETS)
        word += onset + rng.choice(NUCLEI if onset else PLAIN_NUCLEI)
        room = length - len(word)
        if room < 0:
            return None
        coda = rng.choice(END_CODAS if room <= 2 else MID_CODAS)
        word += coda
    return word if len(word) == length else None


def generate(sentences: list[list[str]], banned: set[str]) -> list[str]:
    """Return the lines of nonwords.txt; ``banned`` holds the words a non-word may not be."""
    rng = random.Random(SEED)
    used = set(banned)
    lines = []
    for sentence in sentences:
        items = []
        for word in sentence:
            length = target_length(word)
            for _ in range(MAX_DRAWS):
                cand = draw(rng, length)
                if cand and cand not in used and not TRIPLE.search(cand):
                    break
            else:
                raise RuntimeError(f"no new non-word of {length} letters in {MAX_DRAWS} draws")
            used.add(cand)
            items.append(cand)
        lines.append(" ".join(items))
    return lines


def rule_violations(sentences: list[list[str]], lines: list[str], banned: set[str]) -> list[str]:
    """List every broken rule (counts, lengths, letters, lexicality, uniqueness)."""
    errors = []
    if len(sentences) != N_SENTENCES or any(len(s) != N_WORDS for s in sentences):
        errors.append(f"sentences.txt must have {N_SENTENCES} lines of {N_WORDS} words")
    if len(lines) != len(sentences):
        errors.append(f"nonwords.txt has {len(lines)} lines, sentences.txt {len(sentences)}")
    seen: set[str] = set()
    for i, (sentence, line) in enumerate(zip(sentences, lines, strict=False), start=1):
        items = line.split(" ")
        if len(items) != len(sentence):
            errors.append(f"line {i}: {len(items)} non-words for {len(sentence)} words")
        for word, item in zip(sentence, items, strict=False):
            if not re.fullmatch(r"[a-z]+", item):
                errors.append(f"line {i}: {item!r} is not lower-case letters only")
            if len(item) != target_length(word):
                errors.append(f"line {i}: {item!r} has the wrong length for {word!r}")
            if item in banned:
                errors.append(f"line {i}: {item!r} is an English or sentence word")
            if item in seen:
                errors.append(f"line {i}: {item!r} is used more than once")
            seen.add(item)
    return errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify nonwords.txt, write nothing")
    args = parser.parse_args()

    sentences = [line.split() for line in SENTENCES.read_text(encoding="utf-8").splitlines()]
    banned = set(get_english_words_set(["web2", "gcide"], lower=True))
    banned |= {word.replace("'", "") for sentence in sentences for word in sentence}
    expected = generate(sentences, banned)

    if not args.check:
        NONWORDS.write_text("\n".join(expected) + "\n", encoding="utf-8")
        print(f"wrote {len(expected)} lines to {NONWORDS}")
        return 0

    actual = NONWORDS.read_text(encoding="utf-8").splitlines() if NONWORDS.exists() else []
    errors = rule_violations(sentences, actual, banned)
    if actual != expected:
        errors.append("nonwords.txt differs from what make_nonwords.py writes; rerun it")
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    if errors:
        return 1
    print(f"ok: {len(actual)} lines of non-words match the sentences and all rules hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
