"""Build the word-list (W) and Jabberwocky (J) conditions that match ``sentences.txt``.

The language localizer contrasts four conditions (Fedorenko et al., 2010): sentences (S), word
lists (W), Jabberwocky (J) and non-word lists (N).  S and N live in ``../language/``; this script
derives W and J from ``../language/sentences.txt`` (240 lines of 12 lower-case words) and writes
``word_lists.txt`` and ``jabberwocky.txt`` next to itself, line i matched to sentence i.

Word lists: line i holds the 12 words of sentence i (the same multiset) in a scrambled order.
For each sentence ``N_SHUFFLES`` shuffles are drawn and the one that keeps the fewest of the
sentence's bigrams is kept, a bigram being an ordered pair of words adjacent in the sentence that
is adjacent again, in the same order, in the list.  Ties are broken by the number of neighbouring
identical words ("the the"), then by the earliest draw; drawing stops at the first shuffle with
neither.  The identity order is never kept.

Jabberwocky: line i is sentence i with every function word kept and every content word replaced
by a pseudoword.  Function words are the closed-class words of ``FUNCTION_WORDS`` below
(determiners, pronouns, prepositions, conjunctions, auxiliaries and modals with their negative
contractions, copulas, quantifiers, question and relative words, "to", "not", "there", ...);
every other word is a content word.  A content word is split into a stem and an inflectional
suffix: the first of ``SUFFIXES`` that ends the word is stripped if at least three letters
remain ("'s", "ing", "ed", "es", "s", "ly", "er", "est"; "s" and "es" are not stripped after
"ss", "us" or "is", which are not plural endings, e.g. "glass", "famous").  The stem is replaced
by a pseudostem of the same number of letters (at least three) and the suffix is kept, so that
"watched" becomes e.g. "florped".  Pseudostems are assembled from English-like syllables (onset,
vowel nucleus, optional coda from the inventories below) exactly as ``make_nonwords.py`` builds
non-words.  Each stem gets one pseudostem (so "farmers" and "farmer's" share it), all stems get
different pseudostems, and the mapping is fixed across the file: the same content word is always
replaced by the same pseudoword and different content words by different pseudowords.  A
pseudostem is redrawn when

* it or any of its full forms (pseudostem + suffix, apostrophes removed) is an English word
  (``english_words`` sets ``web2`` and ``gcide``, lower-cased) or a word of ``sentences.txt``,
  or it or a full form looks like an inflection of one: stripping any of ``INFLECTIONS`` leaves at
  least three letters that, as they are or with an "e" added, a doubled final letter undoubled
  or a final "i" turned into "y", make such a word ("eases", "stopped", "cities"),
* any of its full forms is already used by another content word,
* it ends in a vowel (or "y") while a suffix starting with a vowel follows, or in a sibilant
  ("s", "x", "z", "sh", "ch") before the suffix "s", or
* a full form has the same letter three times in a row.

Stems are assigned in order of first appearance.  Word lists draw from ``random.Random(SEED)``
and Jabberwocky from ``random.Random(SEED + 1)``, so the output is identical on every run.

Usage::

    python make_language4.py          # write word_lists.txt and jabberwocky.txt
    python make_language4.py --check  # exit 1 if either file is stale or breaks a rule
"""

import argparse
import itertools
import random
import re
import sys
from collections import Counter
from pathlib import Path

from english_words import get_english_words_set

HERE = Path(__file__).resolve().parent
SENTENCES = HERE.parent / "language" / "sentences.txt"
WORD_LISTS = HERE / "word_lists.txt"
JABBERWOCKY = HERE / "jabberwocky.txt"
SEED = 20250202
N_SENTENCES, N_WORDS, MIN_LEN = 240, 12, 3
N_SHUFFLES = 5000
MAX_DRAWS = 200_000

FUNCTION_WORDS = frozenset(
    # determiners and articles
    "a an the this that these those "
    # personal, possessive, reflexive and indefinite pronouns
    "i me my mine you your yours he him his she her hers it its we us our ours they them their "
    "theirs myself yourself himself herself itself ourselves themselves you're i'm it's "
    "someone somebody something anyone anybody anything everyone everybody everything "
    "nobody nothing none "
    # prepositions and particles
    "about above across after against along among around at before behind below beneath beside "
    "between beyond by despite down during except for from in inside into near of off on onto "
    "out outside over past since through throughout till to toward towards under until up upon "
    "with within without ago "
    # conjunctions and conjunctive adverbs
    "and but or nor so yet because although though while whereas if unless whether than as "
    "once either neither both however instead "
    # auxiliaries, copulas and modals, with negative contractions
    "be am is are was were been being have has had having do does did "
    "will would shall should can could may might must "
    "isn't aren't wasn't weren't hasn't haven't hadn't don't doesn't didn't "
    "won't wouldn't shan't shouldn't can't couldn't mightn't mustn't "
    # question and relative words
    "what which who whom whose whoever whatever when whenever where wherever why how "
    # quantifiers
    "all some any every each many much more most few fewer less least several enough no other "
    "another such "
    # negation, degree and deictic adverbs
    "not never ever very too also there here then now".split()
)
SUFFIXES = ("'s", "ing", "ed", "es", "s", "ly", "er", "est")
NOT_PLURAL = ("ss", "us", "is")
SIBILANT_ENDS = ("s", "x", "z", "sh", "ch")
VOWELS = "aeiouy"
INFLECTIONS = ("s", "es", "d", "ed", "ing", "ly", "er", "r", "est", "st")

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


