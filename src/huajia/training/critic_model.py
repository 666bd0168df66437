"""The differentiable critic that DRaFT backpropagates through (``--method draft``).

The verifier is not differentiable: it thresholds colours, traces blobs and counts. This critic
asks the same questions softly. The world feature network's per-cell heads (shape, colour,
texture and size of the object centred in each of 4×4 cells, and the background) are turned
into, per constraint of the prompt's spec:
- a **soft count** n = Σ_cells p(shape) · Π p(stated attribute | occupied), credited as the
  verifier credits a count, min(n, want) / max(n, want) (a bare plural wants 2 or more);
- a **soft side** for a relation: the two groups' probability-weighted cell centres, credited
  sigmoid((Δ − tolerance) / τ) along the relation's axis, times both groups being there;
- the **background** head's probability of the named background.
The score is the mean of the credits, as the RL reward is the mean of the verifier's.

``huajia train critic`` (training/critic.py) distils the network from the verifier's
detections on the model's own pictures plus oracle renders, and records how well the critic
agrees with the verifier on held-out pictures. A critic folder holds the network
(model.safetensors, config.json), ``critic.json`` (the picture side it was distilled for, the
world it knows and its agreement) and a card (README.md).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from huajia.errors import HuajiaError
from huajia.scorers.world_features import WorldFeatureNet, load_feature_net
from huajia.world import vocab
from huajia.world.spec import SceneSpec
from huajia.world.verifier import RELATION_TOLERANCE

CRITIC_RECORD = "critic.json"
RELATION_TEMPERATURE = 0.05  # canvas fraction: how soft the side test is
_AXIS = {"left_of": (0, -1.0), "right_of": (0, 1.0), "above": (1, -1.0), "below": (1, 1.0)}
_ATTRS = (("colour", "cell_colour"), ("texture", "cell_texture"), ("size", "cell_size"))


def world_signature() -> str:
    """A short hash of the world's vocabulary (shapes, colours, textures, sizes, backgrounds,
    relations): a critic distilled in another world cannot judge this one."""
    words = {name: vocab.ids(getattr(vocab, name)) for name in
             ("SHAPES", "COLOURS", "TEXTURES", "SIZES", "BACKGROUNDS", "RELATIONS")}
    return hashlib.sha256(json.dumps(words, sort_keys=True).encode()).hexdigest()[:12]


class SoftCritic(nn.Module):
    """``forward(images, specs)`` → (B,) score in [0, 1], differentiable in ``images`` (float
    (B, 3, H, W) in [0, 1]); ``credits`` gives each constraint's credit, in the verifier's order."""

    def __init__(self, net: WorldFeatureNet, image_side: int):
        super().__init__()
        self.net, self.image_side = net, image_side
        names = net.config.names
        self.index = {head: {name: i for i, name in enumerate(names[head])}
                      for head in ("cell_shape", "cell_colour", "cell_texture", "cell_size", "background")}
        grid = net.config.grid
        centres = (torch.arange(grid, dtype=torch.float32) + 0.5) / grid
        self.register_buffer("cx", centres.view(1, grid).expand(grid, grid).clone(), persistent=False)
        self.register_buffer("cy", centres.view(grid, 1).expand(grid, grid).clone(), persistent=False)

    def cells(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-cell probabilities: p(shape) with index 0 'none', the attributes given that the
        cell is occupied (their 'none' class dropped and renormalised), and the background's."""
        out = self.net(images)
        probs = {"cell_shape": out["cell_shape"].softmax(1), "background": out["background"].softmax(1)}
        for _, head in _ATTRS:
            probs[head] = out[head][:, 1:].softmax(1)  # class i+1 of the head is column i
        return probs

    def group_mass(self, probs: dict, group) -> torch.Tensor:
        """(B, grid, grid): how much each cell holds an object of ``group``."""
        mass = probs["cell_shape"][:, self.index["cell_shape"][group.shape]]
        for attr, head in _ATTRS:
            value = getattr(group, attr)
            if value is not None:
                mass = mass * probs[head][:, self.index[head][value] - 1]
        return mass

    def credits(self, images: torch.Tensor, specs: list[SceneSpec]) -> list[torch.Tensor]:
        """Per picture, its constraints' credits (counts, relations, background), each in [0, 1]."""
        probs = self.cells(images)
        result = []
        for b, spec in enumerate(specs):
            one = {k: v[b:b + 1] for k, v in probs.items()}
            masses = [self.group_mass(one, g)[0] for g in spec.groups]
            credit = [_count_credit(m.sum(), g.count) for m, g in zip(masses, spec.groups, strict=True)]
            for rel in spec.relations:
                credit.append(self._relation(masses[rel.subject], masses[rel.object], rel.relation))
            if spec.background is not None:
                credit.append(one["background"][0, self.index["background"][spec.background]])
            result.append(torch.stack(credit) if credit else images.new_ones(1))
        return result

    def _relation(self, subject: torch.Tensor, obj: torch.Tensor, relation: str) -> torch.Tensor:
        axis, sign = _AXIS[relation]
        coord = self.cx if axis == 0 else self.cy
        centre = lambda m: (m * coord).sum() / (m.sum() + 1e-6)  # noqa: E731
        delta = sign * (centre(subject) - centre(obj))
        present = subject.sum().clamp(max=1.0) * obj.sum().clamp(max=1.0)
        return present * torch.sigmoid((delta - RELATION_TOLERANCE) / RELATION_TEMPERATURE)

    def forward(self, images: torch.Tensor, specs: list[SceneSpec]) -> torch.Tensor:
        return torch.stack([c.mean() for c in self.credits(images, specs)])


