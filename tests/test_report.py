"""``tl-localize report``: one self-contained page from real results, checked in headless
Chromium (installed by ``make test``: Debian's chromium and chromium-driver)."""

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from tl_localize import (
    BrainData,
    Contrast,
    LocalizeError,
    brain_alignment,
    check_attribution,
    compare_ablation,
    evaluate,
    localize,
    reliability,
    unit_attribution,
)
from tl_localize.cli import main
from tl_localize.localize import Localization
from tl_localize.report import build_report, find_results, write_report
from tl_localize.study import Study, run_study
from tl_localize.views import top_stimuli_view
from tl_localize.views_html import BUNDLE_TAG


@pytest.fixture(scope="module")
def results(tiny, toy_contrast, toy_pairs, tmp_path_factory):
    """A folder of real results made on the tiny model: localization, ablation, attribution."""
    root = tmp_path_factory.mktemp("results")
    pairs = toy_pairs[:2]
    loc = localize(tiny, toy_contrast, top=6, progress=False)
    loc.save(root / "language")

    def task(model, **kw):
        return evaluate.minimal_pairs(model, pairs, **kw)

    comparison = compare_ablation(tiny, loc, [("pairs", task)], n_random=2, progress=False)
    comparison.record["command"] = "made in a test"
    comparison.save(root / "ablation")

    att = unit_attribution(tiny, "resid_post", pairs, progress=False)
    att.save(root / "attribution")
    top_stimuli_view(tiny, loc.units, toy_contrast, k=2).save(
        root / "attribution" / "top.view.html"
    )
    return root


STIMULI = ["the cat sat on the mat", "a dog ran in the park", "we saw a red fox",
           "the hen laid an egg", "my owl sleeps all day", "the cow ate the grass"]  # fmt: skip
JUNK = ["zq vbk qqp", "plo fwe zzt", "xxv qql mmp", "brq tts vvn", "kkl zzr oop", "fft yyq"]


@pytest.fixture(scope="module")
def every_kind(results, tiny, toy_contrast, toy_pairs, tiny_hf, tmp_path_factory):
    """A folder with one saved result of every kind (tiny models): the three above, a brain
    alignment, an attribution check, a localizer power, a study, and a folder an older
    release wrote (no kind)."""
    root = tmp_path_factory.mktemp("kinds")
    for name in ("language", "ablation", "attribution"):
        shutil.copytree(results / name, root / name)
    loc = Localization.load(root / "language")
    rng = np.random.default_rng(0)
    words = "the a cat dog ran sat on mat big red fox owl hen".split()
    sentences = list(dict.fromkeys(" ".join(rng.choice(words, size=5)) for _ in range(60)))[:40]
    data = BrainData.from_frame(
        pd.DataFrame({"Sentence": sentences, "EffectSize": rng.normal(size=len(sentences))}),
        name="planted",
    )
    brain_alignment(
        tiny, loc, data, n_random=2, match="uniform", folds=4, n_boot=100, n_permutations=20,
        progress=False,
    ).save(root / "brain")  # fmt: skip
    reliability(tiny, toy_contrast, top=6, sizes=[2, 4], n_splits=2, progress=False).save(
        root / "power"
    )
    check_attribution(tiny, "resid_post", toy_pairs[:2], n_units=4, n_items=2, progress=False).save(
        root / "check"
    )
    csv = root.parent / "small.csv"
    frame = pd.DataFrame({"text": STIMULI + JUNK, "condition": ["S"] * 6 + ["N"] * 6})
    frame.to_csv(csv, index=False)
    spec = {
        "name": "report-study",
        "models": [{"label": "llama", "spec": str(tiny_hf["llama"])}],
        "networks": [{"name": "lang", "contrast": str(csv), "positive": "S", "negative": "N",
                      "top": [0.05]}],
        "ablation": {"n_random": 1, "n_boot": 100, "match": ["uniform"]},
        "tasks": {"builtin": {"n_per_paradigm": 1}},
    }  # fmt: skip
    run_study(Study.from_dict(spec), root / "study", progress=False)
    old = root / "old"
    shutil.copytree(results / "ablation", old)
    record = json.loads((old / "record.json").read_text())
    (old / "record.json").write_text(json.dumps({**record, "tl_localize": None}))
    return root


def _sections(page):
    """Section title -> its markup."""
    found = re.findall(r'<section id="r\d+"><h2>(.*?)</h2>(.*?)</section>', page, re.S)
    return {title: body for title, body in found}


