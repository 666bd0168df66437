"""Captions in English and Chinese from scene specs, with templates split into train and eval.

A template fixes the sentence frame (prefix, how relations and textures are phrased, where the
background goes); paraphrases (synonyms) are drawn at random. Every template states exactly what
the spec states, so ``parse(caption(spec)) == spec`` for every template.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from huajia.world import vocab
from huajia.world.spec import ObjectGroup, Relation, SceneSpec


@dataclass(frozen=True)
class Template:
    id: str
    lang: str  # "en" | "zh"
    split: str  # "train" | "eval"
    prefix: str
    relation_style: str  # "direct": A left of B / A在B的左边; "inverted": left of B there is A / B左边有A
    texture_style: str  # "prefix": striped red circle; "postfix": red circle with stripes (zh: size last)
    background_style: str  # "suffix" | "sentence" (en) ; "suffix" | "prefix" (zh)


TEMPLATES: tuple[Template, ...] = (
    Template("en_plain", "en", "train", "", "direct", "prefix", "suffix"),
    Template("en_photo", "en", "train", "a photo of ", "inverted", "prefix", "suffix"),
    Template("en_image", "en", "train", "an image showing ", "direct", "postfix", "sentence"),
    Template("en_there", "en", "eval", "there {be} ", "direct", "postfix", "suffix"),
    Template("en_inverted", "en", "eval", "", "inverted", "postfix", "sentence"),
    Template("zh_plain", "zh", "train", "", "direct", "prefix", "suffix"),
    Template("zh_scene", "zh", "train", "画面中", "inverted", "prefix", "prefix"),
    Template("zh_tu", "zh", "eval", "图中", "direct", "postfix", "prefix"),
    Template("zh_inverted", "zh", "eval", "一张图片：", "inverted", "postfix", "suffix"),
)

_EN_TEXTURE_POSTFIX = {"striped": "with stripes", "dotted": "with dots",
                       "checkered": "with a checkered pattern", "solid": "in a solid colour"}


def templates(lang: str | None = None, split: str | None = None) -> tuple[Template, ...]:
    return tuple(t for t in TEMPLATES
                 if (lang is None or t.lang == lang) and (split is None or t.split == split))


def template(template_id: str) -> Template:
    for t in TEMPLATES:
        if t.id == template_id:
            return t
    raise KeyError(template_id)


class _Words:
    """Picks a word for a concept: the canonical form, or a random synonym when an rng is given."""

    def __init__(self, rng: np.random.Generator | None):
        self.rng = rng

    def pick(self, options: tuple[str, ...]) -> str:
        if self.rng is None or len(options) == 1:
            return options[0]
        return options[int(self.rng.integers(len(options)))]

    def en(self, concepts: tuple[vocab.Concept, ...], concept_id: str) -> str:
        return self.pick(vocab.by_id(concepts, concept_id).en)

    def zh(self, concepts: tuple[vocab.Concept, ...], concept_id: str) -> str:
        return self.pick(vocab.by_id(concepts, concept_id).zh)


def _plural(word: str) -> str:
    return word + ("es" if word.endswith("x") else "s")


def group_phrase_en(group: ObjectGroup, texture_style: str = "prefix",
                    rng: np.random.Generator | None = None) -> str:
    """'two small striped red circles' or 'two small red circles with stripes'."""
    words = _Words(rng)
    shape = words.en(vocab.SHAPES, group.shape)
    shape = shape if group.count == 1 else _plural(shape)
    article = "" if group.count is None else vocab.EN_NUMBERS[group.count][0]
    parts = []
    if group.size:
        parts.append(words.en(vocab.SIZES, group.size))
    if group.texture and texture_style == "prefix":
        parts.append(words.en(vocab.TEXTURES, group.texture))
    if group.colour:
        parts.append(words.en(vocab.COLOURS, group.colour))
    parts.append(shape)
    if group.texture and texture_style == "postfix":
        parts.append(_EN_TEXTURE_POSTFIX[group.texture])
    if group.count == 1:
        article = words.pick(("a", "one")) if rng is not None else "a"
        if article == "a" and parts[0][0] in "aeiou":
            article = "an"
    return " ".join([article, *parts]) if article else " ".join(parts)


def group_phrase_zh(group: ObjectGroup, texture_style: str = "prefix",
                    rng: np.random.Generator | None = None) -> str:
    """'两个小的红色条纹圆形' (prefix) or '两个红色条纹小圆形' (postfix: size next to the shape)."""
    words = _Words(rng)
    count = "几个" if group.count is None else vocab.ZH_NUMBERS[group.count][0] + "个"
    size = words.pick(vocab.by_id(vocab.SIZES, group.size).zh[1:]) if group.size else ""
    colour = words.zh(vocab.COLOURS, group.colour) if group.colour else ""
    if colour and not colour.endswith("色"):
        colour += "色"  # '红' alone reads oddly before a shape
    texture = words.zh(vocab.TEXTURES, group.texture) if group.texture else ""
    shape = words.zh(vocab.SHAPES, group.shape)
    if texture_style == "prefix":
        return count + size + colour + texture + shape
    short_size = vocab.by_id(vocab.SIZES, group.size).zh[0] if group.size else ""
    return count + colour + texture + short_size + shape


def _relation_clause(tmpl: Template, rel: Relation, phrases: list[str],
                     words: _Words) -> str:
    concept = vocab.by_id(vocab.RELATIONS, rel.relation)
    subject, obj = phrases[rel.subject], phrases[rel.object]
    if tmpl.lang == "en":
        rel_words = words.pick(concept.en)
        if tmpl.relation_style == "direct":
            return f"{subject} {rel_words} {obj}"
        be = "is" if subject.startswith(("a ", "an ", "one ")) else "are"
        return f"{rel_words} {obj} there {be} {subject}"
    rel_words = words.pick(concept.zh)
    if tmpl.relation_style == "direct":
        return f"{subject}在{obj}的{rel_words}"
    return f"{obj}{rel_words}有{subject}"


def caption(spec: SceneSpec, tmpl: Template | str, rng: np.random.Generator | None = None) -> str:
    """One caption of ``spec`` in ``tmpl``'s frame; ``rng`` picks paraphrases (None: canonical)."""
    tmpl = template(tmpl) if isinstance(tmpl, str) else tmpl
    words = _Words(rng)
    phrase = group_phrase_en if tmpl.lang == "en" else group_phrase_zh
    phrases = [phrase(g, tmpl.texture_style, rng) for g in spec.groups]
    related = {i for rel in spec.relations for i in (rel.subject, rel.object)}
    clauses = [_relation_clause(tmpl, rel, phrases, words) for rel in spec.relations]
    clauses += [phrases[i] for i in range(len(spec.groups)) if i not in related]
    if tmpl.lang == "en":
        body = clauses[0] if len(clauses) == 1 else ", ".join(clauses[:-1]) + " and " + clauses[-1]
        plural = len(spec.groups) > 1 or spec.groups[0].count != 1
        text = tmpl.prefix.replace("{be}", "are" if plural else "is") + body
        if spec.background:
            bg = words.en(vocab.BACKGROUNDS, spec.background)
            text += (f" on a {bg} background" if tmpl.background_style == "suffix"
                     else f"; the background is {bg}")
        return text
    body = "，".join(clauses) if spec.relations else "和".join(clauses)
    if spec.relations and len(clauses) > 1:
        body = "，".join(clauses[:-1]) + "，还有" + clauses[-1]
    text = tmpl.prefix + body
    if spec.background:
        bg = words.zh(vocab.BACKGROUNDS, spec.background)
        bg = bg if bg.endswith("色") else bg + "色"
        text = f"{bg}背景上，{text}" if tmpl.background_style == "prefix" else f"{text}，背景是{bg}"
    return text
