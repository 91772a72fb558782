"""Top stimuli, head writes and circuitsvis views on a tiny random model."""

import inspect

import pytest
import torch

from tl_localize import (
    LocalizeError,
    Units,
    head_attention_view,
    head_writes,
    top_stimuli,
    top_stimuli_view,
    unit_tokens_view,
)
from tl_localize.activations import pooled_activations
from tl_localize.views_html import BUNDLE_TAG

TEXTS = ["the cat sat", "dog runs far away", "a b c d", "hello world", "zzq xv"]


@pytest.fixture(scope="module")
def units():
    mask = torch.zeros(3, 32, dtype=torch.bool)
    mask[1, 3] = mask[2, 5] = mask[2, 7] = True
    return Units(mask, "resid_post", "tiny")


def test_top_stimuli_are_the_most_active_texts(tiny, units):
    table = top_stimuli(tiny, units, TEXTS, k=2, pooling="mean")
    assert len(table) == 6 and list(table["rank"][:2]) == [1, 2]
    pooled = pooled_activations(tiny, TEXTS, ["blocks.2.hook_resid_post"], pooling="mean")
    acts = pooled["blocks.2.hook_resid_post"][:, 5]
    best = TEXTS[int(acts.abs().argmax())]
    row = table[(table["unit"] == "L2.5") & (table["rank"] == 1)].iloc[0]
    assert row["text"] == best
    assert row["activation"] == pytest.approx(float(acts[int(acts.abs().argmax())]), rel=1e-5)
    order = torch.zeros(3, 32)
    order[2, 7] = 5.0
    assert top_stimuli(tiny, units, TEXTS, order=order, n_units=1)["unit"].unique().tolist() == [
        "L2.7"
    ]


def test_views_share_one_bundle_and_render_each_part(tiny, units):
    view = top_stimuli_view(tiny, units, TEXTS, k=2)
    assert view.html.count(BUNDLE_TAG) == 1 and view.html.count("CircuitsVis.render(") == 1
    assert "ColoredTokensMulti" in view.html and "L2.5" in view.html
    view = unit_tokens_view(tiny, units, TEXTS[:2])
    assert view.html.count(BUNDLE_TAG) == 1 and view.html.count("CircuitsVis.render(") == 2
    # every view gets a closed div, so that rendering one never replaces the next
    assert "/>" not in view.html.split(BUNDLE_TAG)[0] and view.html.count("></div>") >= 2
    # 0.2's argument order (texts, units) is an error now, as a user sees it: without the
    # runtime type checker the test suite wraps every function in
    with pytest.raises(LocalizeError, match=r"takes \(model, units, texts\)"):
        inspect.unwrap(unit_tokens_view)(tiny, TEXTS[:2], units)


def test_saved_views_keep_their_data(tiny, units, tmp_path):
    from tl_localize.views_html import read_view

    view = top_stimuli_view(tiny, units, TEXTS, k=2)
    path = view.save(tmp_path / "top.view.html")
    back = read_view(path)
    assert [p.to_dict() for p in back] == [p.to_dict() for p in view.parts]
    assert back[0].table is not None and back[0].component == "ColoredTokensMulti"
    (tmp_path / "plain.html").write_text("<html><script>alert(1)</script></html>")
    with pytest.raises(LocalizeError, match="not a view saved by tl_localize"):
        read_view(tmp_path / "plain.html")


def test_head_writes_match_a_direct_computation(tiny, units):
    frame = head_writes(tiny, units, TEXTS[:2], batch_size=1)
    assert len(frame) == 12 and frame["write"].is_monotonic_decreasing
    # layer 0 heads write into all three selected units, layer 2 heads into two
    assert set(frame.loc[frame["layer"] == 0, "n_downstream"]) == {3}
    assert set(frame.loc[frame["layer"] == 2, "n_downstream"]) == {2}
    # head 1 of layer 2, by hand: mean over tokens of |write| on dims 5 and 7
    total, n = 0.0, 0
    for text in TEXTS[:2]:
        ids = torch.tensor([tiny.tokenizer(text)["input_ids"]])
        with torch.no_grad():
            _, cache = tiny.run_with_cache(ids)
            write = cache["blocks.2.attn.hook_z"][0, :, 1] @ tiny.W_O[2, 1]
        total += float(write[:, [5, 7]].abs().sum())
        n += ids.shape[1]
    row = frame[(frame["layer"] == 2) & (frame["head"] == 1)].iloc[0]
    assert row["write"] == pytest.approx(total / n, rel=1e-4)


def test_head_attention_view(tiny, units):
    view = head_attention_view(tiny, [(0, 1), (2, 3)], TEXTS[:2])
    assert view.html.count(BUNDLE_TAG) == 1 and view.html.count("CircuitsVis.render(") == 2
    assert "L2H3" in view.html
    # the first rows of head_writes pick the heads: their names and their attention patterns
    frame = head_writes(tiny, units, TEXTS[:2])
    top = list(zip(frame["layer"].head(2), frame["head"].head(2), strict=True))
    view = head_attention_view(tiny, frame.head(2), TEXTS[:1])
    (part,) = view.parts
    assert part.title == TEXTS[0] and part.component == "AttentionHeads"
    assert part.props["attentionHeadNames"] == [f"L{layer}H{head}" for layer, head in top]
    ids = torch.tensor([tiny.tokenizer(TEXTS[0])["input_ids"]])
    with torch.no_grad():
        _, cache = tiny.run_with_cache(ids)
    expected = [cache[f"blocks.{layer}.attn.hook_pattern"][0, head] for layer, head in top]
    got = torch.tensor(part.props["attention"])
    torch.testing.assert_close(got, torch.stack(expected).float(), rtol=1e-4, atol=1e-6)
    with pytest.raises(LocalizeError, match=r"Head \(5, 0\) does not exist"):
        head_attention_view(tiny, [(5, 0)], TEXTS[:1])
    with pytest.raises(LocalizeError, match="residual-stream units"):
        head_writes(tiny, Units(torch.ones(3, 64, dtype=torch.bool), "mlp_post", "tiny"), TEXTS)
    with pytest.raises(LocalizeError, match="No texts"):
        top_stimuli(tiny, units, [])