def test_each_kind_of_result_renders_its_card(every_kind):
    page = build_report(every_kind)
    sections = _sections(page)
    assert sorted(sections) == [
        "ablation (ablation)", "attribution (attribution)", "brain (brain alignment)",
        "check (attribution check)", "language (localization)", "old (no kind recorded)",
        "power (localizer power)", "study (study)",
    ]  # fmt: skip
    cards = {
        "language (localization)": ["Localization", "toy: words &gt; junk", "6 of 96"],
        "ablation (ablation)": ["Ablation comparison", "pairs", "2 per kind of uniform"],
        "attribution (attribution)": ["Attribution", "pairs (2 pairs)", "top by patch_abs"],
        "brain (brain alignment)": ["Brain alignment", "planted", "random (2)"],
        "power (localizer power)": ["Localizer power", "8 stimuli per condition"],
        "check (attribution check)": ["Attribution check", "4 units (top, random), 2 pairs"],
        "study (study)": ["Study", "report-study", "llama", "tl-localize study report"],
    }
    for title, facts in cards.items():
        body = sections[title]
        assert all(fact in body for fact in facts), (title, facts)
        assert 'class="error"' not in body, title
    old = sections["old (no kind recorded)"]
    assert "carries no kind" in old and "Ablation comparison" not in old
    assert "ablation.csv" in old  # its files are still shown
    # the study's job folders are the study's own, not sections
    assert not any(title.startswith("study/") for title in sections)


