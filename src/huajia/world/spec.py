"""Scene specifications (what a prompt asks for) and scenes (where every object actually is).

A ``SceneSpec`` may leave attributes unspecified (``None``): "a red circle" says nothing about
size or texture, and the verifier only checks what was said. Two specs are equal when they
describe the same scene, whatever order the groups were mentioned in and whichever way a relation
was phrased ("A left of B" == "B right of A").
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from huajia.world.vocab import INVERSE_RELATION


@dataclass(frozen=True)
class ObjectGroup:
    """``count`` objects of one kind. ``None`` attributes were not specified; a ``None`` count
    is a bare plural ("red circles"): two or more."""

    shape: str
    count: int | None = 1
    colour: str | None = None
    texture: str | None = None
    size: str | None = None

    def sort_key(self) -> tuple[str, ...]:
        return (self.shape, self.colour or "", self.texture or "", self.size or "", str(self.count))


@dataclass(frozen=True)
class Relation:
    """``groups[subject]`` is ``relation`` ``groups[object]`` (e.g. left_of)."""

    subject: int
    relation: str
    object: int


@dataclass(frozen=True, eq=False)
class SceneSpec:
    groups: tuple[ObjectGroup, ...]
    relations: tuple[Relation, ...] = ()
    background: str | None = None

    # -- canonical form: equality ignores mention order and relation phrasing ------------------
    def canonical(self) -> tuple[Any, ...]:
        order = sorted(range(len(self.groups)), key=lambda i: self.groups[i].sort_key())
        new_index = {old: new for new, old in enumerate(order)}
        groups = tuple(self.groups[i] for i in order)
        relations = set()
        for rel in self.relations:
            subj, obj, name = new_index[rel.subject], new_index[rel.object], rel.relation
            if name in ("right_of", "below"):  # express every relation as left_of / above
                subj, obj, name = obj, subj, INVERSE_RELATION[name]
            relations.add((subj, name, obj))
        return (groups, tuple(sorted(relations)), self.background)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SceneSpec):
            return NotImplemented
        return self.canonical() == other.canonical()

    def __hash__(self) -> int:
        return hash(self.canonical())

    @property
    def n_objects(self) -> int:
        return sum(g.count for g in self.groups)

    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": [asdict(g) for g in self.groups],
            "relations": [asdict(r) for r in self.relations],
            "background": self.background,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SceneSpec:
        return cls(
            groups=tuple(ObjectGroup(**g) for g in data["groups"]),
            relations=tuple(Relation(**r) for r in data.get("relations", ())),
            background=data.get("background"),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class PlacedObject:
    """One drawn object: its kind (fully specified) and where it is, in canvas fractions."""

    group: int
    shape: str
    colour: str
    texture: str
    size: str
    cx: float
    cy: float
    radius: float

    def box(self, side: int) -> tuple[int, int, int, int]:
        """Pixel bounding box (x0, y0, x1, y1) on a ``side`` x ``side`` canvas."""
        r = self.radius * side
        return (round(self.cx * side - r), round(self.cy * side - r),
                round(self.cx * side + r), round(self.cy * side + r))


@dataclass(frozen=True)
class Scene:
    """A fully specified scene: the spec it satisfies (all attributes filled) and its layout."""

    spec: SceneSpec
    objects: tuple[PlacedObject, ...]
    background: str
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "background": self.background,
            "objects": [asdict(o) for o in self.objects],
            "seed": self.seed,
        }
