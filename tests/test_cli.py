"""The command line: its commands and their names (fast), and ``tl-localize localize`` on the
default model (model tier, a small contrast)."""

import json

import pandas as pd
import pytest

from tl_localize import Contrast, Units
from tl_localize.cli import build_parser, main
from tl_localize.models import resolve_dtype


@pytest.fixture
def small_csv(tmp_path):
    full = Contrast.builtin("language")
    df = pd.DataFrame(
        {
            "text": full.positive[:24] + full.negative[:24],
            "condition": ["S"] * 24 + ["N"] * 24,
        }
    )
    path = tmp_path / "small.csv"
    df.to_csv(path, index=False)
    return path


@pytest.mark.model
def test_localize_command_writes_a_complete_record(small_csv, tmp_path, default_model, capsys):
    out = tmp_path / "out"
    args = ["localize", "--contrast", str(small_csv), "--positive", "S", "--negative", "N"]
    args += ["--top", "0.5%", "--pooling", "last", "--out", str(out), "--quiet"]
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out
    files = {p.name for p in out.iterdir()}
    assert files == {
        "record.json",
        "stats.safetensors",
        "units.safetensors",
        "units.csv",
        "conditions.csv",
        "layers.png",
    }
    record = json.loads((out / "record.json").read_text())
    assert record["contrast"]["sizes"] == {"S": 24, "N": 24}
    assert record["config"]["site"] == "resid_post" and record["n_selected"] == 86
    assert record["tl_localize"] == {"format": "tl_localize.results/1", "kind": "localization"}
    auto = str(resolve_dtype("auto")).removeprefix("torch.")  # bfloat16 on bf16-fast machines
    assert record["model"]["dtype"] == auto and len(record["model"]["fingerprint"]) == 16
    assert record["model"]["hardware"]["device"] in ("cpu", "cuda:0")
    assert record["summary"].startswith("The small localizer (S > N) selected 86 of 17,280")
    assert record["command"].startswith("tl-localize localize --contrast")
    assert {"forward_s", "load_model_s"} <= set(record["timings"])
    assert {"torch", "transformer-lens", "transformers"} <= set(record["versions"])
    units = Units.load(out / "units.safetensors", default_model)
    table = pd.read_csv(out / "units.csv")
    assert len(table) == 30 * 576 and table["selected"].sum() == len(units) == 86

    # an existing folder is never overwritten without --force
    assert main(args) == 2
    assert "already exists; choose another folder or pass force=True" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0

    # attribution for a contrast that is not built in: no stimuli for views, and it says so
    att = tmp_path / "att"
    attribute = ["attribute", "--units", str(out), "--n-items", "8", "--check", "0"]
    assert main([*attribute, "--views", "--out", str(att), "--quiet"]) == 0
    assert "note: no heads.csv or views: the contrast 'small' is not built in" in (
        capsys.readouterr().out
    )
    assert not {"heads.csv", "check.csv", "top_stimuli.view.html"} & {p.name for p in att.iterdir()}


