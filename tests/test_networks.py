"""MD and ToM stimuli, the four-condition set, overlap and profiles (fast tier)."""

import re

import numpy as np
import pytest
import torch
from scipy import stats as sps

from tl_localize import Contrast, LocalizeError, Units, evaluate, overlap, plot_networks, profile
from tl_localize.evaluate import make_problems

TOMLOC_ANSWERS = dict(
    zip(
        [f"{i}b" for i in range(1, 11)] + [f"{i}p" for i in range(1, 11)],
        [c == "T" for c in "FTTFTFFFTT" + "TTTFFFFTFF"],
        strict=True,
    )
)


def test_md_contrast_reference_format():
    md = Contrast.builtin("md")
    assert md.sizes() == {"hard": 100, "easy": 100} and md.pooling == "mean"
    pattern = re.compile(r"Question: Solve (\d+) ([+-]) (\d+)\?\nAnswer: (-?\d+)")
    for cond, (low, high) in (("hard", (100, 199)), ("easy", (1, 19))):
        texts = md.conditions[cond]
        assert len(set(texts)) == 100
        for text in texts:
            a, op, b, result = pattern.fullmatch(text).groups()
            assert low <= int(a) <= high and low <= int(b) <= high
            assert int(result) == (int(a) + int(b) if op == "+" else int(a) - int(b))
    assert Contrast.builtin("md").hash == md.hash  # seeded
    assert Contrast.builtin("md", seed=1).hash != md.hash
    assert Contrast.builtin("md", n=20).sizes() == {"hard": 20, "easy": 20}


def test_problem_generator_limits():
    assert len(set(make_problems(722, (1, 19)))) == 722  # every distinct problem
    with pytest.raises(LocalizeError, match="only 722 exist"):
        make_problems(723, (1, 19))
    held_out = make_problems(50, (1, 19), seed=1, exclude=set(make_problems(100, (1, 19))))
    assert not set(held_out) & set(make_problems(100, (1, 19)))


def test_tom_contrast_and_stories():
    tom = Contrast.builtin("tom")
    assert tom.sizes() == {"false_belief": 24, "false_photo": 24} and tom.pooling == "mean"
    held = evaluate.builtin_stories("heldout")
    assert len(held) == 24 and held["answer"].sum() == 12
    assert not set(held["story"]) & set(evaluate.builtin_stories("localizer")["story"])
    words = evaluate.builtin_stories().assign(n=lambda d: d["story"].str.split().str.len())
    means = words.groupby("condition")["n"].mean()
    assert abs(means["false_belief"] / means["false_photo"] - 1) < 0.05


def test_tomloc_folder(shared_data, tmp_path):
    folder = shared_data / "tomloc"
    stories = evaluate.load_tomloc(folder, answers=TOMLOC_ANSWERS)
    assert len(stories) == 20 and stories["condition"].value_counts().to_dict() == {
        "false_belief": 10, "false_photo": 10,
    }  # fmt: skip
    first = stories[stories["id"] == "1b"].iloc[0]
    assert first["story"].startswith("Expecting the game to be postponed because of the rain,")
    assert "\n" not in first["story"] and "  " not in first["story"]
    assert first["statement"] == "The Garcia family arrives home believing the score is 5-3."
    assert first["answer"] is np.False_ or first["answer"] is False
    contrast = Contrast.from_tomloc(folder)
    assert contrast.sizes() == {"false_belief": 10, "false_photo": 10}
    # bad folders: a story without its question file; a question file without a statement
    (tmp_path / "1b_story.txt").write_text("A story.\n")
    with pytest.raises(LocalizeError, match="1b_story.txt has no question file: 1b_question.txt"):
        evaluate.load_tomloc(tmp_path)
    (tmp_path / "1b_question.txt").write_text("\n\nTrue\t\tFalse\n")
    with pytest.raises(LocalizeError, match="1b_question.txt: no statement"):
        evaluate.load_tomloc(tmp_path)


def test_language4():
    c = Contrast.builtin("language4")
    assert list(c.conditions) == ["sentences", "word_lists", "jabberwocky", "nonwords"]
    for sentence, scrambled in zip(
        c.conditions["sentences"], c.conditions["word_lists"], strict=True
    ):
        assert sorted(sentence.split()) == sorted(scrambled.split()) and sentence != scrambled
    assert all(len(t.split()) == 12 for t in c.conditions["jabberwocky"])


