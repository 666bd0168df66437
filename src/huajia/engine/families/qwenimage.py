"""Qwen-Image: an MMDiT on Qwen2.5-VL's hidden states, a Wan-style 3-D VAE (latents mean/std
per channel), packed latents. Its pipeline runs classifier-free guidance as
``true_cfg_scale`` and only when a negative prompt is given: huajia's guidance is that scale,
and an empty negative prompt is sent as " " (as Qwen's own examples do) so guidance works.

A1111 weights and BREAK act on Qwen2.5-VL's hidden states the ComfyUI way
(engine/template_weights): each chunk is encoded in the pipeline's ChatML template, its fixed
prefix dropped as the pipeline drops it, each of the user's tokens moved from the empty
prompt's state at its position (the empty template padded to the same length) by its weight;
chunks of 512 tokens (the pipeline's own cut) are concatenated with their masks, up to the
1024 its transformer takes."""

from __future__ import annotations

import torch

from huajia.engine.families.base import CallPlan, Family, join_masks
from huajia.engine.t5_weights import T5Encoding, own_encoding
from huajia.engine.template_weights import TextChunk, encode_chunks, text_chunks
from huajia.errors import HuajiaError


class QwenImage(Family):
    name = "qwenimage"
    label = "Qwen-Image"
    pipelines = ("QwenImagePipeline",)
    img2img, inpaint = "QwenImageImg2ImgPipeline", "QwenImageInpaintPipeline"
    sigma_spacing = True
    lora_targets = ("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj",
                    "to_add_out")  # the image and the text stream's attention
    denoiser_name = "transformer"
    flow = True
    packed = True
    native = 1328  # Qwen-Image's 1:1 training size
    weighted = True
    window = 512  # the pipeline's max_sequence_length (its template's end included)
    longest = 1024  # the most text tokens the pipeline takes

    def prompt_kwargs(self, pipe, prompt: str, negative: str, dtype=None) -> dict:
        negative = negative if negative.strip() else " "
        if not own_encoding(pipe.tokenizer, self.width(pipe), prompt, negative):
            kwargs = super().prompt_kwargs(pipe, prompt, negative, dtype)
            kwargs["negative_prompt"] = kwargs["negative_prompt"] or " "
            return kwargs
        dtype = dtype or pipe.dtype
        kwargs = {"max_sequence_length": self.longest}  # each is cut there
        for key, text in (("", prompt), ("negative_", negative)):
            qwen = self.encode(pipe, text)
            if qwen.embeds.shape[1] > self.longest:
                raise HuajiaError(
                    f"{self.label} takes at most {self.longest} tokens of prompt; this "
                    f"{'negative ' if key else ''}prompt needs {qwen.embeds.shape[1]} (cut at "
                    f"each BREAK and every {self.width(pipe)} tokens, each chunk ending in the "
                    "chat template): shorten it or use fewer BREAKs")
            kwargs[f"{key}prompt_embeds"] = qwen.embeds.to(dtype)
            kwargs[f"{key}prompt_embeds_mask"] = qwen.mask
        return kwargs

    @staticmethod
    def template(pipe) -> tuple[str, str]:
        """The text before and after the prompt in the pipeline's ChatML template."""
        before, after = pipe.prompt_template_encode.split("{}")
        return before, after

    def width(self, pipe) -> int:
        """The prompt's tokens per chunk: the window less the template's end."""
        return self.window - len(pipe.tokenizer(self.template(pipe)[1]).input_ids)

    def encode(self, pipe, prompt: str) -> T5Encoding:
        """``prompt`` through Qwen2.5-VL with its weights, as the pipeline's
        ``_get_qwen_prompt_embeds`` encodes it (the last layer, the template's prefix
        dropped)."""
        tokenizer = pipe.tokenizer
        drop = pipe.prompt_template_encode_start_idx
        device = pipe.text_encoder.device
        before, after = self.template(pipe)

        def encode(text: str, length: int | None):
            padding = {"padding": "max_length", "max_length": length} if length else {
                "padding": True, "max_length": pipe.tokenizer_max_length + drop}
            inputs = tokenizer(text, truncation=True, return_offsets_mapping=True,
                               padding_side="right", return_tensors="pt", **padding)
            mask = inputs.attention_mask.to(device)
            output = pipe.text_encoder(input_ids=inputs.input_ids.to(device),
                                       attention_mask=mask, output_hidden_states=True)
            return output.hidden_states[-1], mask, inputs.offset_mapping[0].tolist()

        chunks = text_chunks(tokenizer, prompt, self.width(pipe)) if prompt.strip() else [
            TextChunk(prompt, (1.0,) * len(prompt))]  # " ", the empty negative, as it is
        return encode_chunks(chunks, before, encode, slice(drop, None), after)

    regions = "joint"  # thinking's regional prompts: a mask over [text, image] attention

    @torch.no_grad()
    def caption_embeds(self, pipe, caption: str):
        """A caption's Qwen2.5-VL states as the pipeline encodes a prompt, padding cut off."""
        qwen = self.encode(pipe, caption)
        return qwen.embeds[:, qwen.mask[0].bool()], None

    def joint_text(self, kwargs: dict, extra) -> dict:
        """The transformer's keywords with ``extra`` text tokens after the prompt's, let
        through by its text mask (their rotary positions follow the prompt's)."""
        kwargs = super().joint_text(kwargs, extra)
        mask = kwargs.get("encoder_hidden_states_mask")
        if mask is not None:
            kwargs["encoder_hidden_states_mask"] = torch.cat(
                [mask, mask.new_ones(mask.shape[0], extra.shape[1])], 1)
        return kwargs

    def joint_mask(self, kwargs: dict, mask) -> dict:
        """Qwen-Image's processors build their own mask from the text mask and take no other:
        the regions' goes in ``attention_kwargs`` as ``region_mask`` (``mask_processors``)."""
        kwargs = dict(kwargs)
        kwargs["attention_kwargs"] = {**(kwargs.get("attention_kwargs") or {}),
                                      "region_mask": mask}
        return kwargs

    def mask_processors(self, denoiser) -> dict:
        return {name: RegionMaskedQwen() for name in denoiser.attn_processors}

    def call_plan(self, pipe, request, has_negative: bool) -> CallPlan:
        self.check_request(request)
        if request.steps < 2 and pipe.scheduler.config.get("shift_terminal"):
            raise HuajiaError(f"{self.label} needs at least 2 steps (its scheduler stretches the "
                              "schedule to a terminal shift, which divides by zero at 1 step); "
                              "use steps 2 or more")
        return CallPlan({"true_cfg_scale": request.guidance, "guidance_scale": None})

    # its VAE works on videos: a picture is one frame (B, C, 1, H, W)
    def vae_encode(self, vae, pixels):
        return vae.encode(pixels.unsqueeze(2)).latent_dist.mode()[:, :, 0]

    def vae_decode(self, vae, raw):
        return vae.decode(raw.unsqueeze(2)).sample[:, :, 0]

    def guided(self, pipe, uncond, cond, scale):
        """True CFG, then rescaled to the conditional prediction's norm per packed token."""
        import torch

        packed_cond, packed = self.pack(pipe, cond), self.pack(pipe, uncond + scale * (cond - uncond))
        norms = torch.norm(packed_cond, dim=-1, keepdim=True) / torch.norm(packed, dim=-1, keepdim=True)
        packed = packed * norms
        scale_px = self.vae_scale(pipe)
        return self.unpack(pipe, packed, (cond.shape[-1] * scale_px, cond.shape[-2] * scale_px))

    def training_time(self, pipe, timesteps):
        """The pipeline passes the transformer σ (its timestep / 1000)."""
        return timesteps / 1000