@pytest.mark.model
def test_band_and_reliability_commands(small_csv, tmp_path, default_model, capsys):
    contrast = ["--contrast", str(small_csv), "--positive", "S", "--negative", "N"]
    low, top = tmp_path / "low", tmp_path / "top"
    for out, choice in ((low, ["--band", "99-100%"]), (top, ["--top", "1%"])):
        argv = ["localize", *contrast, *choice, "--pooling", "last", "--out", str(out)]
        assert main([*argv, "--quiet"]) == 0
    a, b = Units.load(low / "units.safetensors"), Units.load(top / "units.safetensors")
    assert len(a) == len(b) == 172 and len(a & b) == 0
    record = json.loads((low / "record.json").read_text())
    assert record["config"]["band"] == [0.99, 1.0] and record["config"]["top"] is None
    assert record["selection"]["method"] == "band" and "band 99-100%" in record["summary"]
    capsys.readouterr()
    power = tmp_path / "power"
    argv = ["reliability", *contrast, "--pooling", "last", "--sizes", "4,12", "--n-splits", "5"]
    assert main([*argv, "--out", str(power), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert {p.name for p in power.iterdir()} == {
        "record.json", "power.csv", "splits.csv", "power.png",
    }  # fmt: skip
    table = pd.read_csv(power / "power.csv")
    assert table["size"].tolist() == [4, 12] and (table["n_splits"] == 5).all()
    record = json.loads((power / "record.json").read_text())
    assert record["tl_localize"]["kind"] == "localizer power"
    assert record["config"]["sizes"] == [4, 12] and record["summary"] in printed
    assert "12 stimuli per condition" in record["summary"] or "from 4 " in record["summary"]


@pytest.mark.model
def test_cli_errors_are_messages(small_csv, tmp_path, capsys):
    out = str(tmp_path / "o")
    assert main(["localize", "--contrast", str(small_csv), "--out", out]) == 2
    assert "name its positive and negative conditions" in capsys.readouterr().err
    assert main(["localize", "--contrast", "vision", "--out", out]) == 2
    assert "No built-in contrast 'vision'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.model
def test_localize_command_md_and_tomloc(tmp_path, shared_data, default_model):
    out = tmp_path / "md"
    assert main(["localize", "--contrast", "md", "--top", "50", "--out", str(out), "--quiet"]) == 0
    record = json.loads((out / "record.json").read_text())
    assert record["contrast"]["name"] == "md" and record["contrast"]["pooling"] == "mean"
    assert record["contrast"]["sizes"] == {"hard": 100, "easy": 100}
    out = tmp_path / "tomloc"
    args = ["localize", "--contrast", str(shared_data / "tomloc"), "--top", "50"]
    assert main([*args, "--out", str(out), "--quiet"]) == 0
    record = json.loads((out / "record.json").read_text())
    assert record["contrast"]["sizes"] == {"false_belief": 10, "false_photo": 10}


# -- commands named after the functions they run; the old names stay as aliases -----------
RENAMED = [
    ("compare-ablation", "ablate", ["--units", "loc", "--n-random", "2", "--match", "layer"]),
    ("brain-alignment", "brain", ["--units", "loc", "--data", "d.csv", "--no-include-all"]),
    ("unit-attribution", "attribute", ["--units", "loc", "--check", "4", "--check-items", "8"]),
]


@pytest.mark.parametrize(("name", "alias", "argv"), RENAMED)
def test_a_command_and_its_alias_parse_alike(name, alias, argv):
    parser = build_parser()
    new = vars(parser.parse_args([name, *argv, "--out", "o"]))
    old = vars(parser.parse_args([alias, *argv, "--out", "o"]))
    assert new.pop("command") == name and old.pop("command") == alias
    assert new == old and new["func"].__name__.startswith("_cmd_")
    usage = parser.format_help()
    assert name in usage and alias in usage


def test_renamed_options_read_into_the_configs():
    parser = build_parser()
    args = parser.parse_args(["compare-ablation", *RENAMED[0][2], "--out", "o"])
    assert args.n_random == 2 and args.match == ("layer",) and args.n_boot == 1000
    args = parser.parse_args(["brain-alignment", *RENAMED[1][2], "--out", "o"])
    assert args.include_all is False and args.folds == 10
    args = parser.parse_args(["unit-attribution", *RENAMED[2][2], "--out", "o"])
    assert args.check_units == 4 and args.check_items == 8 and args.check_kind == "patch"
    args = parser.parse_args(["unit-attribution", "--units", "u", "--out", "o"])
    assert args.check_units == 40 and args.check_items == 32  # check_attribution's defaults


@pytest.mark.parametrize(("name", "alias", "argv"), RENAMED)
def test_a_bad_setting_is_named_by_its_option_under_both_names(name, alias, argv, tmp_path, capsys):
    bad = {"ablate": ["--n-boot", "5"], "brain": ["--folds", "1"], "attribute": ["--check", "1"]}
    option = bad[alias][0]
    for command in (name, alias):
        argv = [command, "--units", "nothing", "--data", "d.csv", *bad[alias]]
        argv = [a for a in argv if command.startswith("brain") or a not in ("--data", "d.csv")]
        assert main([*argv, "--out", str(tmp_path / "o")]) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith("tl-localize: error: ") and option in line
    assert not (tmp_path / "o").exists()
