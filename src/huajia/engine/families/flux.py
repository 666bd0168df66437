"""FLUX.1 (dev, schnell): an MMDiT on CLIP-L (pooled) and T5, flow matching with a shift that
grows with the picture, latents packed in 2x2 patches.

Its ``guidance_scale`` is *distilled* guidance, an input of the transformer (dev; schnell has
none), not classifier-free guidance: huajia's guidance is that number, recorded as A1111/Forge
do ("Distilled CFG Scale"). A negative prompt needs real CFG (two passes a step): huajia turns
it on at ``true_guidance`` (default 3.5) whenever a negative prompt is given."""

from __future__ import annotations

from huajia.engine.families.base import CallPlan, Family

TRUE_CFG = 3.5  # when a negative prompt asks for real CFG and the request names no scale


class Flux(Family):
    name = "flux"
    label = "FLUX.1"
    pipelines = ("FluxPipeline",)
    denoiser_name = "transformer"
    flow = True
    packed = True

    def distilled(self, pipe) -> bool:
        return bool(self.denoiser(pipe).config.get("guidance_embeds", False))

    def call_plan(self, pipe, request, has_negative: bool) -> CallPlan:
        self.check_request(request)
        kwargs, fields, notes = {}, {}, []
        if self.distilled(pipe):
            kwargs["guidance_scale"] = request.guidance
            fields["Distilled CFG Scale"] = request.guidance
        else:
            kwargs["guidance_scale"] = None
            notes.append("this FLUX.1 model (schnell) takes no guidance; the guidance "
                         "setting had no effect")
        true_cfg = request.true_guidance if request.true_guidance is not None else TRUE_CFG
        if has_negative and true_cfg > 1:
            kwargs["true_cfg_scale"] = true_cfg
            fields["CFG scale"] = true_cfg
        else:
            fields["CFG scale"] = 1
        return CallPlan(kwargs, fields, tuple(notes))
