"""The paths built on top of painting, on every model family (tests/family_fixtures): a size
beyond the model's native one (painted native, then upscaled), a seeded series with Chinese
and English panels, and a batch file painted here and on Ray, with ``--family`` and the load
options reaching the engine of each."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from tests.family_fixtures import FAMILIES

from huajia.batch.lines import BatchLine, read_lines
from huajia.batch.runner import BatchSettings, run_batch
from huajia.engine.engine import Engine
from huajia.engine.infotext import parse_infotext
from huajia.engine.loading import LoadOptions
from huajia.engine.request import GenerationRequest
from huajia.engine.series import make_series

FAMILY_OF = {"sd15": "sd"}  # fixture name → family name, where they differ


@pytest.fixture(scope="module")
def engines():
    return {}  # one per family, built on first use


def _engine(engines, family_dirs, name: str) -> Engine:
    if name not in engines:
        engines[name] = Engine(str(family_dirs[name]))
    return engines[name]


def _small(engine: Engine) -> dict:
    side = max(64, engine.family.size_multiple(engine.pipe) * 4)
    return {"width": side, "height": side, "steps": 2}


@pytest.mark.parametrize("name", FAMILIES)
def test_a_size_beyond_native_is_painted_native_then_upscaled(engines, family_dirs, name):
    engine = _engine(engines, family_dirs, name)
    native, step = engine.native_size, engine.family.size_multiple(engine.pipe)
    painted = max(native, 64)  # nothing is painted below 64 pixels
    side = painted + 8 * step
    result = engine.generate(GenerationRequest("a red circle", seed=1, steps=2, width=side,
                                               height=side, upscaler="lanczos"))
    [image] = result.images
    fields = parse_infotext(result.infotexts[0])
    assert image.size == (side, side)
    assert fields["Size"] == f"{painted}x{painted}" and fields["Hires resize"] == f"{side}x{side}"
    assert fields["Hires upscaler"] == "Lanczos"
    assert np.asarray(image).std() > 1  # a picture, not a flat field


@pytest.mark.parametrize("name", FAMILIES)
def test_a_series_is_seeded_panel_by_panel(engines, family_dirs, name):
    engine = _engine(engines, family_dirs, name)
    prompts = ["一个红色的圆", "a blue square", "一个红色的圆"]
    template = GenerationRequest(prompts[0], seed=7, negative_prompt="模糊", guidance=4.0,
                                 **_small(engine))
    panels = make_series(engine, prompts, template)
    assert [p.seed for p in panels] == [7, 8, 9]
    assert [parse_infotext(p.infotext)["Seed"] for p in panels] == ["7", "8", "9"]
    first, _, third = (np.asarray(p.image, dtype=np.int16) for p in panels)
    assert np.abs(first - third).mean() > 0  # the same prompt, another seed
    alone = engine.generate(GenerationRequest(prompts[0], seed=7, negative_prompt="模糊",
                                              guidance=4.0, **_small(engine))).images[0]
    # a panel is the picture its seed paints alone (up to the batch's float rounding)
    assert np.abs(np.asarray(alone, dtype=np.int16) - first).max() <= 2


def _lines(folder, side: int) -> list[BatchLine]:
    path = folder / "lines.jsonl"
    rows = [{"prompt": "a red circle", "seed": 1, "n": 2, "steps": 2, "size": f"{side}x{side}"},
            {"prompt": "一个蓝色的正方形", "seed": 5, "steps": 2, "size": f"{side}x{side}",
             "negative_prompt": "模糊"}]
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    lines, errors = read_lines(path, think=False)
    assert not errors
    return lines


def _folder(path) -> tuple[dict, list]:
    rows = [json.loads(line) for line in (path / "metadata.jsonl").read_text().splitlines()]
    pictures = {row["file_name"]: np.asarray(Image.open(path / row["file_name"]))
                for row in rows}
    return pictures, sorted(rows, key=lambda row: row["file_name"])


@pytest.mark.parametrize("name", FAMILIES)
def test_a_batch_file_is_painted_on_every_family(engines, family_dirs, tmp_path, name):
    side = _small(_engine(engines, family_dirs, name))["width"]
    settings = BatchSettings(str(family_dirs[name]), threads=1, family=FAMILY_OF.get(name, name),
                             load=LoadOptions(dtype="fp32"))
    summary = run_batch(_lines(tmp_path, side), tmp_path / "out", settings)
    assert summary.written == 3
    pictures, rows = _folder(tmp_path / "out")
    assert [row["seed"] for row in rows] == [1, 2, 5]
    assert all(p.shape[:2] == (side, side) and p.std() > 1 for p in pictures.values())


@pytest.mark.parametrize("name", ["flux", "sana"])
def test_a_flow_family_batch_is_the_same_on_ray(family_dirs, tmp_path, ray_cluster, name):
    settings = BatchSettings(str(family_dirs[name]), threads=1)
    lines = _lines(tmp_path, 64)
    here = run_batch(lines, tmp_path / "here", settings)
    on_ray = run_batch(lines, tmp_path / "ray", settings, ray_address="local", workers=2)
    assert here.written == on_ray.written == 3
    (here_pictures, here_rows), (ray_pictures, ray_rows) = (_folder(tmp_path / "here"),
                                                            _folder(tmp_path / "ray"))
    assert here_rows == ray_rows
    assert all(np.array_equal(here_pictures[k], ray_pictures[k]) for k in here_pictures)


def test_family_and_load_options_reach_edit_batch_and_eval(family_dirs, tmp_path, cli):
    """``--family`` and ``--dtype`` are flags of edit, batch and eval (``--family`` of training
    too): a wrong family is one line before any model loads, a right one paints."""
    folder = str(family_dirs["sana"])
    picture = tmp_path / "in.png"
    Image.new("RGB", (64, 64), (200, 40, 40)).save(picture)
    mask = tmp_path / "mask.png"
    Image.new("L", (64, 64), 255).save(mask)
    lines = tmp_path / "lines.jsonl"
    lines.write_text(json.dumps({"prompt": "a red circle", "seed": 1, "steps": 2,
                                 "size": "64x64"}) + "\n")
    commands = {
        "edit": ["edit", str(picture), "a blue square", "--mask", str(mask), "--steps", "2",
                 "--model", folder, "--out", str(tmp_path / "edit")],
        "batch": ["batch", str(lines), "--out", str(tmp_path / "batch"), "--model", folder],
        "eval": ["eval", "shapes", "--model", folder, "--specs-per-task", "1", "-n", "1",
                 "--size", "64", "--steps", "2"],
    }
    for command, args in commands.items():
        code, _, err = cli(*args, "--family", "sdxxl")
        assert code == 2 and "unknown family 'sdxxl'" in err, (command, err)
        code, _, err = cli(*args, "--family", "sana", "--dtype", "fp32")
        assert code == 0, (command, err)
    assert len(list((tmp_path / "edit").glob("*.png"))) == 1
    assert len(list((tmp_path / "batch" / "images").glob("*.png"))) == 1
    for train in (["train", "lora", "--data", str(tmp_path), "--out", str(tmp_path / "lora")],
                  ["train", "rl", "--out", str(tmp_path / "rl")]):
        code, _, err = cli(*train, "--model", folder, "--family", "sdxxl")
        assert code == 2 and "unknown family 'sdxxl'" in err, (train, err)


# thinking itself runs on every family in tests/thinking; compare adds the plain picture and
# the sheet, the same on every family: two flow families here (a thinking run is slow)
@pytest.mark.parametrize("name", ["flux", "sana"])
def test_compare_puts_plain_and_thinking_side_by_side(family_dirs, tmp_path, cli, name):
    out = tmp_path / "compare.png"
    code, stdout, err = cli("compare", "一个红色的圆在蓝色正方形左边", "--model",
                            str(family_dirs[name]), "--steps", "2", "--seed", "3", "--size",
                            "64x64", "--out", str(out))
    assert code == 0, err
    assert str(out) in stdout and Image.open(out).size[0] > 400
