"""Lumina Image 2.0: a unified next-DiT on Gemma 2 with a system prompt, flow matching with
CFG normalisation (the pipeline's default, kept).

A1111 weights and BREAK act on the Gemma 2 embeddings the ComfyUI way (engine/template_weights):
the positive prompt is encoded as the pipeline encodes it (after its system prompt and
" <Prompt Start> ", 256 tokens in all, the second-to-last layer), the negative without them;
chunks that fit the window beside the system prompt are encoded apart and concatenated."""

from __future__ import annotations

from huajia.engine.families.base import Family
from huajia.engine.t5_weights import T5Encoding, as_prompt, even, masked_kwargs, own_encoding
from huajia.engine.template_weights import encode_chunks, text_chunks


class Lumina2(Family):
    name = "lumina2"
    label = "Lumina 2"
    pipelines = ("Lumina2Pipeline",)
    sigma_spacing = True  # no image-to-image pipeline: huajia's own partial denoise
    denoiser_name = "transformer"
    flow = True
    patch = 2
    weighted = True
    window = 256  # the pipeline's max_sequence_length, the system prompt included

    def training_time(self, pipe, timesteps):
        """The pipeline passes the transformer 1 − σ (t = 0 is the noise)."""
        return 1 - timesteps / pipe.scheduler.config.num_train_timesteps

    def training_prediction(self, pipe, output, latents):
        """The pipeline negates the transformer's output (it predicts x0 − ε)."""
        return -super().training_prediction(pipe, output, latents)

    def guided(self, pipe, uncond, cond, scale):
        """CFG normalisation (the pipeline's default): the guided prediction rescaled to the
        conditional one's norm along its last axis."""
        import torch

        mixed = uncond + scale * (cond - uncond)
        return mixed * (torch.norm(cond, dim=-1, keepdim=True) / torch.norm(mixed, dim=-1, keepdim=True))

    def unconditional_kwargs(self, pipe, negative: str) -> dict:
        """A negative prompt is encoded without the system prompt a prompt gets."""
        return as_prompt(self.encode(pipe, negative, negative=True), pipe.dtype)

    def prompt_kwargs(self, pipe, prompt: str, negative: str, dtype=None) -> dict:
        if not own_encoding(pipe.tokenizer, self.width(pipe), prompt, negative):
            return super().prompt_kwargs(pipe, prompt, negative, dtype)
        dtype = dtype or pipe.dtype
        encoded = even(self.encode(pipe, prompt), self.encode(pipe, negative, negative=True))
        return masked_kwargs(*encoded, dtype)

    @staticmethod
    def prefix(pipe) -> str:
        return pipe.system_prompt + " <Prompt Start> "

    def width(self, pipe) -> int:
        """The prompt's tokens that fit beside the system prompt (and BOS)."""
        return self.window - len(pipe.tokenizer(self.prefix(pipe)).input_ids)

    def encode(self, pipe, prompt: str, *, negative: bool = False) -> T5Encoding:
        """``prompt`` through Gemma 2 with its weights, as the pipeline's ``encode_prompt``
        encodes a positive (after the system prompt) or a negative prompt."""
        tokenizer = pipe.tokenizer
        prefix, width = ("", self.window - 1) if negative else (self.prefix(pipe),
                                                                self.width(pipe))
        device = pipe.text_encoder.device

        def encode(text: str, _length=None):  # padded to the window already
            inputs = tokenizer(text, padding="max_length", max_length=self.window,
                               truncation=True, return_offsets_mapping=True,
                               return_tensors="pt")
            mask = inputs.attention_mask.to(device)
            output = pipe.text_encoder(inputs.input_ids.to(device), attention_mask=mask,
                                       output_hidden_states=True)
            return output.hidden_states[-2], mask, inputs.offset_mapping[0].tolist()

        return encode_chunks(text_chunks(tokenizer, prompt, width), prefix, encode)