# ---------------------------------------------------------------------------- word lists


def preserved_bigrams(sentence: list[str], items: list[str]) -> int:
    """Number of adjacent pairs of ``items`` that are adjacent, in that order, in ``sentence``."""
    bigrams = set(itertools.pairwise(sentence))
    return sum(pair in bigrams for pair in itertools.pairwise(items))


def repeats(items: list[str]) -> int:
    """Number of neighbouring identical words in ``items``."""
    return sum(a == b for a, b in itertools.pairwise(items))


def scramble(rng: random.Random, sentence: list[str]) -> list[str]:
    """Best of ``N_SHUFFLES`` shuffles of ``sentence`` (fewest bigrams, then fewest repeats)."""
    best: list[str] | None = None
    best_score = (len(sentence), len(sentence))
    for _ in range(N_SHUFFLES):
        items = sentence[:]
        rng.shuffle(items)
        if items == sentence:
            continue
        score = (preserved_bigrams(sentence, items), repeats(items))
        if best is None or score < best_score:
            best, best_score = items, score
        if best_score == (0, 0):
            break
    if best is None:
        raise RuntimeError(f"no scrambled order found for {' '.join(sentence)!r}")
    return best


def make_word_lists(sentences: list[list[str]]) -> list[str]:
    """Return the lines of word_lists.txt."""
    rng = random.Random(SEED)
    return [" ".join(scramble(rng, sentence)) for sentence in sentences]


# ---------------------------------------------------------------------------- jabberwocky


def split_suffix(word: str) -> tuple[str, str]:
    """Split a content word into (stem, inflectional suffix); the suffix may be empty."""
    for suffix in SUFFIXES:
        if not word.endswith(suffix) or len(word) - len(suffix) < MIN_LEN:
            continue
        if suffix in ("s", "es") and word.endswith(NOT_PLURAL):
            continue
        return word[: -len(suffix)], suffix
    return word, ""


def bare(word: str) -> str:
    """``word`` without apostrophes, as looked up in the word sets."""
    return word.replace("'", "")


def lexical(form: str, banned: set[str]) -> bool:
    """Whether ``form`` is, or looks like an inflected form of, a word of ``banned``.

    Besides ``form`` itself, the bases left by stripping an English inflection (with a silent
    "e" restored, a doubled consonant undoubled, or "i" turned back into "y") are looked up, so
    that forms such as "eases" or "stopped", which the word sets lack, are caught too.
    """
    form = bare(form)
    if form in banned:
        return True
    for suffix in INFLECTIONS:
        base = form[: -len(suffix)]
        if not form.endswith(suffix) or len(base) < MIN_LEN:
            continue
        bases = {base, base + "e"}
        if base[-1] == base[-2]:
            bases.add(base[:-1])
        if base[-1] == "i":
            bases.add(base[:-1] + "y")
        if bases & banned:
            return True
    return False


def fits(stem: str, suffix: str) -> bool:
    """Whether ``stem`` and ``suffix`` join into a well-spelled word."""
    if suffix and suffix[0] in VOWELS and stem[-1] in VOWELS:
        return False
    return not (suffix == "s" and stem.endswith(SIBILANT_ENDS))


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


def make_mapping(sentences: list[list[str]], banned: set[str]) -> dict[str, str]:
    """Map every content word of ``sentences`` to its pseudoword."""
    suffixes: dict[str, list[str]] = {}  # stem -> suffixes it occurs with, in reading order
    for sentence in sentences:
        for word in sentence:
            if word not in FUNCTION_WORDS:
                stem, suffix = split_suffix(word)
                if suffix not in suffixes.setdefault(stem, []):
                    suffixes[stem].append(suffix)

    rng = random.Random(SEED + 1)
    used = set(banned)
    mapping = {}
    for stem, stem_suffixes in suffixes.items():
        length = max(MIN_LEN, len(bare(stem)))
        for _ in range(MAX_DRAWS):
            cand = draw(rng, length)
            if not cand or cand in used or cand == stem or lexical(cand, banned):
                continue
            forms = [cand + suffix for suffix in stem_suffixes]
            if all(
                fits(cand, suffix)
                and bare(form) not in used
                and not lexical(form, banned)
                and not TRIPLE.search(form)
                for suffix, form in zip(stem_suffixes, forms, strict=True)
            ):
                break
        else:
            raise RuntimeError(f"no pseudostem of {length} letters in {MAX_DRAWS} draws")
        used.add(cand)
        used.update(bare(form) for form in forms)
        for suffix, form in zip(stem_suffixes, forms, strict=True):
            mapping[stem + suffix] = form
    return mapping


