"""Sana: a linear-attention DiT on Gemma 2, a deep-compression autoencoder (32x), flow
matching through DPM-Solver on flow sigmas. Sizes are what the request asks (the pipeline's
resolution binning is off, so a 1024x768 request paints 1024x768). No image-to-image or
inpainting pipeline: edits, variations and the hires fix take huajia's own partial denoise.

A1111 weights and BREAK act on the Gemma 2 embeddings the ComfyUI way (engine/template_weights):
the positive prompt is encoded as the pipeline encodes it (lowercased, after its complex human
instruction, BOS and the last 299 positions kept), the negative without the instruction; chunks
of 298 tokens are encoded apart and concatenated."""

from __future__ import annotations

import inspect

from huajia.engine.families.base import Family
from huajia.engine.t5_weights import T5Encoding, as_prompt, even, masked_kwargs, own_encoding, trimmed
from huajia.engine.template_weights import encode_chunks, text_chunks


class Sana(Family):
    name = "sana"
    label = "Sana"
    pipelines = ("SanaPipeline",)
    denoiser_name = "transformer"
    flow = True
    defaults = {"use_resolution_binning": False}
    weighted = True
    window = 300  # the pipeline's max_sequence_length: BOS, the instruction's last token, 298

    def vae_encode(self, vae, pixels):
        return vae.encode(pixels).latent  # the DC-AE encodes to latents, not a distribution

    def training_time(self, pipe, timesteps):
        """The pipeline scales the timestep by the transformer's ``timestep_scale``."""
        return timesteps * self.denoiser(pipe).config.get("timestep_scale", 1.0)

    def unconditional_kwargs(self, pipe, negative: str) -> dict:
        """A negative prompt is encoded without the complex human instruction a prompt gets."""
        return as_prompt(self.encode(pipe, negative, negative=True), pipe.dtype)

    def prompt_kwargs(self, pipe, prompt: str, negative: str, dtype=None) -> dict:
        if not own_encoding(pipe.tokenizer, self.window - 2, prompt, negative):
            return super().prompt_kwargs(pipe, prompt, negative, dtype)
        dtype = dtype or pipe.dtype
        encoded = even(self.encode(pipe, prompt), self.encode(pipe, negative, negative=True))
        return masked_kwargs(*encoded, dtype)

    regions = "batch"  # thinking's regional prompts: batched denoiser calls

    def caption_embeds(self, pipe, caption: str):
        """A caption's Gemma 2 tokens as the pipeline encodes a prompt, padding cut off (the
        regional hooks pad and mask it)."""
        return trimmed(self.encode(pipe, caption), self.window), None

    def encode(self, pipe, prompt: str, *, negative: bool = False) -> T5Encoding:
        """``prompt`` through Gemma 2 with its weights, as the pipeline's ``encode_prompt``
        encodes a positive (with the complex human instruction) or a negative prompt."""
        tokenizer = pipe.tokenizer
        tokenizer.padding_side = "right"
        instruction = self.instruction(pipe)
        if negative or not instruction:
            prefix, length, select, width = "", self.window, None, self.window - 1
        else:
            prefix = "\n".join(instruction)
            length = len(tokenizer.encode(prefix)) + self.window - 2
            select = [0, *range(-self.window + 1, 0)]
            width = self.window - 2
        device = pipe.text_encoder.device

        def encode(text: str, _length=None):  # padded to the window already
            inputs = tokenizer(text, padding="max_length", max_length=length, truncation=True,
                               add_special_tokens=True, return_offsets_mapping=True,
                               return_tensors="pt")
            mask = inputs.attention_mask.to(device)
            hidden = pipe.text_encoder(inputs.input_ids.to(device), attention_mask=mask)[0]
            return hidden, mask, inputs.offset_mapping[0].tolist()

        chunks = text_chunks(tokenizer, prompt, width, str.lower)
        return encode_chunks(chunks, prefix, encode, select)

    @staticmethod
    def instruction(pipe) -> list[str] | None:
        """The complex human instruction the pipeline prepends by default."""
        return inspect.signature(type(pipe).__call__).parameters[
            "complex_human_instruction"].default
