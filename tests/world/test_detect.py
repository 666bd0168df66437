"""The detector on rendered scenes: exact on clean pictures, robust on degraded ones."""

import numpy as np

from huajia.world import sampler
from huajia.world.detect import detect
from huajia.world.perturb import perturb
from huajia.world.render import render

ATTRS = ("shape", "colour", "texture", "size")


def _attribute_accuracy(degrade: bool, n_scenes: int = 60) -> dict[str, float]:
    rng = np.random.default_rng(77)
    right = dict.fromkeys(ATTRS, 0)
    total = 0
    for i in range(n_scenes):
        scene = sampler.sample_scene(rng, "eval", seed=i)
        image = render(scene)
        _, found = detect(perturb(image, i) if degrade else image)
        assert len(found) == len(scene.objects)
        for obj in scene.objects:
            nearest = min(found, key=lambda d: (d.cx - obj.cx) ** 2 + (d.cy - obj.cy) ** 2)
            total += 1
            for a in ATTRS:
                right[a] += getattr(nearest, a) == getattr(obj, a)
    return {a: right[a] / total for a in ATTRS}


def test_clean_pictures_are_read_exactly():
    accuracy = _attribute_accuracy(degrade=False)
    assert min(accuracy.values()) >= 0.98, accuracy


def test_degraded_pictures_are_read_robustly():
    accuracy = _attribute_accuracy(degrade=True)
    assert min(accuracy.values()) >= 0.94, accuracy


def test_background_and_positions(rng):
    scene = sampler.sample_scene(rng, seed=3)
    background, found = detect(render(scene, 256))
    assert background == scene.background
    for obj in scene.objects:
        assert min(abs(d.cx - obj.cx) + abs(d.cy - obj.cy) for d in found) < 0.02