def _count_credit(found: torch.Tensor, want: int | None) -> torch.Tensor:
    """The verifier's count credit, min(found, want) / max(found, want), on a soft count; a bare
    plural (``want`` None) wants 2 or more."""
    if want is None:
        return found.clamp(max=2.0) / 2.0
    return torch.minimum(found, found.new_tensor(float(want))) / found.clamp(min=float(want))


def save_critic(critic: SoftCritic, folder: str | Path, record: dict) -> Path:
    folder = critic.net.save(folder)
    data = {"image_side": critic.image_side, "world": world_signature(), **record}
    (folder / CRITIC_RECORD).write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    return folder


def shipped_critic() -> Path:
    """The critic distilled for the embedded model (``--critic-model embedded``)."""
    from importlib import resources

    return Path(str(resources.files("huajia").joinpath("assets/critic")))


def check_critic(folder: str | Path, image_side: int | None = None) -> tuple[Path, dict]:
    """The critic folder ``folder`` names ('embedded': the one shipped for the embedded model)
    and its record, refused in one line when it is not a critic, was distilled in another world,
    or for pictures of another side than ``image_side``. Reads the record only."""
    folder = shipped_critic() if str(folder) == "embedded" else Path(folder)
    record_path = folder / CRITIC_RECORD
    if not record_path.is_file():
        raise HuajiaError(f"--critic-model '{folder}' is not a critic folder (no {CRITIC_RECORD}); "
                          "make one with `huajia train critic --out DIR`")
    record = json.loads(record_path.read_text(encoding="utf-8"))
    if record.get("world") != world_signature():
        raise HuajiaError(f"--critic-model '{folder}' was distilled in another world (vocabulary "
                          f"{record.get('world')}, this one {world_signature()}); train a critic "
                          "here with `huajia train critic`")
    if image_side is not None and record.get("image_side") != image_side:
        raise HuajiaError(f"--critic-model '{folder}' judges {record.get('image_side')} px pictures; "
                          f"this model paints {image_side} px; train a critic for it with "
                          "`huajia train critic --model …`")
    return folder, record


def load_critic(folder: str | Path, image_side: int | None = None) -> SoftCritic:
    """The critic in ``folder``, checked as ``check_critic`` checks it."""
    folder, record = check_critic(folder, image_side)
    critic = SoftCritic(load_feature_net(folder), int(record["image_side"]))
    return critic.requires_grad_(False).eval()


def picture_side(pipe) -> int:
    """The side, in pixels, of the pictures an SD-style pipeline paints by default."""
    return int(pipe.unet.config.sample_size) * int(getattr(pipe, "vae_scale_factor", 8))