class RegionMaskedQwen:
    """diffusers' ``QwenDoubleStreamAttnProcessor2_0`` (joint [text, image] attention, the text
    mask over the keys) with thinking's region mask, given as ``region_mask`` (B or 1, 1, S, S),
    joined to it; without one, the same attention."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None,
                 encoder_hidden_states_mask=None, attention_mask=None, image_rotary_emb=None,
                 region_mask=None):
        from diffusers.models.attention_dispatch import dispatch_attention_fn
        from diffusers.models.transformers.transformer_qwenimage import apply_rotary_emb_qwen

        mask = None
        if encoder_hidden_states_mask is not None:
            image = hidden_states.new_ones(hidden_states.shape[:2], dtype=torch.bool)
            mask = torch.cat([encoder_hidden_states_mask.bool(), image], 1)[:, None, None, :]
        if region_mask is not None:
            mask = join_masks(mask, region_mask)
        head_dim = attn.inner_dim // attn.heads

        def project(states, to_q, to_k, to_v, norm_q, norm_k, freqs):
            query, key, value = (p(states).unflatten(-1, (-1, head_dim)) for p in (to_q, to_k, to_v))
            query = norm_q(query) if norm_q is not None else query
            key = norm_k(key) if norm_k is not None else key
            if freqs is not None:
                query = apply_rotary_emb_qwen(query, freqs, use_real=False)
                key = apply_rotary_emb_qwen(key, freqs, use_real=False)
            return query, key, value

        image_freqs, text_freqs = image_rotary_emb if image_rotary_emb is not None else (None, None)
        image_qkv = project(hidden_states, attn.to_q, attn.to_k, attn.to_v, attn.norm_q,
                            attn.norm_k, image_freqs)
        text_qkv = project(encoder_hidden_states, attn.add_q_proj, attn.add_k_proj,
                           attn.add_v_proj, attn.norm_added_q, attn.norm_added_k, text_freqs)
        joint = [torch.cat([t, i], 1) for t, i in zip(text_qkv, image_qkv, strict=True)]
        out = dispatch_attention_fn(*joint, attn_mask=mask, dropout_p=0.0, is_causal=False)
        out = out.flatten(2, 3).to(joint[0].dtype)
        text_tokens = encoder_hidden_states.shape[1]
        image_out = attn.to_out[0](out[:, text_tokens:].contiguous())
        if len(attn.to_out) > 1:
            image_out = attn.to_out[1](image_out)
        return image_out, attn.to_add_out(out[:, :text_tokens].contiguous())
