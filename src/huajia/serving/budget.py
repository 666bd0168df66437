"""What a job will cost, bounded before any work (``huajia serve --max-cost``).

Cost is counted in megapixel network evaluations: the painted size's effective megapixels ×
steps × 2 (CFG) × the painted prompt's chunks × images, times an upper bound of the thinking
loop's extra passes (restarts, repaint rounds, composed parts), plus the hires pass. Time and
memory grow with each of these, and they multiply, so each bound alone (n ≤ 10, steps ≤ 150,
4,000 characters) is not enough.

Size is priced as a step really grows: attention's cost is quadratic in the pixel count. The
seconds per step of the embedded model (native 128²) were measured from 64² to 1024² and fitted as
``s = c + a·P + b·P²`` (``data/step_cost.json``, from ``benchmarks/step_cost.py``; it predicts
205 s for one 2048² step, 215 s were seen). A step at P megapixels on a model of native area N
costs ``P · (a + b·n·P/N) / (a + b·n)`` effective megapixels (n: the embedded model's native
area): P at the native size, growing past it as the measured curve does in units of the model's
own native area. On the embedded model 512² prices at 1.1 megapixels, 1024² at 15, 2048² at 230.

The upscaler is priced apart: a size past the native one is painted native, then upscaled, and
each picture is screened, watermarked and compressed at the size asked, work no step counts.
``benchmarks/upscale_cost.py`` measured it as ``s = c + k·P`` CPU seconds per picture (P: output
megapixels; ``data/upscale_cost.json``: a 2048² picture about 0.5-0.8 s), turned into
megapixel-steps at what one costs on the step fit's model (a step at its native size over its
2·P megapixel-steps).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources

from huajia.engine.prompt_weights import BREAK, parse_weights
from huajia.errors import HuajiaError
from huajia.thinking.options import ThinkOptions

CHUNK_TOKENS = 75
MAX_PAINTED_CHARS = 16_000  # a styled prompt past this is refused before it is tokenized


@dataclass(frozen=True)
class SizePrice:
    """Seconds per step ≈ c + a·P + b·P² on a model of native side ``native`` (the fit)."""

    a: float = 1.0
    b: float = 0.0
    native: int = 128
    c: float = 0.0  # a step's fixed seconds
    finish_c: float = 0.0  # seconds per picture finished (upscale, screen, watermark, PNG) …
    finish_k: float = 0.0  # … and per output megapixel

    @classmethod
    def measured(cls) -> SizePrice:
        """The fits of ``benchmarks/step_cost.py`` and ``benchmarks/upscale_cost.py``
        (``data/step_cost.json``, ``data/upscale_cost.json``)."""
        data = resources.files("huajia.serving").joinpath("data")
        step = json.loads(data.joinpath("step_cost.json").read_text("utf-8"))
        finish = json.loads(data.joinpath("upscale_cost.json").read_text("utf-8"))
        return cls(step["a_s_per_mp"], step["b_s_per_mp2"], step["native_side"], step["c_s"],
                   finish["c_s"], finish["k_s_per_mp"])

    def seconds_per_unit(self) -> float:
        """The CPU seconds one megapixel-step stands for: a step at the fitted model's native
        size over the 2·P megapixel-steps it is priced at."""
        fitted = self.native**2 / 1e6
        return (self.c + self.a * fitted + self.b * fitted**2) / (2 * fitted)

    def upscaling(self, size: tuple[int, int], n: int) -> float:
        """Megapixel-steps of finishing ``n`` pictures at ``size`` (0 without a measured fit)."""
        seconds = n * (self.finish_c + self.finish_k * size[0] * size[1] / 1e6)
        return seconds / self.seconds_per_unit()

    def megapixels(self, size: tuple[int, int], native: int | None = None) -> float:
        """What one step at ``size`` costs on a model of native side ``native``, in megapixels
        of a step that grew linearly (equal to the pixels at the native size)."""
        pixels = size[0] * size[1] / 1e6
        fitted = self.native**2 / 1e6
        relative = pixels / ((native or self.native) ** 2 / 1e6)  # in native areas
        return pixels * (self.a + self.b * fitted * relative) / (self.a + self.b * fitted)


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


def job_cost(size: tuple[int, int], steps: float, n: int, chunks: int,
             options: ThinkOptions | None, price: SizePrice | None = None,
             native: int | None = None) -> float:
    """Megapixel-steps; without a ``price``, size is priced linearly."""
    megapixels = (price or SizePrice()).megapixels(size, native)
    return megapixels * steps * 2 * chunks * n * think_factor(options)


def check_partial_steps(what: str, steps: int, strength: float) -> None:
    """An edit runs ``int(steps × strength)`` steps: refuse one that would run none (it would
    queue, then fail in the worker)."""
    if int(steps * strength) < 1:
        raise HuajiaError(f"{what} = {steps} × {strength:g} runs no denoising step; ask for at "
                          f"least {math.ceil(1 / strength)} steps or a larger strength")


def check_budget(cost: float, budget: float, size: tuple[int, int], steps: int, n: int,
                 chunks: int, thinking: bool, finished: tuple[int, int] | None = None) -> None:
    if cost <= budget:
        return
    parts = (f"{size[0]}x{size[1]} (priced as attention grows) × {steps} steps × 2 (CFG) × "
             f"{chunks} prompt chunk(s) × {n} image(s)")
    parts += " × the thinking loop's passes" if thinking else ""
    if finished and finished != size:
        parts += f", then upscaled to {finished[0]}x{finished[1]}"
    raise HuajiaError(f"this request would cost {cost:.0f} megapixel-steps ({parts}); this "
                      f"server allows {budget:g} (--max-cost) per request: ask for fewer images or steps, a "
                      "smaller size (or the default upscaler), a shorter prompt or style")
