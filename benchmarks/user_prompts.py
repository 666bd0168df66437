"""Plain generation on prompts phrased as users write them (issue 45's bar: >= 0.50 overall and
>= 0.35 on position), judged by the verifier and the second judge on hand-written specs.

The prompts (benchmarks/data/user_prompts.jsonl: 7 tasks x 12 specs x en/zh) were written by
a session that did not read the world's templates, parser or evaluation prompts; each line
carries its own spec, so the judges never read the prompt. Every setting paints at the
request's defaults (what `huajia generate PROMPT --seed S` does), so the comparison is between
ways of reading the prompt, not of painting.

Run: python benchmarks/user_prompts.py [--model embedded] [--images-per-prompt 4]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import RESULTS, report
from rich.progress import Progress

from huajia.evaluation.prompts import TASKS
from huajia.evaluation.second_judge import judge
from huajia.world.spec import SceneSpec
from huajia.world.verifier import verify

DATA = Path(__file__).parent / "data" / "user_prompts.jsonl"


def load_prompts(path: Path = DATA) -> list[dict]:
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    for entry in lines:
        entry["spec"] = SceneSpec.from_dict(entry["spec"])
    return lines


def paint(engine, prompt: str, seed: int, n: int, verbatim: bool):
    from huajia.engine.request import GenerationRequest

    request = GenerationRequest(prompt=prompt, seed=seed, n=n, verbatim=verbatim)
    return engine.generate(request).images


def score(records: list[dict], key: str, keep=lambda r: True) -> float:
    """Mean over tasks of the pass rate (GenEval's overall)."""
    rates = []
    for task in TASKS:
        chosen = [r[key] for r in records if r["task"] == task and keep(r)]
        if chosen:
            rates.append(sum(chosen) / len(chosen))
    return sum(rates) / len(rates) if rates else 0.0


def evaluate(engine, prompts: list[dict], n: int, verbatim: bool, label: str,
             sheet: Path | None = None) -> dict:
    records, pictures = [], []
    with Progress() as bar:
        job = bar.add_task(label, total=len(prompts) * n)
        for index, entry in enumerate(prompts):
            for k, image in enumerate(paint(engine, entry["prompt"], 1000 * index, n, verbatim)):
                records.append({"task": entry["task"], "lang": entry["lang"],
                                "prompt": entry["prompt"], "seed": 1000 * index + k,
                                "verifier": verify(image, entry["spec"], entry["lang"]).passed,
                                "second": judge(image, entry["spec"])})
                if k == 0:
                    pictures.append(image)
            bar.advance(job, n)
    if sheet is not None:
        contact_sheet(pictures, sheet)
    out = {"overall": score(records, "verifier"), "second_judge": score(records, "second"),
           "tasks": {t: score(records, "verifier", lambda r, t=t: r["task"] == t) for t in TASKS},
           "tasks_second": {t: score(records, "second", lambda r, t=t: r["task"] == t)
                            for t in TASKS},
           "by_lang": {lang: score(records, "verifier", lambda r, lang=lang: r["lang"] == lang)
                       for lang in ("en", "zh")},
           "records": records}
    return out


def contact_sheet(pictures: list, path: Path, columns: int = 14, side: int = 64) -> None:
    from PIL import Image

    pictures = [p.resize((side, side), Image.Resampling.LANCZOS) for p in pictures]
    rows = -(-len(pictures) // columns)
    sheet = Image.new("RGB", (columns * side, rows * side), "white")
    for i, picture in enumerate(pictures):
        sheet.paste(picture, ((i % columns) * side, (i // columns) * side))
    sheet.save(path, optimize=True)


def main() -> None:
    from huajia.engine.engine import Engine
    from huajia.world.parser import unknown_words
    from huajia.world.reading import reword

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--images-per-prompt", type=int, default=4)
    parser.add_argument("--name", default="user_prompts")
    args = parser.parse_args()
    prompts = load_prompts()
    engine = Engine(args.model, vocabulary=unknown_words, reword=reword)
    read = sum(reword(p["prompt"]) is not None for p in prompts)
    results, rows = {}, []
    for label, verbatim in (("as written (--verbatim)", True), ("read by the world (default)", False)):
        start = time.process_time()
        sheet = RESULTS / f"{args.name}_{'verbatim' if verbatim else 'read'}.png"
        result = evaluate(engine, prompts, args.images_per_prompt, verbatim, label, sheet)
        result["cpu_s"] = time.process_time() - start
        results[label] = result
        rows.append([label, round(result["overall"], 3), round(result["second_judge"], 3),
                     *[round(result["tasks"][t], 3) for t in TASKS],
                     round(result["by_lang"]["en"], 3), round(result["by_lang"]["zh"], 3)])
    report(args.name, f"{args.model} on {len(prompts)} prompts phrased as users write them "
           f"(x{args.images_per_prompt} pictures; {read} of them reworded)",
           ["reading", "overall", "second judge", *TASKS, "en", "zh"], rows,
           {"model": args.model, "images_per_prompt": args.images_per_prompt,
            "prompts": len(prompts), "reworded": read, "results": results})


if __name__ == "__main__":
    main()
