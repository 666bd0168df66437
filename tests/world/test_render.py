import numpy as np
import pytest

from huajia.errors import HuajiaError
from huajia.world import sampler
from huajia.world.render import render
from huajia.world.spec import ObjectGroup, SceneSpec


def test_same_seed_same_pixels():
    a = render(sampler.scene_for(SceneSpec((ObjectGroup("star", 3, "red", "striped"),)), 5))
    b = render(sampler.scene_for(SceneSpec((ObjectGroup("star", 3, "red", "striped"),)), 5))
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_different_seed_different_layout():
    spec = SceneSpec((ObjectGroup("circle", 2, "blue"),))
    a, b = render(sampler.scene_for(spec, 1)), render(sampler.scene_for(spec, 2))
    assert not np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("side", [64, 128, 333, 512])
def test_any_size_from_64_to_512(side, rng):
    image = render(sampler.sample_scene(rng), side)
    assert image.size == (side, side) and image.mode == "RGB"


@pytest.mark.parametrize("side", [7, 63, 513, 0])
def test_bad_size_is_a_clear_error(side, rng):
    with pytest.raises(HuajiaError, match="out of range"):
        render(sampler.sample_scene(rng), side)


def test_edges_are_anti_aliased():
    scene = sampler.scene_for(SceneSpec((ObjectGroup("circle", 1, "black", "solid", "large"),),
                                        background="white"), 0)
    pixels = np.asarray(render(scene))[..., 0]
    intermediate = np.logical_and(pixels > 40, pixels < 240).sum()
    assert intermediate > 20  # grey ramp at the rim, not a hard staircase


def test_objects_never_overlap(rng):
    for _ in range(200):
        scene = sampler.sample_scene(rng)
        objects = scene.objects
        for i, a in enumerate(objects):
            for b in objects[i + 1:]:
                gap = max(abs(a.cx - b.cx), abs(a.cy - b.cy)) - (a.radius + b.radius)
                assert gap >= sampler.MARGIN - 1e-9


def test_train_split_leaves_out_held_out_concepts(rng):
    from huajia.world import vocab
    for _ in range(500):
        spec = sampler.sample_spec(rng, "train")
        for g in spec.groups:
            assert g.shape != "hexagon" and g.texture != "checkered"
            assert (g.shape, g.colour) not in vocab.HELD_OUT_COMBOS


def test_a_mirrored_scene_draws_what_its_turned_relation_says():
    from huajia.world.verifier import verify

    rng = np.random.default_rng(3)
    scenes = [sampler.sample_scene(rng) for _ in range(40)]
    related = [s for s in scenes if s.spec.relations][:6]
    assert related
    for scene in related:
        mirror = sampler.mirrored(scene, sampler.mirror_axis(scene))
        assert mirror.spec != scene.spec  # the relation word is the other one
        assert verify(render(mirror), mirror.spec).passed
        assert not verify(render(mirror), scene.spec).passed
        assert [o.shape for o in mirror.objects] == [o.shape for o in scene.objects]
