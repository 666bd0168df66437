"""Finishing the picture (issue 30): the hires fix against plain generation at 256 px, judged by
ShapesEval at 256 px and by the second judge, with wall time per picture; then what the openai
SDK sees: ``revised_prompt`` of an expanded prompt, and how much of a picture an edit leaves
alone outside its mask (against the VAE round trip that plain inpainting would cost).
Run: python benchmarks/finishing.py [--specs-per-task 4] [--images-per-prompt 2]
Writes benchmarks/results/finishing.json and finishing_grid.png.
"""

from __future__ import annotations

import argparse
import base64
import io
import time
from pathlib import Path

import numpy as np
from _common import RESULTS, Server, report
from PIL import Image

from huajia.drawing import Tile, captioned_grid
from huajia.engine.engine import Engine
from huajia.engine.request import GenerationRequest
from huajia.evaluation.generators import EngineGenerator
from huajia.evaluation.model_report import report_model
from huajia.evaluation.prompts import shapes_eval_prompts
from huajia.world.parser import unknown_words

SIDE = 256
SETTINGS = {  # label → GenerationRequest fields beside the size
    "plain, painted at 256": {"upscaler": "none"},
    "plain 128, Lanczos to 256 (default)": {},
    "hires fix 128→256 (Lanczos, denoise 0.2)": {"hires_scale": 2.0, "hires_denoise": 0.2},
    "hires fix 128→256 (Lanczos, denoise 0.3; default)": {"hires_scale": 2.0},
    "hires fix 128→256 (latent, denoise 0.5, A1111's)": {"hires_scale": 2.0, "hires_upscaler": "latent",
                                                          "hires_denoise": 0.5},
}
TIMED_PROMPT = "a red circle to the left of a blue square"


def wall_time(engine: Engine, fields: dict, repeats: int = 3) -> float:
    """Seconds per picture of one request (batch 1), best of ``repeats``."""
    base = SIDE // 2 if fields.get("hires_scale") else SIDE
    times = []
    for seed in range(repeats):
        start = time.perf_counter()
        engine.generate(GenerationRequest(TIMED_PROMPT, seed=seed, width=base, height=base, **fields))
        times.append(time.perf_counter() - start)
    return min(times)


def judge_settings(engine: Engine, args) -> tuple[list[list], dict, list]:
    prompts = shapes_eval_prompts(args.specs_per_task)
    keep = [p.id for p in prompts[::max(1, len(prompts) // 6)]][:6]
    rows, details, samples = [], {}, []
    for label, fields in SETTINGS.items():
        print(f"judging: {label}", flush=True)
        start = time.perf_counter()
        scores = report_model(EngineGenerator(engine, **fields), prompts, args.images_per_prompt,
                              side=SIDE, keep=keep)
        data = scores.to_dict()
        seconds = wall_time(engine, fields)
        rows.append([label, data["overall"], data["second_judge"], data["diversity"],
                     round(seconds, 2)])
        details[label] = {"fields": fields, **data, "s_per_image": seconds,
                          "eval_wall_s": time.perf_counter() - start}
        samples.append([scores.samples[k] for k in keep])
    prompt_text = {p.id: p.text for p in prompts}
    return rows, details, [samples, [prompt_text[k] for k in keep]]


def sdk_checks(engine_dir: str = "embedded") -> dict:
    """revised_prompt and an edit through the openai SDK against a real ``huajia serve``."""
    import openai

    from huajia.engine.edits import read_mask
    from huajia.serving.provenance import embed_watermark

    with Server(engine_dir, ["--nsfw", "off"]) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0)
        expanded = client.images.generate(prompt="a {red|blue} circle and a __shapes__", n=3,
                                          extra_body={"expand": "wildcards", "seed": 21})
        world = client.images.generate(prompt="两个红色圆形", n=1,
                                       extra_body={"expand": "world", "seed": 3})
        picture = Image.open(io.BytesIO(base64.b64decode(world.data[0].b64_json))).convert("RGB")
        mask = Image.new("L", picture.size, 0)
        mask.paste(255, (picture.width // 2, 0, picture.width, picture.height))
        files = {}
        for name, image in (("image", picture), ("mask", mask)):
            buffer = io.BytesIO()
            image.save(buffer, "PNG")
            files[name] = (f"{name}.png", buffer.getvalue(), "image/png")
        start = time.perf_counter()
        edit = client.images.edit(image=files["image"], mask=files["mask"], prompt="a green triangle",
                                  n=1, extra_body={"seed": 3})
        edit_s = time.perf_counter() - start
    edited = np.asarray(Image.open(io.BytesIO(base64.b64decode(edit.data[0].b64_json))).convert("RGB"),
                        np.int16)
    inside = read_mask(picture, mask) > 0
    key = (Path(server.data) / "watermark-key").read_text().strip()  # the server's own key
    kept = np.asarray(embed_watermark(picture, key), np.int16)  # the server marks what it returns
    outside = np.abs(edited - kept)[~inside]
    roundtrip = _vae_roundtrip_change(picture, inside)
    return {"wildcards": {"prompt": "a {red|blue} circle and a __shapes__",
                          "revised_prompts": [d.revised_prompt for d in expanded.data]},
            "world": {"prompt": "两个红色圆形", "revised_prompt": world.data[0].revised_prompt},
            "edit": {"prompt": "a green triangle", "revised_prompt": edit.data[0].revised_prompt,
                     "seconds": edit_s, "outside_max_abs": int(outside.max()),
                     "outside_mean_abs": float(outside.mean()),
                     "inside_mean_abs_change": float(np.abs(edited - kept)[inside].mean()),
                     "vae_roundtrip_outside_mean_abs": roundtrip["mean"],
                     "vae_roundtrip_outside_max_abs": roundtrip["max"]}}


def _vae_roundtrip_change(picture: Image.Image, inside: np.ndarray) -> dict:
    """What blending in latent space alone would leave outside the mask: the VAE round trip."""
    import torch

    from huajia.engine.images import to_pil, to_tensor

    vae = Engine("embedded").pipe.vae
    with torch.no_grad():
        decoded = vae.decode(vae.encode(to_tensor([picture])).latent_dist.mode()).sample
    diff = np.abs(np.asarray(to_pil(decoded)[0], np.int16) - np.asarray(picture, np.int16))
    return {"mean": float(diff[~inside].mean()), "max": int(diff[~inside].max())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--specs-per-task", type=int, default=4)
    parser.add_argument("--images-per-prompt", type=int, default=2)
    args = parser.parse_args()
    engine = Engine("embedded", vocabulary=unknown_words)
    rows, details, (samples, texts) = judge_settings(engine, args)
    tiles = [Tile(image, (label, text)) for label, row in zip(SETTINGS, samples, strict=True)
             for image, text in zip(row, texts, strict=True)]
    captioned_grid(tiles, columns=len(texts), tile_px=256, text_lines=4,
                   title=f"hires fix vs plain at {SIDE} px, one row per setting").save(
        RESULTS / "finishing_grid.png")
    sdk = sdk_checks()
    report("finishing", f"hires fix vs plain at {SIDE} px: held-out ShapesEval "
           f"({args.specs_per_task} specs per task, en + zh, {args.images_per_prompt} pictures each)",
           ["setting", "ShapesEval", "second judge", "diversity", "s/image (bs 1)"], rows,
           {"settings": details, "sdk": sdk, "side": SIDE, "grid": "finishing_grid.png"})
    print(sdk)


if __name__ == "__main__":
    main()
