import subprocess
import sys
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest

from tl_localize import Contrast, LocalizeError


def test_builtin_language_design():
    c = Contrast.builtin("language")
    assert c.sizes() == {"sentences": 240, "nonwords": 240}
    assert (c.positive_condition, c.negative_condition) == ("sentences", "nonwords")
    assert c.pooling == "last"
    for text in c.positive + c.negative:
        assert len(text.split()) == 12 and text == text.lower()
    assert len(set(c.positive)) == 240 and len(set(c.negative)) == 240
    # non-words are matched to the sentence words' lengths (minimum 3 letters)
    for sent, nonw in zip(c.positive, c.negative, strict=True):
        for word, fake in zip(sent.split(), nonw.split(), strict=True):
            assert len(fake) == max(3, len(word.replace("'", "")))


def test_builtin_nonwords_are_not_english():
    from english_words import get_english_words_set

    english = get_english_words_set(["web2", "gcide"], lower=True)
    c = Contrast.builtin("language")
    words = {w for text in c.negative for w in text.split()}
    assert len(words) == 240 * 12
    assert not words & english
    assert not words & {w for text in c.positive for w in text.split()}


@pytest.mark.slow  # regenerates every non-word list: `make test`, not test-fast
def test_nonword_script_reproduces_the_shipped_file():
    script = Path(str(resources.files("tl_localize.stimuli"))) / "language" / "make_nonwords.py"
    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hash_is_stable_and_content_sensitive():
    a = Contrast("x", {"p": ["a b", "c d"], "n": ["e f", "g h"]}, "p", "n")
    b = Contrast("y", {"p": ["a b", "c d"], "n": ["e f", "g h"]}, "p", "n")
    c = Contrast("x", {"p": ["a b", "c d"], "n": ["e f", "g i"]}, "p", "n")
    assert a.hash == b.hash != c.hash
    assert len(a.hash) == 64 and a.hash != Contrast.builtin("language").hash


def test_from_frame_and_csv(tmp_path):
    df = pd.DataFrame(
        {
            "sentence": ["the cat sat", "dogs bark loudly", "flib nop", "zat quorp", "extra"],
            "kind": ["S", "S", "N", "N", "X"],
        }
    )
    c = Contrast.from_frame(df, text="sentence", condition="kind", positive="S", negative="N")
    assert c.positive == ["the cat sat", "dogs bark loudly"]
    assert c.conditions["X"] == ["extra"]  # kept, not contrasted
    path = tmp_path / "mine.csv"
    df.iloc[:4].to_csv(path, index=False)
    d = Contrast.from_csv(path, text="sentence", condition="kind", positive="S", negative="N")
    assert d.name == "mine" and d.negative == ["flib nop", "zat quorp"]
    with pytest.raises(LocalizeError, match=r"no column 'text'.*columns: \['sentence', 'kind'\]"):
        Contrast.from_frame(df, positive="S", negative="N")
    with pytest.raises(LocalizeError, match="'Q' does not occur"):
        Contrast.from_frame(df, text="sentence", condition="kind", positive="Q", negative="N")


def _evlab(path: Path, rows: list[tuple[int, str, str]]) -> None:
    header = ",".join(f"stim{i}" for i in range(1, 15))
    lines = [header]
    for item, word, kind in rows:
        lines.append(",".join([str(item), *[word.upper()] * 12, kind]))
    path.write_text("\n".join(lines) + "\n")


def test_from_evlab_csv_reads_every_file_in_order(tmp_path):
    _evlab(tmp_path / "list1.csv", [(1, "dog", "S"), (2, "blick", "N"), (3, "cat", "S")])
    _evlab(tmp_path / "list2.csv", [(1, "frod", "N"), (2, "sun", "S"), (3, "zop", "N")])
    c = Contrast.from_evlab_csv(tmp_path)
    assert c.positive == ["dog " * 11 + "dog", "cat " * 11 + "cat", "sun " * 11 + "sun"]
    assert c.negative[0] == " ".join(["blick"] * 12)
    assert c.sizes() == {"sentences": 3, "nonwords": 3}


def test_from_evlab_csv_bad_rows(tmp_path):
    _evlab(tmp_path / "a.csv", [(1, "dog", "S"), (2, "blick", "N"), (3, "cat", "X")])
    with pytest.raises(LocalizeError, match=r"a\.csv, line 4: stim14 is 'X'"):
        Contrast.from_evlab_csv(tmp_path)
    (tmp_path / "a.csv").write_text("stim1,stim2\n1,DOG\n")
    with pytest.raises(LocalizeError, match=r"a\.csv: missing columns \['stim3'"):
        Contrast.from_evlab_csv(tmp_path)
    with pytest.raises(LocalizeError, match="No .csv files"):
        Contrast.from_evlab_csv(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("conditions", "message"),
    [
        ({"p": [], "n": ["a", "b"]}, "condition 'p' is empty"),
        ({"p": ["a"], "n": ["a", "b"]}, "positive condition 'p' has one item"),
        ({"p": ["a", 3], "n": ["a", "b"]}, "item 1: expected a string, got int"),
        ({"p": ["a", "  "], "n": ["a", "b"]}, "item 1: the text is empty"),
        ({"p": "abc", "n": ["a", "b"]}, "expected a list of texts, got str"),
        ({"p": ["a", "b"]}, "at least two conditions"),
    ],
)
def test_bad_stimuli(conditions, message):
    with pytest.raises(LocalizeError, match=message):
        Contrast("bad", conditions, "p", "n")


def test_unknown_condition_pooling_and_builtin():
    with pytest.raises(LocalizeError, match="negative condition 'm' is not one of"):
        Contrast("c", {"p": ["a", "b"], "n": ["c", "d"]}, "p", "m")
    with pytest.raises(LocalizeError, match="unknown pooling 'max'"):
        Contrast("c", {"p": ["a", "b"], "n": ["c", "d"]}, "p", "n", pooling="max")
    with pytest.raises(LocalizeError, match=r"Built-ins: \['language'"):
        Contrast.builtin("vision")


def test_identical_conditions_warn():
    with pytest.warns(UserWarning, match="hold the same texts"):
        Contrast("same", {"p": ["a b", "c d"], "n": ["c d", "a b"]}, "p", "n")
