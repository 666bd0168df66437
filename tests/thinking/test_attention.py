"""Regions in MMDiT joint attention (Flux's [text, image], SD3's [image, text]): the mask, and
the hook on the tiny Flux and SD3 pipelines (set and restored, one pass per step, the negative
and unconditional passes left without regions)."""

import numpy as np
import pytest
import torch

from huajia.engine.engine import Engine
from huajia.engine.families import Flux, StableDiffusion3
from huajia.engine.request import GenerationRequest
from huajia.thinking.attention import JointRegions
from huajia.thinking.critics import ShapesCritic
from huajia.thinking.loop import Thinker, ThinkOptions
from huajia.thinking.regional import RegionState, soft_mask


def _state(boxes) -> RegionState:
    masks = torch.cat([soft_mask(box, 4, 4, feather=0.01) for box in boxes])
    regions = len(boxes)
    return RegionState(embeds=None, masks=masks, strength=torch.ones(regions),
                       boost=torch.zeros(regions))


@pytest.mark.parametrize("family", [Flux(), StableDiffusion3()])
def test_the_mask_lets_each_region_see_its_own_caption(family):
    # 4x4 latents in 2x2 patches: 4 image tokens, row by row; region 0 the left half
    state = _state([(0.0, 0.0, 0.5, 1.0), (0.5, 0.0, 1.0, 1.0)])
    captions = [torch.zeros(1, 2, 8), torch.zeros(1, 1, 8)]
    mask = JointRegions(state, family, captions, patch=2).mask([0, 1], prompt_tokens=3)
    text = 3 + 2 + 1
    assert mask.shape == (text + 4, text + 4)
    order = (list(range(text)), list(range(text, text + 4))) if family.text_first else \
        (list(range(4, 4 + text)), list(range(4)))
    prompt, first, second = order[0][:3], order[0][3:5], order[0][5:]
    left, right = [order[1][0], order[1][2]], [order[1][1], order[1][3]]
    image = order[1]
    assert mask[np.ix_(image, prompt)].all() and mask[np.ix_(prompt, image)].all()
    assert mask[np.ix_(image, image)].all() and mask[np.ix_(prompt, prompt)].all()
    assert mask[np.ix_(left, first)].all() and not mask[np.ix_(right, first)].any()
    assert mask[np.ix_(right, second)].all() and not mask[np.ix_(left, second)].any()
    assert mask[np.ix_(first, first)].all() and not mask[np.ix_(first, second)].any()
    assert not mask[np.ix_(prompt, first + second)].any()
    assert mask.any(1).all()  # every query sees something


def _lengths_seen(engine) -> list[int]:
    """Text tokens the transformer was given, call by call (after the thinking hook)."""
    seen = []
    engine.family.denoiser(engine.pipe).register_forward_hook(
        lambda module, args, kwargs, out: seen.append(kwargs["encoder_hidden_states"].shape[1]),
        with_kwargs=True)
    return seen


@pytest.mark.parametrize("name", ["flux", "sd3"])
def test_regions_steer_joint_attention_and_are_taken_off_after(family_dirs, name):
    engine = Engine(str(family_dirs[name]))
    denoiser = engine.family.denoiser(engine.pipe)
    before = {key: type(p) for key, p in denoiser.attn_processors.items()}
    request = GenerationRequest("two red circles left of a blue square", seed=1, steps=4,
                                width=64, height=64, guidance=3.0, negative_prompt="blurry")
    options = ThinkOptions(pauses=0, restarts=0, max_repaints=0)
    dormant = Thinker(engine, ShapesCritic(), options).think(request)
    seen = _lengths_seen(engine)
    woken = Thinker(engine, ShapesCritic(), ThinkOptions(
        pauses=0, restarts=0, max_repaints=0, region_strength=0.7)).think(request)
    assert woken.nfe == dormant.nfe  # regions ride in the same pass
    assert not np.array_equal(np.asarray(woken.image), np.asarray(dormant.image))
    assert {key: type(p) for key, p in denoiser.attn_processors.items()} == before
    assert not denoiser._forward_pre_hooks
    if name == "flux":  # true CFG: positive (with regions) and negative pass (without) alternate
        assert len(seen) == 8 and seen[0::2] != seen[1::2] and len(set(seen[1::2])) == 1
        assert min(seen[0::2]) > seen[1]
    else:  # one [uncond, cond] batch a step, region tokens appended to both
        assert len(seen) == 4 and len(set(seen)) == 1
