"""Random scenes: sample a spec, fill what a spec leaves open, and lay the objects out.

Layout guarantees what the verifier checks: objects never overlap (a gap of a few pixels), and a
relation "A left of B" puts every A wholly on one side of a split line and every B on the other.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from huajia.errors import HuajiaError
from huajia.world import vocab
from huajia.world.spec import ObjectGroup, PlacedObject, Relation, Scene, SceneSpec

MARGIN = 0.045  # free space between objects and to the canvas edge, as a canvas fraction
_KIND_WEIGHTS = (0.35, 0.35, 0.18, 0.12)  # P(1..4 kinds of object)
_COUNT_WEIGHTS = (0.5, 0.25, 0.15, 0.10)  # P(count 1..4)
MAX_OBJECTS = 8
# Relation axis and on which side of the split line the subject lies (-1: low coordinate).
_REL_AXIS = {"left_of": (0, -1), "right_of": (0, 1), "above": (1, -1), "below": (1, 1)}


def _choice(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def allowed(split: str) -> dict[str, tuple[str, ...]]:
    """The shapes/textures a split may use: held-out concepts only outside 'train'."""
    keep = split != "train"
    return {
        "shape": vocab.ids(vocab.SHAPES, include_held_out=keep),
        "colour": vocab.ids(vocab.COLOURS),
        "texture": vocab.ids(vocab.TEXTURES, include_held_out=keep),
        "size": vocab.ids(vocab.SIZES),
        "background": vocab.ids(vocab.BACKGROUNDS),
    }


def _combo_ok(shape: str, colour: str, split: str) -> bool:
    return split != "train" or (shape, colour) not in vocab.HELD_OUT_COMBOS


def sample_spec(rng: np.random.Generator, split: str = "train") -> SceneSpec:
    """A random, fully specified scene spec for ``split`` ('train' or 'eval')."""
    options = allowed(split)
    n_kinds = int(rng.choice(4, p=_KIND_WEIGHTS)) + 1
    while True:
        counts = [int(rng.choice(4, p=_COUNT_WEIGHTS)) + 1 for _ in range(n_kinds)]
        if sum(counts) <= MAX_OBJECTS:
            break
    crowded = sum(counts) > 4
    kinds: set[tuple[str, str]] = set()
    groups = []
    for count in counts:
        while True:
            shape, colour = _choice(rng, options["shape"]), _choice(rng, options["colour"])
            if (shape, colour) not in kinds and _combo_ok(shape, colour, split):
                break
        kinds.add((shape, colour))
        size_options = options["size"][:2] if crowded else options["size"]
        groups.append(ObjectGroup(shape=shape, count=count, colour=colour,
                                  texture=_sample_texture(rng, options["texture"]),
                                  size=_choice(rng, size_options)))
    relations = []
    for first in range(0, n_kinds - 1, 2):
        if rng.random() < 0.6:
            name = _choice(rng, vocab.ids(vocab.RELATIONS))
            relations.append(Relation(first, name, first + 1))
    background = "white" if rng.random() < 0.5 else _choice(rng, options["background"])
    return SceneSpec(tuple(groups), tuple(relations), background)


def _sample_texture(rng: np.random.Generator, textures: tuple[str, ...]) -> str:
    # Solid is the most common texture, as in the real world.
    return "solid" if rng.random() < 0.5 else _choice(rng, textures)


def complete_spec(spec: SceneSpec, rng: np.random.Generator, split: str = "eval") -> SceneSpec:
    """Fill every unspecified attribute at random, keeping (shape, colour) kinds distinct."""
    options = allowed(split)
    taken = {(g.shape, g.colour) for g in spec.groups if g.colour}
    crowded = spec.n_objects > 4
    groups = []
    for group in spec.groups:
        colour = group.colour
        while colour is None:
            candidate = _choice(rng, options["colour"])
            if (group.shape, candidate) not in taken and _combo_ok(group.shape, candidate, split):
                colour = candidate
                taken.add((group.shape, colour))
        size_options = options["size"][:2] if crowded else options["size"]
        groups.append(replace(
            group, colour=colour,
            texture=group.texture or _sample_texture(rng, options["texture"]),
            size=group.size or _choice(rng, size_options)))
    background = spec.background or ("white" if rng.random() < 0.5
                                     else _choice(rng, options["background"]))
    return SceneSpec(tuple(groups), spec.relations, background)


def layout(spec: SceneSpec, rng: np.random.Generator, seed: int = 0,
           allow_shrink: bool = True) -> Scene:
    """Place every object of a fully specified spec. If they do not fit, shrink them (a last
    resort: sizes may then read smaller) or, with ``allow_shrink=False``, raise."""
    if spec.n_objects == 0:
        raise HuajiaError("the scene has no objects; name at least one shape, e.g. 'a red circle'")
    shrink = 1.0
    for attempt in range(100 if allow_shrink else 30):
        placed = _try_layout(spec, rng, shrink)
        if placed is not None:
            return Scene(spec=spec, objects=placed, background=spec.background or "white", seed=seed)
        if attempt >= 30 and attempt % 10 == 9:
            shrink *= 0.9
    raise HuajiaError(f"cannot fit {spec.n_objects} objects on one canvas; ask for fewer or smaller")


def _try_layout(spec: SceneSpec, rng: np.random.Generator,
                shrink: float) -> tuple[PlacedObject, ...] | None:
    # For each related pair pick a split line; each group keeps to its side of it.
    bounds = [[MARGIN, 1 - MARGIN, MARGIN, 1 - MARGIN] for _ in spec.groups]  # x0 x1 y0 y1
    for rel in spec.relations:
        axis, side = _REL_AXIS[rel.relation]
        split = float(rng.uniform(0.35, 0.65))
        low, high = (rel.subject, rel.object) if side < 0 else (rel.object, rel.subject)
        bounds[low][2 * axis + 1] = min(bounds[low][2 * axis + 1], split - MARGIN / 2)
        bounds[high][2 * axis] = max(bounds[high][2 * axis], split + MARGIN / 2)
    placed: list[PlacedObject] = []
    order = sorted(range(len(spec.groups)), key=lambda i: -vocab.SIZE_RADIUS[spec.groups[i].size])
    for index in order:
        group = spec.groups[index]
        for _ in range(group.count):
            radius = vocab.SIZE_RADIUS[group.size] * float(rng.uniform(0.96, 1.04)) * shrink
            spot = _find_spot(rng, bounds[index], radius, placed)
            if spot is None:
                return None
            placed.append(PlacedObject(index, group.shape, group.colour, group.texture,
                                       group.size, spot[0], spot[1], radius))
    return tuple(placed)


def _find_spot(rng: np.random.Generator, bound: list[float], radius: float,
               placed: list[PlacedObject]) -> tuple[float, float] | None:
    x0, x1, y0, y1 = bound[0] + radius, bound[1] - radius, bound[2] + radius, bound[3] - radius
    if x0 > x1 or y0 > y1:
        return None
    for _ in range(40):
        cx, cy = float(rng.uniform(x0, x1)), float(rng.uniform(y0, y1))
        if all(max(abs(cx - o.cx), abs(cy - o.cy)) >= radius + o.radius + MARGIN for o in placed):
            return cx, cy
    return None


def sample_scene(rng: np.random.Generator, split: str = "train", seed: int = 0) -> Scene:
    """A random scene whose objects have their nominal sizes (a spec that cannot fit is
    replaced by another)."""
    while True:
        try:
            return layout(sample_spec(rng, split), rng, seed, allow_shrink=False)
        except HuajiaError:
            continue


def mirrored(scene: Scene, axis: int) -> Scene:
    """``scene`` reflected left to right (axis 0) or top to bottom (axis 1), with its relations
    on that axis turned round ("A left of B" becomes "A right of B"): the same kinds, the other
    way round. Shapes are drawn upright either way; only their places move."""
    def flip(obj: PlacedObject) -> PlacedObject:
        return (replace(obj, cx=1.0 - obj.cx) if axis == 0 else replace(obj, cy=1.0 - obj.cy))

    relations = tuple(replace(rel, relation=vocab.INVERSE_RELATION[rel.relation])
                      if _REL_AXIS[rel.relation][0] == axis else rel
                      for rel in scene.spec.relations)
    return replace(scene, spec=replace(scene.spec, relations=relations),
                   objects=tuple(flip(obj) for obj in scene.objects))


def mirror_axis(scene: Scene) -> int:
    """The axis whose mirror changes what ``scene``'s caption says: its first relation's (left
    to right when it states none)."""
    return _REL_AXIS[scene.spec.relations[0].relation][0] if scene.spec.relations else 0


def scene_for(spec: SceneSpec, seed: int, split: str = "eval") -> Scene:
    """The oracle's scene for a (possibly partial) spec: deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    return layout(complete_spec(spec, rng, split), rng, seed)
