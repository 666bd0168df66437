"""ShapesEval: generate N pictures per prompt with fixed seeds, verify each, score per task.

Each picture passes or fails the world's verifier; a task's score is its pass rate and the
overall score is the mean of the task scores (as GenEval).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from PIL import Image

from huajia.evaluation.generators import ImageGenerator
from huajia.evaluation.prompts import TASKS, EvalPrompt
from huajia.world.render import check_side
from huajia.world.verifier import verify

MAX_KEPT_FAILURES = 48  # failure pictures kept for the contact sheet
# what a model card's ShapesEval measures: plain generation at the generators' defaults
CARD_SETTING = "generation, 20 DDIM steps, CFG 5"
CARD_IMAGES_PER_PROMPT = 2


@dataclass(frozen=True)
class ImageRecord:
    prompt_id: str
    task: str
    lang: str
    prompt: str
    seed: int
    passed: bool
    explanation: str


@dataclass
class ShapesEvalResult:
    model: str
    images_per_prompt: int
    side: int
    records: list[ImageRecord] = field(default_factory=list)
    failures: list[tuple[ImageRecord, Image.Image]] = field(default_factory=list)

    def _rate(self, keep: Callable[[ImageRecord], bool]) -> float:
        chosen = [r.passed for r in self.records if keep(r)]
        return sum(chosen) / len(chosen) if chosen else 0.0

    @property
    def tasks(self) -> dict[str, float]:
        names = {r.task for r in self.records}
        present = [t for t in TASKS if t in names] + sorted(names - set(TASKS))
        return {t: self._rate(lambda r, t=t: r.task == t) for t in present}

    @property
    def overall(self) -> float:
        scores = list(self.tasks.values())
        return sum(scores) / len(scores) if scores else 0.0

    @property
    def by_lang(self) -> dict[str, float]:
        """Overall score (mean over tasks) restricted to one prompt language."""
        out = {}
        for lang in ("en", "zh"):
            per_task = [self._rate(lambda r, t=t, lang=lang: r.task == t and r.lang == lang)
                        for t in self.tasks]
            out[lang] = sum(per_task) / len(per_task) if per_task else 0.0
        return out

    def summary(self) -> dict:
        """The scores a model card records."""
        return {"overall": self.overall, "tasks": self.tasks}

    def to_dict(self) -> dict:
        return {"model": self.model, "overall": self.overall, "tasks": self.tasks,
                "by_lang": self.by_lang, "images_per_prompt": self.images_per_prompt,
                "size": self.side, "n_images": len(self.records),
                "n_prompts": len({r.prompt_id for r in self.records}),
                "records": [r.__dict__ for r in self.records]}


def image_seed(prompt_index: int, k: int) -> int:
    return 1000 * prompt_index + k


def run_shapes_eval(generator: ImageGenerator, prompts: Sequence[EvalPrompt],
                    images_per_prompt: int = 4, side: int = 128, batch_size: int = 16,
                    progress: Callable[[int], None] | None = None,
                    on_image: Callable[[int, EvalPrompt, Image.Image], None] | None = None,
                    ) -> ShapesEvalResult:
    """Judge ``generator`` on ``prompts``; ``progress(k)`` is told as each k pictures are done,
    ``on_image(prompt_index, prompt, picture)`` sees every picture (for other judges)."""
    check_side(side)
    result = ShapesEvalResult(generator.name, images_per_prompt, side)
    jobs = [(i, p, image_seed(i, k)) for i, p in enumerate(prompts)
            for k in range(images_per_prompt)]
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start:start + batch_size]
        images = generator.generate([p.text for _, p, _ in batch], [s for _, _, s in batch], side)
        for (index, prompt, seed), image in zip(batch, images, strict=True):
            if on_image:
                on_image(index, prompt, image)
            verdict = verify(image, prompt.spec, prompt.lang)
            record = ImageRecord(prompt.id, prompt.task, prompt.lang, prompt.text, seed,
                                 verdict.passed, verdict.explain())
            result.records.append(record)
            if not verdict.passed and len(result.failures) < MAX_KEPT_FAILURES:
                result.failures.append((record, image))
        if progress:
            progress(len(batch))
    return result


def card_pictures(specs_per_task: int) -> int:
    """How many pictures ``card_shapes_eval`` paints (for a progress bar)."""
    from huajia.evaluation.prompts import shapes_eval_prompts

    return len(shapes_eval_prompts(specs_per_task)) * CARD_IMAGES_PER_PROMPT


def card_shapes_eval(model: str, specs_per_task: int, loras: Sequence[str] = (),
                     progress: Callable[[int], None] | None = None) -> ShapesEvalResult:
    """ShapesEval as a model card records it: held-out prompts (``specs_per_task`` specs per
    task, en + zh), 2 pictures each, painted by ``model`` (a name ``make_generator`` knows:
    a pipeline folder, 'embedded', 'oracle-vae:DIR', …) with ``loras`` (files) applied."""
    from huajia.engine.request import LoraSpec
    from huajia.evaluation.generators import make_generator
    from huajia.evaluation.prompts import shapes_eval_prompts

    options = {"loras": tuple(LoraSpec(str(path)) for path in loras)} if loras else {}
    return run_shapes_eval(make_generator(model, **options), shapes_eval_prompts(specs_per_task),
                           CARD_IMAGES_PER_PROMPT, progress=progress)
