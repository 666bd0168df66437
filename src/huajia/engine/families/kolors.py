"""Kolors: an SDXL-style UNet on ChatGLM3 (256 tokens, padded on the left) with a pooled vector
and size conditioning. Its pipeline has no CFG rescale. A1111 weights and BREAK act on the
ChatGLM embeddings the ComfyUI way (each token moved from the empty prompt's embedding at its
position by its weight); chunks of 254 tokens are encoded apart and concatenated."""

from __future__ import annotations

import torch

from huajia.engine.embeddings import token_chunks
from huajia.engine.families.base import Family
from huajia.engine.t5_weights import own_encoding


class Kolors(Family):
    name = "kolors"
    label = "Kolors"
    pipelines = ("KolorsPipeline",)
    img2img = "KolorsImg2ImgPipeline"  # no inpainting pipeline: huajia's own partial denoise
    lora_text_encoders = ("text_encoder",)  # ChatGLM3, as diffusers' loader takes it
    lora_formats = ("diffsynth",)  # DiffSynth-Studio's Kolors trainer (the seed's workflow)
    weighted = True
    window = 256  # the pipeline's max_sequence_length: [gMASK] sop and 254 tokens
    regions = "batch"  # thinking's regional prompts: batched denoiser calls

    def prompt_kwargs(self, pipe, prompt: str, negative: str, dtype=None) -> dict:
        if not own_encoding(pipe.tokenizer, self.window - 2, prompt, negative):
            return super().prompt_kwargs(pipe, prompt, negative, dtype)
        dtype = dtype or pipe.dtype
        (embeds, pooled), (negative_embeds, negative_pooled) = (
            self._weighted(pipe, text) for text in (prompt, negative))
        length = max(embeds.shape[1], negative_embeds.shape[1])
        embeds, negative_embeds = (torch.cat([e, e[:, -1:].expand(-1, length - e.shape[1], -1)],
                                             1) for e in (embeds, negative_embeds))
        return {"prompt_embeds": embeds.to(dtype), "pooled_prompt_embeds": pooled.to(dtype),
                "negative_prompt_embeds": negative_embeds.to(dtype),
                "negative_pooled_prompt_embeds": negative_pooled.to(dtype)}

    def caption_embeds(self, pipe, caption: str) -> tuple[torch.Tensor, torch.Tensor]:
        embeds, pooled = self._weighted(pipe, caption)
        return embeds[:, :self.window], pooled

    @torch.no_grad()
    def _weighted(self, pipe, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(1, chunks * 256, D) weighted context and the first chunk's pooled vector."""
        empty, _ = self._encode(pipe, [])
        parts, pooled = [], None
        for ids, weights in token_chunks(pipe.tokenizer, prompt, self.window - 2):
            hidden, chunk_pooled = self._encode(pipe, ids)
            weight = torch.ones(self.window, dtype=hidden.dtype, device=hidden.device)
            if weights:  # the tokens sit at the end (left padding)
                weight[-len(weights):] = torch.tensor(weights, dtype=hidden.dtype)
            weight = weight[None, :, None]
            parts.append(torch.where(weight != 1, empty + (hidden - empty) * weight, hidden))
            pooled = chunk_pooled if pooled is None else pooled
        return torch.cat(parts, dim=1), pooled

    def _encode(self, pipe, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        tokenizer = pipe.tokenizer
        inputs = tokenizer.pad({"input_ids": [tokenizer.build_inputs_with_special_tokens(ids)]},
                               padding="max_length", max_length=self.window,
                               return_tensors="pt").to(pipe.text_encoder.device)
        output = pipe.text_encoder(input_ids=inputs["input_ids"],
                                   attention_mask=inputs["attention_mask"],
                                   position_ids=inputs["position_ids"], output_hidden_states=True)
        # as the pipeline: the context from the second-to-last layer, the pooled vector the last
        # position of the last
        return output.hidden_states[-2].permute(1, 0, 2), output.hidden_states[-1][-1]
