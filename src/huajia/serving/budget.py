"""What a job will cost, bounded before any work (``huajia serve --max-cost``).

Cost is counted in megapixel network evaluations: the painted size × steps × 2 (CFG) × the
prompt's 75-token chunks × images, times an upper bound of the thinking loop's extra passes
(restarts, repaint rounds, composed parts). Time and memory grow with each of these, and they
multiply, so each bound alone (n ≤ 10, steps ≤ 150, 4,000 characters) is not enough.
"""

from __future__ import annotations

import math

from huajia.engine.prompt_weights import BREAK, parse_weights
from huajia.errors import HuajiaError
from huajia.thinking.options import ThinkOptions

CHUNK_TOKENS = 75


def prompt_chunks(prompt: str, tokenizer=None, window: int = CHUNK_TOKENS) -> int:
    """The ``window``-token chunks the engine will encode (CLIP's 75 unless the model's facts
    say otherwise; an upper bound without a tokenizer: one token per UTF-8 byte)."""
    segments = parse_weights(prompt)
    breaks = sum(s.text == BREAK and s.weight < 0 for s in segments)
    text = " ".join(s.text for s in segments if s.weight >= 0)
    tokens = (len(tokenizer(text, verbose=False).input_ids) if tokenizer is not None
              else len(text.encode("utf-8")))
    return max(breaks + 1, math.ceil(tokens / window))


def think_factor(options: ThinkOptions | None) -> float:
    """At most how many paintings' worth of passes a thinking run makes (1 for plain)."""
    if options is None:
        return 1.0
    first_looks = options.restarts * 0.4  # a restart is judged after ~40% of the schedule
    parts = options.max_repaints * (options.repaint_strength + options.compose_tries)
    return 1.0 + first_looks + parts + 0.5  # regional passes


def job_cost(size: tuple[int, int], steps: int, n: int, chunks: int,
             options: ThinkOptions | None) -> float:
    return size[0] * size[1] / 1e6 * steps * 2 * chunks * n * think_factor(options)


def check_budget(cost: float, budget: float, size: tuple[int, int], steps: int, n: int,
                 chunks: int, thinking: bool) -> None:
    if cost <= budget:
        return
    parts = f"{size[0]}x{size[1]} × {steps} steps × 2 (CFG) × {chunks} prompt chunk(s) × {n} image(s)"
    parts += " × the thinking loop's passes" if thinking else ""
    raise HuajiaError(f"this request would cost {cost:.0f} megapixel-steps ({parts}); this "
                      f"server allows {budget:g} per request: ask for fewer images or steps, a "
                      "smaller size or a shorter prompt")
