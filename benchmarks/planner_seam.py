"""Is the LLM planner's seam honest? On the embedded model and held-out ShapesEval, default
thinking planned by the shapes world against the LLM planner asked of a local chat endpoint that
answers the world's own exact layout (as JSON in the planner's protocol): both judges, NFE, and
how many pictures came out the same, pixel for pixel.

    python benchmarks/planner_seam.py [--specs-per-task 3]
→ benchmarks/results/planner_seam.json
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import torch
from _common import report

from huajia.engine.engine import Engine
from huajia.engine.expansion import LlmSettings
from huajia.engine.request import GenerationRequest
from huajia.evaluation.prompts import shapes_eval_prompts
from huajia.evaluation.second_judge import judge
from huajia.evaluation.shapes_eval import run_shapes_eval
from huajia.thinking.critics import ShapesCritic
from huajia.thinking.loop import Thinker, ThinkOptions
from huajia.thinking.plan import plan_prompt
from huajia.thinking.planner import LAYOUT_SYSTEM
from huajia.world.parser import unknown_words


class _WorldLayouts(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint whose every layout is the world's plan of the prompt."""

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        system, prompt = (m["content"] for m in body["messages"][:2])
        assert system == LAYOUT_SYSTEM, "only layouts are asked here"
        plan = plan_prompt(prompt)
        layout = {"background": "", "regions": [{"box": list(r.box), "caption": r.caption}
                                                for r in plan.regions]}
        answer = json.dumps({"choices": [{"message": {"role": "assistant",
                                                      "content": json.dumps(layout)}}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(answer.encode())

    def log_message(self, *args) -> None:
        pass


class _Thinking:
    def __init__(self, engine: Engine, planner: str, llm: LlmSettings):
        self.name = f"thinking ({planner} planner)"
        self.thinker = Thinker(engine, ShapesCritic(), ThinkOptions(planner=planner), llm)
        self.planners, self.nfe = [], []

    def generate(self, prompts, seeds, side):
        images = []
        for prompt, seed in zip(prompts, seeds, strict=True):
            result = self.thinker.think(GenerationRequest(prompt, seed=seed, width=side,
                                                          height=side))
            self.planners.append(result.plan.planner)
            self.nfe.append(result.nfe)
            images.append(result.image)
        return images


def _judged(generator, prompts) -> dict:
    second, images = [], []

    def keep(i, prompt, image):
        second.append(judge(image, prompt.spec))
        images.append(np.asarray(image))

    result = run_shapes_eval(generator, prompts, images_per_prompt=1, on_image=keep)
    return {"overall": result.overall, "tasks": result.tasks, "by_lang": result.by_lang,
            "second_judge": sum(second) / len(second), "nfe": sum(generator.nfe) / len(prompts),
            "planners": sorted(set(generator.planners)),
            "passed": [r.passed for r in result.records], "images": images}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--specs-per-task", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _WorldLayouts)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    llm = LlmSettings(f"http://127.0.0.1:{server.server_port}/v1", "world-layouts", None, 30.0)
    engine = Engine(args.model, vocabulary=unknown_words)
    prompts = shapes_eval_prompts(args.specs_per_task)
    found = {planner: _judged(_Thinking(engine, planner, llm), prompts)
             for planner in ("world", "llm")}
    server.shutdown()
    same = sum(np.array_equal(a, b) for a, b in zip(found["world"]["images"],
                                                     found["llm"]["images"], strict=True))
    rows = [[planner, ",".join(r["planners"]), round(r["overall"], 3),
             round(r["second_judge"], 3), round(r["nfe"], 1)] for planner, r in found.items()]
    for r in found.values():
        del r["images"]
    report("planner_seam", f"World planner vs the LLM planner fed the world's layout, "
           f"{len(prompts)} held-out prompts, default thinking; {same}/{len(prompts)} pictures "
           "identical", ["planner", "plans made by", "acc", "2nd judge", "NFE"], rows,
           {"results": found, "identical_pictures": same, "prompts": len(prompts),
            "specs_per_task": args.specs_per_task})


if __name__ == "__main__":
    main()
