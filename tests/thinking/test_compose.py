import numpy as np
from PIL import Image

from huajia.thinking.compose import isolate, object_mask, part_caption, paste, plain_background, sub_plan
from huajia.thinking.plan import plan_prompt
from huajia.world.render import render
from huajia.world.sampler import scene_for
from huajia.world.verifier import verify

PROMPT = "a red circle to the left of a blue square"


def test_sub_plan_keeps_only_the_regions_groups():
    plan = plan_prompt(PROMPT)
    sub = sub_plan(plan, plan.regions[1])
    assert len(sub.spec.groups) == 1 and sub.spec.groups[0] == plan.spec.groups[1]
    assert sub.spec.relations == () and sub.regions[0].box == (0.0, 0.0, 1.0, 1.0)
    assert sub.regions[0].caption == plan.regions[1].caption
    bands = plan_prompt("a teapot on a windowsill at dawn")
    assert bands.spec is None and sub_plan(bands, bands.regions[0]) is None


def test_pasting_each_part_in_its_box_makes_the_relation_true():
    plan = plan_prompt(PROMPT)
    blank = Image.new("RGB", (128, 128), "white")
    # a wrong picture: the square on the left, the circle on the right
    wrong = render(scene_for(plan_prompt("a blue square to the left of a red circle").spec, 4))
    assert not verify(wrong, plan.spec).passed
    image = wrong
    for region in plan.regions:
        part = render(scene_for(sub_plan(plan, region).spec, seed=region.index))
        image = paste(image, part, region.box)
    assert verify(image, plan.spec).passed
    assert paste(blank, blank, plan.regions[0].box) is None  # nothing to cut out


def test_paste_clears_the_box_and_shrinks_big_parts_to_fit():
    canvas = np.full((128, 128, 3), 255, np.uint8)
    canvas[10:30, 10:30] = (200, 0, 0)  # a stray object inside the left half
    canvas[10:30, 100:120] = (0, 150, 0)  # one outside it stays
    part = np.full((128, 128, 3), 255, np.uint8)
    part[10:110, 10:110] = (0, 0, 220)  # too big for a half-width box
    out = np.asarray(paste(Image.fromarray(canvas), Image.fromarray(part), (0, 0, 0.5, 1)))
    blue = object_mask(out) & (out[..., 2] > 150)
    cols = np.flatnonzero(blue.any(0))
    assert not (out[..., 0] > 150)[:, :64][object_mask(out)[:, :64]].any()  # red gone
    assert (out[10:30, 100:120] == (0, 150, 0)).all()
    across = canvas.copy()
    across[60:70, 40:90] = (0, 150, 0)  # centred in the right half, reaching into the left
    out = np.asarray(paste(Image.fromarray(across), Image.fromarray(part), (0, 0, 0.5, 1)))
    assert (out[62:68, 60:90] == (0, 150, 0)).all()  # a neighbour's object stays whole
    assert cols.min() >= 0.04 * 128 - 1 and cols.max() < 64 - 0.04 * 128 + 1
    assert 45 <= len(cols) <= 56  # shrunk to the box, aspect kept


def test_isolate_shows_only_the_region():
    plan = plan_prompt(PROMPT)
    both = Image.new("RGB", (128, 128), "white")
    for region in plan.regions:  # each object inside its own box
        both = paste(both, render(scene_for(sub_plan(plan, region).spec, 1)), region.box)
    for region in plan.regions:
        alone = isolate(both, region.box)
        assert verify(alone, sub_plan(plan, region).spec).passed  # its own object, nothing else
        assert len(verify(alone, plan.spec).detections) == 1


def test_a_part_gets_a_colour_where_the_prompt_leaves_it_open():
    plan = plan_prompt("一个五角星在一个圆的上方")
    sub = sub_plan(plan, plan.regions[1])
    captions = [part_caption(sub, k) for k in range(3)]
    assert captions == ["一个红色圆形", "一个蓝色圆形", "一个绿色圆形"]  # each try another colour
    coloured = plan_prompt(PROMPT)
    assert part_caption(sub_plan(coloured, coloured.regions[0]), 2) == "a red circle"


def test_nothing_is_cut_out_of_a_busy_background():
    plan = plan_prompt(PROMPT)
    busy = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    shapes = render(scene_for(sub_plan(plan, plan.regions[0]).spec, 1))
    assert plain_background(np.asarray(shapes)) and not plain_background(busy)
    box = plan.regions[0].box
    assert paste(Image.fromarray(busy), shapes, box) is None  # the canvas cannot be cleared
    assert paste(shapes, Image.fromarray(busy), box) is None  # the part cannot be cut out


def test_a_speck_in_the_part_does_not_shrink_the_object_pasted():
    # a red disc in the part's top left and a 3-pixel speck in its far corner: the cut is the
    # disc alone, pasted at its own size (the speck's bounds once shrank it to a fleck)
    part = np.full((128, 128, 3), 255, np.uint8)
    ys, xs = np.mgrid[:128, :128]
    disc = (ys - 30) ** 2 + (xs - 30) ** 2 <= 20 ** 2
    part[disc] = (220, 20, 20)
    part[124:127, 124:127] = (0, 0, 0)
    canvas = Image.new("RGB", (128, 128), "white")
    pasted = np.asarray(paste(canvas, Image.fromarray(part), (0.5, 0.0, 1.0, 1.0)))
    red = (pasted[..., 0] > 150) & (pasted[..., 1] < 100)
    assert abs(int(red.sum()) - int(disc.sum())) < 0.1 * disc.sum()
    assert red[:, :64].sum() == 0 and not (pasted.max(axis=2) < 60).any()  # no speck pasted
