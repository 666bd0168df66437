import io
import json
import shutil
import subprocess
import sys
import textwrap

import pytest
from PIL import Image

from huajia.curation.runner import Recipe, curate, load_config, parse_bytes
from huajia.errors import HuajiaError
from huajia.world.dataset import write_dataset


@pytest.fixture
def salted(tmp_path):
    """20 good shapes-world pictures + 3 broken files, 3 duplicates, 3 wrong sizes, 1 missing."""
    folder = tmp_path / "salted"
    write_dataset(folder, 20, seed=4, workers=1)
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    images = folder / "images"
    (images / "empty.png").write_bytes(b"")
    good = (images / "0000000.png").read_bytes()
    (images / "truncated.png").write_bytes(good[: len(good) // 2])
    (images / "notes.png").write_text("this is not a picture")
    for k in range(3):  # exact copies and a JPEG re-encode: perceptual duplicates
        shutil.copy(images / f"000000{k}.png", images / f"copy{k}.png")
    buffer = io.BytesIO()
    Image.open(images / "0000003.png").convert("RGB").save(buffer, "JPEG", quality=90)
    (images / "copy3.jpg").write_bytes(buffer.getvalue())
    Image.new("RGB", (40, 40), "white").save(images / "tiny.png")
    Image.new("RGB", (256, 100), "white").save(images / "wide.png")
    Image.new("RGB", (60, 60), "red").save(images / "small.png")
    extra = ["empty.png", "truncated.png", "notes.png", "copy0.png", "copy1.png", "copy2.png",
             "copy3.jpg", "tiny.png", "wide.png", "small.png", "gone.png"]
    rows += [{"file_name": f"images/{name}", "text": "a red circle"} for name in extra]
    (folder / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return folder


def test_salted_folder_exact_counts(salted, tmp_path):
    recipe = Recipe(str(salted), str(tmp_path / "clean"), (
        ("image_shape_filter", {"min_width": 64, "min_height": 64}),
        ("image_aspect_ratio_filter", {"min_ratio": 0.5, "max_ratio": 2.0}),
        ("image_deduplicator", {"method": "phash"})), workers=2)
    report = curate(recipe)
    assert report.total == 31 and report.kept == 20
    assert dict(report.dropped) == {"load": 4, "image_shape_filter": 2,
                                    "image_aspect_ratio_filter": 1, "image_deduplicator": 4}
    assert report.reasons["load"]["zero-byte file"] == 1
    assert report.reasons["load"]["missing file"] == 1
    dropped = [json.loads(x) for x in (tmp_path / "clean/dropped.jsonl").read_text().splitlines()]
    assert {d["id"] for d in dropped if d["op"] == "image_deduplicator"} == {
        "images/copy0.png", "images/copy1.png", "images/copy2.png", "images/copy3.jpg"}
    kept = (tmp_path / "clean/metadata.jsonl").read_text().splitlines()
    assert len(kept) == 20 and json.loads(kept[0])["text"]


def test_verifier_stands_in_for_clip(salted, tmp_path):
    rows = [json.loads(x) for x in (salted / "metadata.jsonl").read_text().splitlines()][:20]
    rows[0]["text"] = "four green stars"  # a caption that lies about its picture
    (salted / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    recipe = Recipe(str(salted), str(tmp_path / "c"),
                    (("image_text_similarity_filter", {"min_score": 0.99}),))
    report = curate(recipe)
    assert report.total == 20 and report.dropped["image_text_similarity_filter"] == 1


def test_seed_data_juicer_config_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/data-juicer/input").mkdir(parents=True)
    (tmp_path / "data/lora_dataset/train").mkdir(parents=True)
    with open(tmp_path / "data/data-juicer/input/metadata.jsonl", "w") as handle:
        for data_id, size in enumerate([(1024, 1024), (1200, 1024), (512, 512), (1024, 3000)]):
            path = tmp_path / f"data/lora_dataset/train/{data_id}.jpg"
            Image.new("RGB", size, "white").save(path)
            handle.write(json.dumps({"text": "二次元", "image": [str(path)]}) + "\n")
    config = tmp_path / "data/data-juicer/data_juicer_config.yaml"
    config.write_text(textwrap.dedent("""
        # global parameters
        project_name: 'data-process'
        dataset_path: './data/data-juicer/input/metadata.jsonl' # path to your dataset
        np: 4 # number of subprocess to process your dataset
        text_keys: 'text'
        image_key: 'image'
        image_special_token: '<__dj__image>'
        export_path: './data/data-juicer/output/result.jsonl'
        # process schedule
        # a list of several process operators with their arguments
        process:
          - image_shape_filter:
              min_width: 1024
              min_height: 1024
          - image_aspect_ratio_filter:
              min_ratio: 0.5
              max_ratio: 2.0
        """))
    done = subprocess.run([sys.executable, "-m", "huajia", "curate", "--config", str(config)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = (tmp_path / "data/data-juicer/output/result.jsonl").read_text().splitlines()
    assert [json.loads(r)["text"] for r in result] == ["二次元", "二次元"]
    assert json.loads(result[0])["image"][0].endswith("0.jpg")
    report = json.loads((tmp_path / "data/data-juicer/output/report.json").read_text())
    assert report["dropped"] == {"image_shape_filter": 1, "image_aspect_ratio_filter": 1}
    assert (tmp_path / "data/data-juicer/output/report.png").stat().st_size > 1000
    # Data-Juicer's console goes to a log beside the results; huajia's report stays on screen
    log = (tmp_path / "data/data-juicer/output/data_juicer.log").read_text(encoding="utf-8")
    assert "OP [image_shape_filter] Done" in log and "| INFO" in log
    console = done.stdout + done.stderr
    assert "| INFO" not in console and "data_juicer" not in console.replace("data_juicer.log", "")
    assert "image_shape_filter" in done.stdout and "data_juicer.log" in done.stdout


def test_plain_folder_with_txt_captions_and_nsfw_filter(tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    for k in range(3):
        Image.new("RGB", (96, 96), (40 * k, 200, 90)).save(folder / f"{k}.png")
        (folder / f"{k}.txt").write_text(f"picture {k}")
    report = curate(Recipe(str(folder), str(tmp_path / "o"),
                           (("image_nsfw_filter", {"score_threshold": 0.5}),)))
    assert report.kept == 3
    rows = [json.loads(x) for x in (tmp_path / "o/metadata.jsonl").read_text().splitlines()]
    assert rows[0]["text"] == "picture 0"


def test_config_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset_path: x\nprocess:\n  - image_blur_filter: {}\n")
    with pytest.raises(HuajiaError, match="unknown operator 'image_blur_filter'"):
        curate(load_config(bad, str(tmp_path / "o")))
    bad.write_text("process: [\n")
    with pytest.raises(HuajiaError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(HuajiaError, match="does not exist"):
        curate(Recipe(str(tmp_path / "none"), str(tmp_path / "o"), ()))
    assert parse_bytes("1.5MB") == 1_500_000 and parse_bytes("2KiB") == 2048
    with pytest.raises(HuajiaError, match="byte size"):
        parse_bytes("lots")


def test_curate_on_ray_keeps_and_drops_exactly_what_a_local_run_does(salted, tmp_path,
                                                                     ray_cluster):
    """Data-Juicer's Ray executor keeps the same files; it reports no per-operator counts
    (no tracer, no per-operator log in Data-Juicer 1.6), so its drops are named together."""
    steps = (("image_shape_filter", {"min_width": 64, "min_height": 64}),
             ("image_aspect_ratio_filter", {"min_ratio": 0.5, "max_ratio": 2.0}))
    here = curate(Recipe(str(salted), str(tmp_path / "here"), steps))
    there = curate(Recipe(str(salted), str(tmp_path / "ray"), steps, workers=2, ray="local"))
    assert (here.total, here.kept) == (there.total, there.kept) == (31, 24)  # 20 + 4 copies
    assert dict(here.dropped) == {"load": 4, "image_shape_filter": 2,
                                  "image_aspect_ratio_filter": 1}
    assert dict(there.dropped) == {"load": 4, "data-juicer": 3}
    assert (tmp_path / "here/metadata.jsonl").read_text() == \
        (tmp_path / "ray/metadata.jsonl").read_text()
    assert sorted(p.name for p in (tmp_path / "here/images").iterdir()) == \
        sorted(p.name for p in (tmp_path / "ray/images").iterdir())
    with pytest.raises(HuajiaError, match="image_deduplicator does not run on .* Ray"):
        curate(Recipe(str(salted), str(tmp_path / "no"), (("image_deduplicator", {}),),
                      ray="local"))
