"""Regions in MMDiT joint attention (Flux's, Chroma's and Qwen-Image's [text, image], SD3's
[image, text]): the mask, and the hook on the tiny pipelines (set and restored, one pass per
step, the negative and unconditional passes left without regions), the injection schedule and
the base-prompt blend (Regional Prompting for FLUX)."""

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


@pytest.mark.parametrize("name", ["flux", "sd3", "chroma", "qwenimage"])
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
        pauses=0, restarts=0, max_repaints=0, region_strength=0.7, region_steps=1.0,
        base_ratio=0.0)).think(request)
    assert woken.nfe == dormant.nfe  # regions ride in the same pass
    assert not np.array_equal(np.asarray(woken.image), np.asarray(dormant.image))
    assert {key: type(p) for key, p in denoiser.attn_processors.items()} == before
    assert not denoiser._forward_pre_hooks
    if name != "sd3":  # true CFG: positive (with regions) and negative pass (without) alternate
        assert len(seen) == 8 and seen[0::2] != seen[1::2] and len(set(seen[1::2])) == 1
        assert min(seen[0::2]) > seen[1]
    else:  # one [uncond, cond] batch a step, region tokens appended to both
        assert len(seen) == 4 and len(set(seen)) == 1
    # the defaults: regions for the first 0.4 of the steps, blended 0.2 with the prompt alone
    early = Thinker(engine, ShapesCritic(), ThinkOptions(
        pauses=0, restarts=0, max_repaints=0, region_strength=0.7)).think(request)
    assert early.nfe == dormant.nfe
    assert len({np.asarray(r.image).tobytes() for r in (dormant, woken, early)}) == 3
    assert {key: type(p) for key, p in denoiser.attn_processors.items()} == before


def _first_call(engine) -> tuple[tuple, dict]:
    """The denoiser's positional and keyword inputs at the first step of a plain picture."""
    calls = []
    handle = engine.family.denoiser(engine.pipe).register_forward_pre_hook(
        lambda module, args, kwargs: calls.append((args, dict(kwargs))), with_kwargs=True)
    try:
        engine.generate(GenerationRequest("a red circle", seed=1, steps=2, width=64, height=64,
                                          guidance=3.0, negative_prompt="blurry"))
    finally:
        handle.remove()
    return calls[0]


def _joint_setup(engine, base_ratio: float = 0.0):
    """The first call's inputs, and a two-region hook (left and right halves, random 3-token
    captions) sized to its image tokens."""
    args, kwargs = _first_call(engine)
    family = engine.family
    patch = max(family.patch, 2 if family.packed else 1)
    latents = kwargs.get("hidden_states", args[0] if args else None)
    tokens = latents.shape[1] if latents.ndim == 3 else \
        latents.shape[-1] * latents.shape[-2] // patch ** 2
    side = int(tokens ** 0.5) * patch
    state = RegionState(embeds=None, masks=torch.cat([
        soft_mask(box, side, side, feather=0.01) for box in ((0, 0, .5, 1), (.5, 0, 1, 1))]),
        strength=torch.ones(2), boost=torch.zeros(2))
    width = kwargs["encoder_hidden_states"].shape[-1]
    generator = torch.Generator().manual_seed(0)
    captions = [torch.randn(1, 3, width, generator=generator) * 3 for _ in range(2)]
    return args, kwargs, JointRegions(state, family, captions, patch, base_ratio=base_ratio)


def _predict(denoiser, args, kwargs) -> torch.Tensor:
    with torch.no_grad():
        return denoiser(*args, **{**kwargs, "return_dict": False})[0]


@pytest.mark.parametrize("name", ["flux", "sd3", "chroma", "qwenimage"])
def test_region_tokens_change_only_the_regions_the_mask_opens_to_them(family_dirs, name):
    # the region tokens appended and the mask given: behind the base mask (no image token sees
    # them) the prediction is the plain one; under the regions' mask it is not; and without the
    # family's masked processors the same tokens would leak into the whole picture
    engine = Engine(str(family_dirs[name]))
    family, denoiser = engine.family, engine.family.denoiser(engine.pipe)
    args, kwargs, hook = _joint_setup(engine)
    prompt = kwargs["encoder_hidden_states"]
    plain = _predict(denoiser, args, kwargs)
    extra = torch.cat(hook.captions, 1).expand(prompt.shape[0], -1, -1).to(prompt.dtype)
    extended = family.joint_text(kwargs, extra)
    leaked = _predict(denoiser, args, extended)
    hook.set_processors(denoiser)
    try:
        base = hook.mask([], prompt.shape[1], extra.shape[1])[None, None]
        behind = _predict(denoiser, args, family.joint_mask(extended, base))
        regional = hook.mask([0, 1], prompt.shape[1])[None, None]
        steered = _predict(denoiser, args, family.joint_mask(extended, regional))
    finally:
        hook.close()
    torch.testing.assert_close(behind, plain, rtol=1e-4, atol=1e-5)
    assert (steered - plain).abs().max() > 1e-3
    assert (leaked - plain).abs().max() > 1e-3


@pytest.mark.parametrize("name", ["flux", "chroma", "qwenimage"])
def test_base_ratio_blends_the_image_stream_with_the_prompt_alone(family_dirs, name):
    # all of the base attention (ratio 1): the image stream never reads the region tokens, so
    # the prediction is the plain one; half of it lies between
    engine = Engine(str(family_dirs[name]))
    denoiser = engine.family.denoiser(engine.pipe)
    saved = {key: type(p) for key, p in denoiser.attn_processors.items()}
    results = {}
    for ratio in (1.0, 0.5, 0.0):
        args, kwargs, hook = _joint_setup(engine, base_ratio=ratio)
        results["plain"] = _predict(denoiser, args, kwargs)
        hook.set_processors(denoiser)
        try:
            results[ratio] = _predict(denoiser, *hook._extend(denoiser, args, kwargs))
        finally:
            hook.close()
    assert {key: type(p) for key, p in denoiser.attn_processors.items()} == saved
    torch.testing.assert_close(results[1.0], results["plain"], rtol=1e-4, atol=1e-5)
    half, full = ((results[r] - results["plain"]).abs().max() for r in (0.5, 0.0))
    assert 1e-4 < half < full


def test_regions_are_injected_for_the_first_steps_only(family_dirs):
    # region_steps 0.5 of 4 steps: the first two positive passes carry the region tokens
    engine = Engine(str(family_dirs["flux"]))
    request = GenerationRequest("two red circles left of a blue square", seed=1, steps=4,
                                width=64, height=64, guidance=3.0, negative_prompt="blurry")
    seen = _lengths_seen(engine)
    Thinker(engine, ShapesCritic(), ThinkOptions(
        pauses=0, restarts=0, max_repaints=0, region_strength=0.7, region_steps=0.5,
        base_ratio=0.2)).think(request)
    positive, negative = seen[0::2], seen[1::2]
    assert len(seen) == 8 and positive[0] == positive[1] > negative[0]
    assert positive[2:] == negative[2:] == negative[:2]


def test_a_new_denoise_counts_its_steps_again():
    hook = JointRegions(_state([(0, 0, 1, 1)]), Flux(), [torch.zeros(1, 1, 8)], 2, steps=4,
                        region_steps=0.5)
    timesteps = [1.0, 1.0, 0.75, 0.75, 0.5, 0.25, 0.9, 0.6]  # true CFG pairs, then a repaint
    steps = []
    for t in timesteps:
        hook._count_step(t)
        steps.append(hook.step)
    assert steps == [0, 0, 1, 1, 2, 3, 0, 1] and hook.inject == 2
