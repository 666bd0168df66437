"""`huajia models PATH` as a user runs it: what huajia makes of a model (family, pipeline,
sizes, prediction, samplers, features) as a table or JSON, for every family fixture; `--family`
forces a family (also on generate, think and serve); a path it cannot read is one line, exit 2."""

from __future__ import annotations

import json

import pytest
from tests.family_fixtures import FAMILIES, PIPELINES

from huajia.engine.families import FAMILY_NAMES

FAMILY_OF = {"sd15": "sd"}  # fixture name → family name, where they differ
KEYS = {"model", "hash", "family", "label", "pipeline", "native_size", "size_multiple",
        "prediction", "samplers", "prompt_window", "features"}


@pytest.mark.parametrize("name", FAMILIES)
def test_json_describes_every_family(cli, family_dirs, name):
    code, out, err = cli("models", str(family_dirs[name]), "--json")
    assert code == 0, err
    record = json.loads(out)
    assert set(record) >= KEYS
    assert record["family"] == FAMILY_OF.get(name, name)
    assert record["pipeline"] == PIPELINES[name] and record["model"] == str(family_dirs[name])
    assert record["samplers"] and record["size_multiple"] >= 1 and record["native_size"] > 0
    assert set(record["features"]) >= {"prompt_weights", "negative_prompt"}


def test_the_table_names_what_a_user_asks(cli, family_dirs):
    code, out, err = cli("models", str(family_dirs["flux"]))
    assert code == 0, err
    for needle in ("family", "flux", "FLUX.1", "FluxPipeline", "native size", "1024 px",
                   "size multiple", "16 px", "prediction", "flow", "samplers", "euler",
                   "features", "negative prompt ✓", "guidance rescale ✗"):
        assert needle in out, (needle, out)
    assert "euler_a" not in out  # a flow model lists the flow samplers only


def test_family_forces_a_family(cli, family_dirs):
    code, out, err = cli("models", str(family_dirs["sd15"]), "--family", "sdxl", "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["family"] == "sdxl" and record["pipeline"] == "StableDiffusionPipeline"


def test_generate_takes_family(cli, sd_dir, tmp_path):
    code, out, err = cli("generate", "a red circle", "--model", str(sd_dir), "--family", "sd",
                         "--steps", "1", "--size", "64x64", "--seed", "2", "--out",
                         str(tmp_path))
    assert code == 0, err
    assert [p.name for p in tmp_path.glob("*.png")] == ["00000-2.png"]


def test_every_family_is_in_the_help():
    from huajia.params import params
    from huajia.serving.config import ServeConfig

    help_text = params(ServeConfig)["family"][1].help
    assert all(name in help_text for name in FAMILY_NAMES), help_text


@pytest.mark.parametrize("args,needle", [
    (("models", "/nonexistent/model"), "no model at '/nonexistent/model'"),
    (("models", "{tmp}"), "is not a diffusers pipeline folder"),
    (("models", "{broken}"), "cannot load the pipeline"),
    (("models", "{sd}", "--family", "sd4"), "unknown family 'sd4'; known: sd, sdxl"),
    (("generate", "x", "--model", "{sd}", "--family", "sd4"), "unknown family 'sd4'"),
    (("think", "a red circle", "--model", "{sd}", "--family", "sd4"), "unknown family 'sd4'"),
    (("serve", "--model", "{sd}", "--family", "sd4"), "unknown family 'sd4'"),
])
def test_what_cannot_be_read_is_one_line_exit_2(cli, sd_dir, tmp_path, args, needle):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model_index.json").write_text("{not json")
    paths = {"tmp": tmp_path, "broken": broken, "sd": sd_dir}
    code, out, err = cli(*(arg.format(**paths) for arg in args))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], err


def test_generate_with_a_progress_bar_on_a_legacy_callback_pipeline(cli, family_dirs, tmp_path):
    """PixArt-Σ's pipeline has only the per-step ``callback`` (no ``num_timesteps``): the
    progress bar still counts its steps."""
    code, out, err = cli("generate", "a red circle", "--model", str(family_dirs["pixart_sigma"]),
                         "--steps", "2", "--size", "64x64", "--out", str(tmp_path))
    assert code == 0, err
    assert len(list(tmp_path.glob("*.png"))) == 1