def make_jabberwocky(sentences: list[list[str]], banned: set[str]) -> list[str]:
    """Return the lines of jabberwocky.txt."""
    mapping = make_mapping(sentences, banned)
    return [" ".join(mapping.get(word, word) for word in sentence) for sentence in sentences]


# ---------------------------------------------------------------------------- checks


def rule_violations(
    sentences: list[list[str]], word_lists: list[str], jabberwocky: list[str], banned: set[str]
) -> list[str]:
    """List every broken rule of either file."""
    errors = []
    if len(sentences) != N_SENTENCES or any(len(s) != N_WORDS for s in sentences):
        errors.append(f"sentences.txt must have {N_SENTENCES} lines of {N_WORDS} words")
    for name, lines in (("word_lists.txt", word_lists), ("jabberwocky.txt", jabberwocky)):
        if len(lines) != len(sentences):
            errors.append(f"{name} has {len(lines)} lines, sentences.txt {len(sentences)}")
        for i, line in enumerate(lines, start=1):
            if len(line.split(" ")) != N_WORDS:
                errors.append(f"{name} line {i}: {len(line.split(' '))} words, not {N_WORDS}")

    for i, (sentence, line) in enumerate(zip(sentences, word_lists, strict=False), start=1):
        items = line.split(" ")
        if Counter(items) != Counter(sentence):
            errors.append(f"word_lists.txt line {i}: not the words of the sentence")
        elif items == sentence:
            errors.append(f"word_lists.txt line {i}: the words are in sentence order")

    pseudo_of: dict[str, str] = {}
    word_of: dict[str, str] = {}
    for i, (sentence, line) in enumerate(zip(sentences, jabberwocky, strict=False), start=1):
        for word, item in zip(sentence, line.split(" "), strict=False):
            where = f"jabberwocky.txt line {i}"
            if word in FUNCTION_WORDS:
                if item != word:
                    errors.append(f"{where}: function word {word!r} became {item!r}")
                continue
            stem, suffix = split_suffix(word)
            pseudostem = item[: len(item) - len(suffix)]
            if not re.fullmatch(r"[a-z]+('s)?", item):
                errors.append(f"{where}: {item!r} is not lower-case letters")
            if not item.endswith(suffix) or len(pseudostem) != max(MIN_LEN, len(bare(stem))):
                errors.append(f"{where}: {item!r} does not match {word!r} in stem or suffix")
            if lexical(item, banned) or lexical(pseudostem, banned):
                errors.append(f"{where}: content word {word!r} became the word {item!r}")
            if pseudo_of.setdefault(word, item) != item:
                errors.append(f"{where}: {word!r} became {item!r} and {pseudo_of[word]!r}")
            if word_of.setdefault(item, word) != word:
                errors.append(f"{where}: {item!r} replaces {word!r} and {word_of[item]!r}")
    return errors


def stats(sentences: list[list[str]], word_lists: list[str], jabberwocky: list[str]) -> str:
    """One line summarising bigram preservation and replacement rates."""
    kept = sum(preserved_bigrams(s, w.split()) for s, w in zip(sentences, word_lists, strict=True))
    n_bigrams = sum(len(s) - 1 for s in sentences)
    replaced = sum(
        a != b
        for s, j in zip(sentences, jabberwocky, strict=True)
        for a, b in zip(s, j.split(), strict=True)
    )
    n_words = sum(len(s) for s in sentences)
    return (
        f"bigrams preserved in word lists: {kept}/{n_bigrams} ({kept / n_bigrams:.1%}); "
        f"words replaced in jabberwocky: {replaced}/{n_words} ({replaced / n_words:.1%})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify both files, write nothing")
    args = parser.parse_args()

    sentences = [line.split() for line in SENTENCES.read_text(encoding="utf-8").splitlines()]
    banned = set(get_english_words_set(["web2", "gcide"], lower=True))
    banned |= {bare(word) for sentence in sentences for word in sentence}
    expected = {
        WORD_LISTS: make_word_lists(sentences),
        JABBERWOCKY: make_jabberwocky(sentences, banned),
    }

    if not args.check:
        for path, lines in expected.items():
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            print(f"wrote {len(lines)} lines to {path}")
        print(stats(sentences, *expected.values()))
        return 0

    actual = {
        path: path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        for path in expected
    }
    errors = rule_violations(sentences, *actual.values(), banned)
    errors += rule_violations(sentences, *expected.values(), banned)
    for path in expected:
        if actual[path] != expected[path]:
            errors.append(f"{path.name} differs from what make_language4.py writes; rerun it")
    for error in dict.fromkeys(errors):
        print(f"error: {error}", file=sys.stderr)
    if errors:
        return 1
    print("ok: word_lists.txt and jabberwocky.txt match the sentences and all rules hold")
    print(stats(sentences, *actual.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
