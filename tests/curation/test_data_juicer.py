"""``huajia curate --config`` is Data-Juicer: the same samples as ``dj-process``, huajia's
operators under Data-Juicer's names, one-line refusals before any work."""

import json
import shutil
import subprocess
import textwrap

import pytest
from PIL import Image, ImageDraw

from huajia.errors import HuajiaError

SEED_PLUS = """
    project_name: 'data-process'
    dataset_path: '{data}'
    np: 1
    text_keys: 'text'
    image_key: 'image'
    image_special_token: '<__dj__image>'
    export_path: '{export}'
    process:
      - image_shape_filter:
          min_width: 100
          min_height: 100
          any_or_all: any
      - image_aspect_ratio_filter:
          min_ratio: 0.5
          max_ratio: 2.0
          any_or_all: any
      - text_length_filter:
          min_len: 6
      - image_size_filter:
          max_size: 3KB
    """


@pytest.fixture
def dataset(tmp_path):
    """Pictures of every kind the seed's filters and two more judge: small, wide, tall, a
    short caption, a large noisy file, and ones that pass."""
    import numpy as np

    rows = []
    sizes = [(128, 128), (64, 64), (300, 60), (60, 300), (250, 110), (110, 150), (150, 150),
             (120, 120)]
    for k, size in enumerate(sizes):
        path = tmp_path / "images" / f"{k}.png"
        path.parent.mkdir(exist_ok=True)
        if k == 6:  # noise: a file far above 3 KB
            pixels = np.random.default_rng(0).integers(0, 255, (*size[::-1], 3), np.uint8)
            Image.fromarray(pixels).save(path)
        else:  # a different layout each (flat pictures would share one perceptual hash)
            image = Image.new("RGB", size, (30 * k, 120, 200))
            ImageDraw.Draw(image).rectangle((k * 7, k * 5, k * 7 + size[0] // 3,
                                             k * 5 + size[1] // 2), fill=(250, 250 - 20 * k, 0))
            ImageDraw.Draw(image).ellipse((size[0] // 2, 0, size[0], size[1] // (k + 1)),
                                          fill=(0, 0, 0))
            image.save(path)
        text = "二次元" if k == 5 else f"二次元,紫色长发少女 {k}"
        rows.append({"text": text, "image": [str(path)]})
    data = tmp_path / "input.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return data


def _config(tmp_path, name, data, body=SEED_PLUS, **fields):
    export = tmp_path / name / "result.jsonl"
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(body).format(data=data, export=export, **fields),
                    encoding="utf-8")
    return path, export


def _kept(export):
    return [(row["text"], row["image"]) for row in map(json.loads, export.read_text(
        encoding="utf-8").splitlines())]


def test_huajia_keeps_exactly_what_dj_process_keeps(dataset, tmp_path):
    from huajia.curation.dj import run_config, write_run_report

    theirs, their_export = _config(tmp_path, "dj", dataset)
    ours, our_export = _config(tmp_path, "huajia", dataset)
    dj_process = shutil.which("dj-process")
    done = subprocess.run([dj_process, "--config", str(theirs)], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    run = run_config(ours)
    assert _kept(our_export) == _kept(their_export)
    assert [text for text, _ in _kept(our_export)] == ["二次元,紫色长发少女 0",
                                                      "二次元,紫色长发少女 7"]
    assert (run.total, run.kept) == (8, 2)
    assert dict(run.dropped) == {"image_shape_filter": 3, "image_aspect_ratio_filter": 1,
                                 "text_length_filter": 1, "image_size_filter": 1}
    json_path, png_path = write_run_report(run, our_export.parent)
    record = json.loads(json_path.read_text(encoding="utf-8"))
    assert {d["op"] for d in record["dropped_pictures"]} == set(run.dropped)
    assert Image.open(png_path).size[0] >= 128 * 6  # a contact sheet of the six dropped


def _predictor(folder):
    """A random-weight simple-aesthetics-predictor folder: a tiny CLIP vision tower and the
    LAION linear head in the same weights file."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                              num_attention_heads=4, image_size=32, patch_size=8,
                              projection_dim=16)
    CLIPVisionModelWithProjection(config).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
                       ).save_pretrained(folder)
    state = load_file(folder / "model.safetensors")
    state["predictor.weight"] = torch.randn(1, 16) * 20
    state["predictor.bias"] = torch.tensor([5.0])
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})


AESTHETICS_AND_DEDUP = """
    dataset_path: '{data}'
    text_keys: 'text'
    image_key: 'image'
    export_path: '{export}'
    process:
      - image_deduplicator:
          method: phash
      - image_aesthetics_filter:
          hf_scorer_model: '{predictor}'
          min_score: {threshold}
          max_score: 100
    """


def test_aesthetics_predictor_by_local_path_and_imagehash_dedup(dataset, tmp_path):
    from huajia.curation.dj import run_config
    from huajia.curation.dj_ops import AestheticsPredictor

    rows = [json.loads(line) for line in dataset.read_text(encoding="utf-8").splitlines()]
    copy = dict(rows[0], text="a copy")  # the same picture again: a duplicate
    dataset.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in [*rows, copy]),
                       encoding="utf-8")
    _predictor(tmp_path / "predictor")
    scores = AestheticsPredictor(str(tmp_path / "predictor")).scores(
        [Image.open(r["image"][0]) for r in rows])
    threshold = sorted(scores)[len(scores) // 2] / 10  # Data-Juicer's scale: score / 10
    config, export = _config(tmp_path, "aes", dataset, AESTHETICS_AND_DEDUP,
                             predictor=tmp_path / "predictor", threshold=threshold)
    run = run_config(config)
    expected = [(r["text"], r["image"]) for r, s in zip(rows, scores, strict=True)
                if s / 10 >= threshold]
    assert _kept(export) == expected and len(expected) == len(rows) - len(rows) // 2
    assert dict(run.dropped) == {"image_deduplicator": 1,
                                 "image_aesthetics_filter": len(rows) // 2}


@pytest.mark.parametrize(("operator", "message"), [
    ("image_blur_filterr: {}", "unknown operator 'image_blur_filterr'; did you mean"),
    ("video_motion_score_raft_filter: {}", "'video_motion_score_raft_filter' needs torchvision"),
    ("image_aesthetics_filter: {hf_scorer_model: /no/such/predictor}",
     "image_aesthetics_filter: hf_scorer_model '/no/such/predictor' is not a local folder"),
    ("image_text_similarity_filter: {hf_clip: openai/clip-vit-base-patch32}",
     "hf_clip 'openai/clip-vit-base-patch32' is not a local folder"),
])
def test_refused_in_one_line_before_any_work(dataset, tmp_path, operator, message):
    from huajia.curation.dj import run_config

    escaped = operator.replace("{", "{{").replace("}", "}}")
    body = "dataset_path: '{data}'\nexport_path: '{export}'\nprocess:\n  - " + escaped + "\n"
    config, export = _config(tmp_path, "bad", dataset, body)
    with pytest.raises(HuajiaError, match=message) as error:
        run_config(config)
    assert "\n" not in str(error.value)
    assert not export.parent.exists()  # nothing ran


def test_world_caption_mapper_captions_what_the_detector_sees(tmp_path):
    """Pictures of the shapes world with wrong captions come back captioned in English and
    Chinese with what is in them: the world's verifier passes every new caption."""
    from huajia.curation.dj import run_config
    from huajia.world.dataset import write_dataset
    from huajia.world.parser import parse
    from huajia.world.verifier import verify

    folder = write_dataset(tmp_path / "world", 4, seed=5, workers=1)
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    data = tmp_path / "input.jsonl"
    data.write_text("".join(json.dumps({"text": "a cat", "image": [str(folder / r["file_name"])]})
                            + "\n" for r in rows), encoding="utf-8")
    body = """
        dataset_path: '{data}'
        export_path: '{export}'
        text_keys: 'text'
        image_key: 'image'
        process:
          - world_caption_mapper: {{}}
        """
    config, export = _config(tmp_path, "captioned", data, body)
    run_config(config)
    captioned = [json.loads(line) for line in export.read_text(encoding="utf-8").splitlines()]
    assert len(captioned) == 4
    for row in captioned:
        image = Image.open(row["image"][0]).convert("RGB")
        for text in (row["text"], row["text_zh"]):
            parsed = parse(text)
            assert verify(image, parsed.spec, parsed.lang).score == 1.0, text
        assert row["text"].startswith("a photo of") and "画面中" in row["text_zh"]
