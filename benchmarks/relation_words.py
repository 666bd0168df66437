"""Does the painter read relation words? (issue 45: position is the plain painter's weakest task)

For two-object prompts with a relation, in English and Chinese (the world's training templates,
canonical words), each model paints the prompt, the prompt with its relation swapped (left of
<-> right of, above <-> below: one token for another) and the prompt with one colour or one
shape swapped, from the same seeds. A painter that reads a word changes the picture when the
word changes: the table gives the mean absolute pixel change (0-255) per kind of word, and how
often the verifier finds the relation satisfied among pictures where both objects were drawn
right, beside the same rate for the world's own renders of the scenes laid out with the
relation left out (what a painter that places objects at random scores).

Run: python benchmarks/relation_words.py [--model LABEL=PATH ...] [--prompts 12] [--seeds 4]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
from _common import report
from rich.progress import Progress

from huajia.world import captions, sampler, vocab
from huajia.world.spec import ObjectGroup, Relation, SceneSpec
from huajia.world.verifier import verify

KINDS = ("relation", "colour", "shape")


def prompt_specs(n: int, seed: int = 11) -> list[SceneSpec]:
    """``n`` two-object specs with a relation, one of each kind, colours and shapes named."""
    rng = np.random.default_rng(seed)
    specs = []
    while len(specs) < n:
        spec = sampler.sample_spec(rng, "train")
        if len(spec.groups) == 2 and spec.relations:
            groups = tuple(ObjectGroup(g.shape, 1, g.colour, None, None) for g in spec.groups)
            specs.append(SceneSpec(groups, spec.relations, None))
    return specs


def variant(spec: SceneSpec, kind: str, rng: np.random.Generator) -> SceneSpec:
    """``spec`` with one word of ``kind`` changed."""
    if kind == "relation":
        rel = spec.relations[0]
        turned = vocab.INVERSE_RELATION[rel.relation]
        return replace(spec, relations=(Relation(rel.subject, turned, rel.object),))
    first, other = spec.groups
    field = "colour" if kind == "colour" else "shape"
    concepts = vocab.COLOURS if kind == "colour" else vocab.SHAPES
    options = [c for c in vocab.ids(concepts) if c not in (getattr(first, field), getattr(other, field))]
    changed = replace(first, **{field: options[int(rng.integers(len(options)))]})
    return replace(spec, groups=(changed, other))


def relation_given_drawn(image, spec: SceneSpec, lang: str) -> bool | None:
    """Whether the relation holds, when both objects were drawn right (None otherwise)."""
    verdict = verify(image, spec, lang)
    if not all(c.passed for c in verdict.constraints if c.kind == "count"):
        return None
    return all(c.passed for c in verdict.constraints if c.kind == "relation")


def measure(label: str, path: str, specs: list[SceneSpec], seeds: int, bar: Progress) -> dict:
    from huajia import Engine
    from huajia.engine.request import GenerationRequest

    engine = Engine(path)
    rng = np.random.default_rng(3)
    change = {kind: [] for kind in KINDS}
    held = {"en": [], "zh": []}
    job = bar.add_task(label, total=len(specs) * 2)
    for index, spec in enumerate(specs):
        for lang in ("en", "zh"):
            frame = captions.templates(lang, "train")[0]

            def paint(s: SceneSpec, frame=frame, index=index):
                request = GenerationRequest(prompt=captions.caption(s, frame), seed=100 * index, n=seeds)
                return engine.generate(request).images

            base = paint(spec)
            held[lang] += [relation_given_drawn(im, spec, lang) for im in base]
            for kind in KINDS:
                other = variant(spec, kind, rng)
                pictures = paint(other)
                change[kind] += [float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean())
                                 for a, b in zip(base, pictures, strict=True)]
                if kind == "relation":
                    held[lang] += [relation_given_drawn(im, other, lang) for im in pictures]
            bar.advance(job)
    drawn = {lang: [v for v in values if v is not None] for lang, values in held.items()}
    return {"change": {k: float(np.mean(v)) for k, v in change.items()},
            "relation_given_drawn": {lang: (float(np.mean(v)) if v else None) for lang, v in drawn.items()},
            "drawn": {lang: len(v) for lang, v in drawn.items()},
            "pictures": {lang: len(v) for lang, v in held.items()}}


def chance(specs: list[SceneSpec], seeds: int) -> dict:
    """The relation rate of oracle renders laid out without the relation: random placement."""
    from huajia.world.render import render

    held = {"en": [], "zh": []}
    for index, spec in enumerate(specs):
        for lang in held:
            for k in range(seeds):
                for s in (spec, variant(spec, "relation", np.random.default_rng(0))):
                    free = sampler.scene_for(replace(s, relations=()), seed=1000 * index + k, split="train")
                    held[lang].append(relation_given_drawn(render(free), s, lang))
    drawn = {lang: [v for v in values if v is not None] for lang, values in held.items()}
    return {"relation_given_drawn": {lang: float(np.mean(v)) for lang, v in drawn.items()},
            "drawn": {lang: len(v) for lang, v in drawn.items()}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", action="append", default=[], help="LABEL=PATH (repeatable).")
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--name", default="relation_words")
    args = parser.parse_args()
    models = [m.split("=", 1) for m in args.model] or [["shipped", "embedded"]]
    specs = prompt_specs(args.prompts)
    results, rows = {}, []
    with Progress() as bar:
        for label, path in models:
            result = measure(label, path, specs, args.seeds, bar)
            results[label] = {**result, "path": path}
            held = result["relation_given_drawn"]
            rows.append([label, *[round(result["change"][k], 1) for k in KINDS],
                         f"{held['en']:.2f} ({result['drawn']['en']})",
                         f"{held['zh']:.2f} ({result['drawn']['zh']})"])
    random = chance(specs, args.seeds)
    results["random placement"] = random
    rows.append(["random placement (oracle renders)", "-", "-", "-",
                 *[f"{random['relation_given_drawn'][lang]:.2f} ({random['drawn'][lang]})"
                   for lang in ("en", "zh")]])
    columns = ["model", "Δ relation word", "Δ colour word", "Δ shape word",
               "relation held, en (drawn)", "relation held, zh (drawn)"]
    report(args.name, f"Pixel change (0-255) when one word changes; {args.prompts} prompts × "
           f"en/zh × {args.seeds} seeds", columns, rows,
           {"prompts": [captions.caption(s, captions.templates("en", "train")[0]) for s in specs],
            "seeds": args.seeds, "results": results})


if __name__ == "__main__":
    main()
