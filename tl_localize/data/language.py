"""The built-in language localizer stimuli (written for this project, shipped in the wheel).

- ``sentences``: 240 sentences of 12 words, lower-case;
- ``nonwords``: 240 lists of 12 pronounceable non-words matched to the sentences' word
  lengths (``stimuli/language/make_nonwords.py``);
- ``word_lists``: each sentence's words scrambled; ``jabberwocky``: content words replaced
  by pseudowords, function words and inflections kept (``stimuli/language4/``).
"""

from __future__ import annotations

from .io import resource_lines

__all__ = ["CONDITIONS", "language_texts"]

# condition -> file inside tl_localize.stimuli
CONDITIONS: dict[str, tuple[str, str]] = {
    "sentences": ("language", "sentences.txt"),
    "nonwords": ("language", "nonwords.txt"),
    "word_lists": ("language4", "word_lists.txt"),
    "jabberwocky": ("language4", "jabberwocky.txt"),
}


def language_texts(condition: str) -> list[str]:
    """The 240 texts of one built-in language condition (see :data:`CONDITIONS`)."""
    return resource_lines(*CONDITIONS[condition])