def test_overlap_statistics():
    a = torch.zeros(4, 50, dtype=torch.bool)
    b = torch.zeros(4, 50, dtype=torch.bool)
    a[0, :10] = True
    b[0, 5:15] = True
    b[3, :5] = True
    result = overlap(Units(a, "resid_post", "m"), Units(b, "resid_post", "m"))
    assert result.count == 5 and result.jaccard == pytest.approx(5 / 20)
    assert result.expected == pytest.approx(10 * 15 / 200)
    assert result.p_value == pytest.approx(sps.hypergeom.sf(4, 200, 10, 15))
    assert result.per_layer[["a", "b", "both"]].sum().tolist() == [10, 15, 5]
    assert result.to_frame()["count"].iloc[0] == 5
    with pytest.raises(LocalizeError, match="same model and site"):
        overlap(Units(a, "resid_post", "m"), Units(b, "mlp_out", "m"))
    fig = plot_networks({"a": Units(a, "resid_post", "m"), "b": Units(b, "resid_post", "m")})
    assert fig.axes[0].get_ylabel() == "selected units"


def test_profile_on_tiny(tiny):
    contrast = Contrast(
        "toy",
        {"s": ["the cat sat", "a dog ran", "we all go"], "w": ["sat cat the", "ran a dog"],
         "n": ["zqx vbk", "plo fwe", "qqq zzz"]},
        "s",
        "n",
    )  # fmt: skip
    mask = torch.zeros(3, 32, dtype=torch.bool)
    mask[1, :4] = True
    units = Units(mask, "resid_post", "tiny")
    frame = profile(tiny, units, contrast)
    assert frame["condition"].tolist() == ["s", "w", "n"] and frame["n"].tolist() == [3, 2, 3]
    assert (frame["ci_low"] <= frame["mean"]).all() and (frame["mean"] <= frame["ci_high"]).all()
    # normalized responses average to 1 over all texts
    assert np.average(frame["mean"], weights=frame["n"]) == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(LocalizeError, match=r"has no condition 'jabberwocky'; its conditions"):
        profile(tiny, units, contrast, conditions=["s", "jabberwocky"])


@pytest.mark.model
def test_arithmetic_matches_greedy_decoding(default_model):
    result = evaluate.arithmetic(
        default_model, n_per_level=8, levels=["easy", "hard"], progress=False
    )
    assert len(result) == 16 and set(result["level"]) == {"easy", "hard"}
    localizer = set(Contrast.builtin("md").positive + Contrast.builtin("md").negative)
    tok = default_model.hf_tokenizer
    for row in result.itertuples():
        prompt = f"Question: Solve {row.a} {row.op} {row.b}?\nAnswer: {row.answer}"
        assert prompt not in localizer
    # the teacher-forced check agrees with real greedy decoding
    shots = "Question: Solve 7 + 5?\nAnswer: 12\n\nQuestion: Solve 23 - 9?\nAnswer: 14\n\n"
    shots += "Question: Solve 14 + 31?\nAnswer: 45\n\n"
    for row in result.head(6).itertuples():
        ids = tok(f"{shots}Question: Solve {row.a} {row.op} {row.b}?\nAnswer:", return_tensors="pt")
        out = default_model.generate(
            ids.input_ids, max_new_tokens=6, do_sample=False, verbose=False,
            return_type="tokens", use_past_kv_cache=False,
        )  # fmt: skip
        text = tok.decode(out[0, ids.input_ids.shape[1] :])
        number = re.match(r" (-?\d+)(?!\d)", text)
        assert (number is not None and int(number.group(1)) == row.answer) == row.correct


@pytest.mark.model
def test_false_belief_on_tomloc(default_model, shared_data):
    stories = evaluate.load_tomloc(shared_data / "tomloc", answers=TOMLOC_ANSWERS)
    result = evaluate.false_belief(default_model, stories, progress=False)
    assert len(result) == 20
    assert (
        result["correct"]
        == ((result["logprob_true"] > result["logprob_false"]) == result["answer"])
    ).all()
    held = evaluate.false_belief(default_model, progress=False)
    assert len(held) == 24 and held["logprob_true"].notna().all()