def test_a_damaged_folder_costs_only_its_card(every_kind, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(every_kind / "brain", damaged / "brain")
    (damaged / "brain" / "predictions.npz").write_bytes(b"not an archive")
    body = _sections(build_report(damaged))["brain (brain alignment)"]
    assert "Could not read <code>record.json</code>" in body and "predictions.npz" in body
    assert "alignment.csv" in body and "<img " in body  # the files are still shown


def browser_check(page):
    """Open ``page`` in headless Chromium; return images, views, resources and errors."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.fail(
            "Headless Chromium is needed: run 'make browser' (Debian packages chromium and "
            "chromium-driver), which 'make test' does."
        )
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.binary_location = chromium
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(page.resolve().as_uri())
        driver.execute_script("return document.readyState")
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])"
        )
        views = driver.execute_script(
            "return Array.from(document.querySelectorAll('div[id^=\"circuits-vis\"]'))"
            ".map(e => e.childElementCount)"
        )
        resources = driver.execute_script(
            "return performance.getEntriesByType('resource').map(r => r.name)"
        )
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        driver.quit()
    return images, views, resources, errors


def test_report_holds_every_result(results):
    page = build_report(results)
    assert [p.name for p in find_results(results)] == ["ablation", "attribution", "language"]
    for kind in ("(ablation)", "(attribution)", "(localization)"):
        assert kind in page
    # each card's figure (localization, ablation, attribution), ablation.png, layers.png
    assert page.count("<img ") == 5
    assert "made in a test" in page and "The whole record" in page
    assert "<th>model</th><td><code>tiny</code>" in page  # from the localization's record
    assert "selected units with the highest t" in page and "highest patch_abs" in page
    assert page.count(BUNDLE_TAG) == 1
    # nothing is fetched from elsewhere
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)


@pytest.mark.browser
def test_report_in_headless_chromium(results):
    page = write_report(results)
    assert page == results / "report.html"
    images, views, resources, errors = browser_check(page)
    assert len(images) == 5 and all(done and width > 0 for _, done, width in images), images
    assert views == [1], views  # the circuitsvis view rendered into its own div
    assert all(not r.startswith("http") for r in resources), resources
    assert errors == []


@pytest.mark.browser
def test_damaged_files_are_reported_and_the_rest_rendered(results, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(results, damaged)
    (damaged / "language" / "record.json").write_text('{"created": "2026-')
    png = damaged / "ablation" / "ablation.png"
    png.write_bytes(png.read_bytes()[:200])
    (damaged / "attribution" / "items.csv").write_text("")
    page = build_report(damaged)
    for name in ("record.json", "ablation.png", "items.csv"):
        assert f"Could not read <code>{name}</code>" in page
    # and the attribution's card, which needs items.csv
    assert page.count('class="error"') == 4 and "items.csv is empty" in page
    assert page.count("<img ") == 2  # layers.png and the ablation's card are still there
    assert "highest patch_abs" in page  # and the attribution's table
    images, _, _, errors = browser_check(write_report(damaged))
    assert len(images) == 2 and all(image[2] > 0 for image in images) and errors == []


def test_nothing_to_report(tmp_path, capsys):
    with pytest.raises(LocalizeError, match="holds no results"):
        build_report(tmp_path)
    with pytest.raises(LocalizeError, match="is not a folder"):
        build_report(tmp_path / "missing")
    assert main(["report", str(tmp_path)]) == 2
    assert "holds no results" in capsys.readouterr().err
    assert not (tmp_path / "report.html").exists()


def test_a_strangers_folder_cannot_run_code_in_the_report(results, tmp_path):
    hostile = tmp_path / "hostile"
    shutil.copytree(results, hostile)
    attack = "</code><script>alert('record')</script>"
    record = json.loads((hostile / "ablation" / "record.json").read_text())
    (hostile / "ablation" / "record.json").write_text(
        json.dumps(
            {**record, "command": attack, "summary": f"<img src=x onerror=alert(1)>{attack}"}
        )
    )
    (hostile / "ablation" / "notes.csv").write_text("a,b\n<script>alert('csv')</script>,1\n")
    # a view file whose markup runs code: only its manifest may be used, and it has none
    (hostile / "attribution" / "evil.view.html").write_text(
        "<html><body><script>alert('view')</script></body></html>"
    )
    # a manifest whose data tries to close the script element, and one with a foreign component
    view = (hostile / "attribution" / "top.view.html").read_text()
    manifest = json.loads(re.search(r'id="tl-localize-views">(.*?)</script>', view, re.S)[1])
    manifest["parts"][0]["title"] = "<script>alert('title')</script>"
    manifest["parts"][0]["props"]["labels"] = ["</script><script>alert('props')</script>"]
    (hostile / "attribution" / "tampered.view.html").write_text(
        '<script type="application/json" id="tl-localize-views">'
        + json.dumps(manifest).replace("</", "<\\/")
        + "</script>"
    )
    manifest["parts"][0]["component"] = "Evil"
    (hostile / "attribution" / "foreign.view.html").write_text(
        '<script type="application/json" id="tl-localize-views">' + json.dumps(manifest)
        + "</script>"
    )  # fmt: skip
    page = build_report(hostile)
    for word in ("record", "csv", "view", "title", "props"):
        assert f"<script>alert('{word}')" not in page, word
    assert "onerror=alert(1)>" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "Could not read <code>evil.view.html</code>" in page and "no manifest" in page
    assert "Could not read <code>foreign.view.html</code>" in page
    assert page.count("CircuitsVis.render(") == 2  # top.view.html and tampered.view.html
    assert page.count(BUNDLE_TAG) == 1
    assert "\\u003c/script\\u003e\\u003cscript\\u003ealert('props')" in page


@pytest.mark.model
@pytest.mark.browser
def test_attribute_and_report_commands(default_model, tmp_path, capsys):
    loc_dir, att_dir = tmp_path / "language", tmp_path / "attribution"
    full = Contrast.builtin("language")  # a subset, under the built-in's name and conditions
    conditions = {full.positive_condition: full.positive[:48]}
    conditions[full.negative_condition] = full.negative[:48]
    small = Contrast("language", conditions, full.positive_condition, full.negative_condition)
    localize(default_model, small, progress=False).save(loc_dir)
    args = ["attribute", "--units", str(loc_dir), "--n-items", "40", "--check", "8"]
    args += ["--check-items", "8", "--views", "--out", str(att_dir), "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Spearman rho" in out and "On 8 units and 8 pairs, the patch estimate agrees" in out
    files = {p.name for p in att_dir.iterdir()}
    assert files == {
        "attribution.safetensors", "attribution.csv", "items.csv", "record.json", "join.csv",
        "summary.csv", "check.csv", "heads.csv", "attribution.png", "layers.png", "check.png",
        "top_stimuli.view.html", "heads.view.html",
    }  # fmt: skip
    record = json.loads((att_dir / "record.json").read_text())
    assert record["command"].startswith("tl-localize attribute") and record["n_pairs"] == 40
    assert record["localization"]["contrast"]["name"] == "language"
    assert record["check"]["n_units"] == 8
    assert main(args) == 2 and "already exists" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 0
    images, views, resources, errors = browser_check(tmp_path / "report.html")
    # each section's card (localization, attribution) has its figure, then the saved figures
    names = sorted(name for name, _, _ in images)
    assert names == ["attribution", "check", "figure", "figure", "layers", "layers"], names
    assert all(done and width > 0 for _, done, width in images)
    assert views == [1, 1, 1]  # top stimuli, and the heads on a sentence and a non-word list
    assert all(not r.startswith("http") for r in resources) and errors == []
