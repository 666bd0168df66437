from contextlib import contextmanager

import torch

from huajia.thinking.regional import RegionalHooks, RegionState, soft_mask


@contextmanager
def _hooked(unet, state):
    hooks = RegionalHooks(state)
    hooks.attach(unet)
    try:
        yield hooks
    finally:
        hooks.close()


class Echo(torch.nn.Module):
    """A stand-in denoiser whose output is its text conditioning's mean, broadcast."""

    def forward(self, sample, timestep, encoder_hidden_states=None, **kwargs):
        return (encoder_hidden_states.mean((1, 2))[:, None, None, None].expand_as(sample),)


def test_soft_mask_covers_its_box():
    mask = soft_mask((0.0, 0.0, 0.5, 1.0), 16, 16)[0, 0]
    assert mask[:, :6].min() == 1 and mask[:, 10:].max() == 0


def test_one_batched_call_blends_regions_and_is_removable():
    unet = Echo()
    masks = torch.cat([soft_mask((0, 0, 0.5, 1), 8, 8, feather=0.001),
                       soft_mask((0.5, 0, 1, 1), 8, 8, feather=0.001)])
    state = RegionState(embeds=torch.stack([torch.full((3, 4), 10.0), torch.full((3, 4), 20.0)]),
                        masks=masks, strength=torch.ones(2), boost=torch.zeros(2))
    sample = torch.zeros(2, 1, 8, 8)  # [uncond, cond] for one image
    hidden = torch.stack([torch.zeros(3, 4), torch.ones(3, 4)])
    with _hooked(unet, state):
        out = unet(sample, torch.tensor([5, 5]), encoder_hidden_states=hidden)[0]
    assert out.shape == sample.shape
    assert torch.allclose(out[0], torch.zeros(1, 8, 8))  # uncond untouched
    assert torch.allclose(out[1, 0, :, :4], torch.full((8, 4), 10.0))  # left: region 0
    assert torch.allclose(out[1, 0, :, 4:], torch.full((8, 4), 20.0))  # right: region 1
    assert state.calls == 4  # uncond + cond + 2 regions, per image
    plain = unet(sample, torch.tensor([5, 5]), encoder_hidden_states=hidden)[0]
    assert torch.allclose(plain[1], torch.ones(1, 8, 8))  # hooks are gone


def test_boost_scales_guidance_inside_the_region():
    unet = Echo()
    masks = soft_mask((0, 0, 1, 1), 4, 4)
    state = RegionState(embeds=torch.ones(1, 3, 4), masks=masks, strength=torch.zeros(1),
                        boost=torch.ones(1))
    hidden = torch.stack([torch.zeros(3, 4), torch.ones(3, 4)])
    with _hooked(unet, state):
        out = unet(torch.zeros(2, 1, 4, 4), torch.tensor(1), encoder_hidden_states=hidden)[0]
    assert torch.allclose(out[1], torch.full((1, 4, 4), 2.0))  # (cond - uncond) doubled
