"""FLUX.1 (dev, schnell): an MMDiT on CLIP-L (pooled) and T5, flow matching with a shift that
grows with the picture, latents packed in 2x2 patches.

Its ``guidance_scale`` is *distilled* guidance, an input of the transformer (dev; schnell has
none), not classifier-free guidance: huajia's guidance is that number, recorded as A1111/Forge
do ("Distilled CFG Scale"). A negative prompt needs real CFG (two passes a step): huajia turns
it on at ``true_guidance`` (default 3.5) whenever a negative prompt is given."""

from __future__ import annotations

from huajia.engine.families.base import CallPlan, Family
from huajia.engine.prompt_weights import plain_text
from huajia.engine.t5_weights import encode_t5, even, own_encoding

TRUE_CFG = 3.5  # when a negative prompt asks for real CFG and the request names no scale


class Flux(Family):
    name = "flux"
    label = "FLUX.1"
    pipelines = ("FluxPipeline",)
    img2img, inpaint = "FluxImg2ImgPipeline", "FluxInpaintPipeline"
    sigma_spacing = True
    lora_targets = ("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj",
                    "to_add_out")  # the image and the text stream's attention
    lora_text_encoders = ("text_encoder",)  # CLIP-L, not T5
    denoiser_name = "transformer"
    flow = True
    packed = True
    weighted = True
    window = 512  # T5 tokens per chunk (the pipeline's max_sequence_length)
    window_tokenizer = "tokenizer_2"  # T5's (CLIP gives the pooled vector alone)

    def prompt_kwargs(self, pipe, prompt: str, negative: str, dtype=None) -> dict:
        """Weights on T5 (engine/t5_weights); the pooled CLIP vector of the words as written.
        Without weight syntax: the strings, encoded by the pipeline itself."""
        if not own_encoding(pipe.tokenizer_2, self.window - 1, prompt, negative):
            return super().prompt_kwargs(pipe, prompt, negative, dtype)
        dtype = dtype or pipe.dtype
        texts = (prompt, negative) if plain_text(negative) else (prompt,)  # no negative: no CFG
        encoded = [encode_t5(pipe.tokenizer_2, pipe.text_encoder_2, text, self.window,
                             masked=False) for text in texts]
        if len(encoded) == 2:
            encoded = even(*encoded)  # the pipeline wants both at one length
        kwargs = {}
        for key, text, t5 in zip(("", "negative_"), texts, encoded, strict=False):
            pooled = pipe._get_clip_prompt_embeds(plain_text(text), device=pipe.device)
            kwargs[f"{key}prompt_embeds"] = t5.embeds.to(dtype)
            kwargs[f"{key}pooled_prompt_embeds"] = pooled.to(dtype)
        return kwargs

    regions = "joint"  # thinking's regional prompts: a mask over [text, image] attention

    def caption_embeds(self, pipe, caption: str):
        """A caption's T5 tokens (its words and EOS, no padding) for regional attention."""
        t5 = encode_t5(pipe.tokenizer_2, pipe.text_encoder_2, caption, self.window,
                       masked=False)
        return t5.embeds[:, :max(1, int(t5.mask[0, :self.window].sum()))], None

    def joint_text(self, kwargs: dict, extra) -> dict:
        """The transformer's keywords with ``extra`` text tokens after the prompt's; their
        positions are the text's (zeros), as the pipeline's own ``txt_ids``."""
        import torch

        kwargs = super().joint_text(kwargs, extra)
        ids = kwargs["txt_ids"]
        ids = ids[0] if ids.ndim == 3 else ids  # the deprecated batched form
        kwargs["txt_ids"] = torch.cat([ids, ids.new_zeros(extra.shape[1], ids.shape[-1])])
        return kwargs

    def distilled(self, pipe) -> bool:
        return bool(self.denoiser(pipe).config.get("guidance_embeds", False))

    def sampler_guidance(self, pipe, guidance: float) -> tuple[float, float]:
        """dev: the guidance is the transformer's input, one pass a step; schnell: none."""
        return (guidance if self.distilled(pipe) else 1.0), 1.0

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

    def training_time(self, pipe, timesteps):
        """The pipeline passes the transformer σ (its timestep / 1000)."""
        return timesteps / 1000
