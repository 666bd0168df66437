"""Z-Image: a single-stream DiT on Qwen3's hidden states, flow matching. Its pipeline's
guidance g computes pos + g (pos - neg), so g = 0 is no guidance and g equals a usual CFG scale
of g + 1: huajia's guidance keeps the usual meaning (Z-Image-Turbo paints at guidance 1).

A1111 weights and BREAK act on Qwen3's hidden states the ComfyUI way (engine/template_weights):
each chunk is encoded in the pipeline's chat template (512 tokens in all, the second-to-last
layer), each of the user's tokens moved from the empty prompt's state at its position by its
weight; the chunks' unmasked states are concatenated, one (tokens, D) tensor per prompt as the
pipeline takes them."""

from __future__ import annotations

from huajia.engine.families.base import CallPlan, Family
from huajia.engine.t5_weights import own_encoding
from huajia.engine.template_weights import TextChunk, encode_chunks, text_chunks
from huajia.errors import HuajiaError

MARK = "\uE000"  # a private-use character: where the prompt goes in the chat template


class ZImage(Family):
    name = "zimage"
    label = "Z-Image"
    pipelines = ("ZImagePipeline",)
    img2img, inpaint = "ZImageImg2ImgPipeline", "ZImageInpaintPipeline"
    sigma_spacing = True
    denoiser_name = "transformer"
    flow = True
    patch = 2
    weighted = True
    window = 512  # the pipeline's max_sequence_length, the chat template included

    def largest_side(self, pipe) -> int:
        # the transformer's rotary table holds axes_lens positions along each image axis
        rows, columns = self.denoiser(pipe).config.axes_lens[1:]
        return min(rows, columns) * self.patch * self.vae_scale(pipe)

    def prompt_kwargs(self, pipe, prompt: str, negative: str, dtype=None) -> dict:
        if not own_encoding(pipe.tokenizer, self.width(pipe), prompt, negative):
            return super().prompt_kwargs(pipe, prompt, negative, dtype)
        dtype = dtype or pipe.dtype
        embeds = {key: self.encode(pipe, text) for key, text in (("", prompt),
                                                                  ("negative_", negative))}
        for key, states in embeds.items():
            if len(states) > self.longest(pipe):
                raise HuajiaError(
                    f"this {self.label} model takes at most {self.longest(pipe)} tokens of "
                    f"prompt; this {'negative ' if key else ''}prompt needs {len(states)} (cut "
                    f"at each BREAK and every {self.width(pipe)} tokens, each chunk in the chat "
                    "template): shorten it or use fewer BREAKs")
        return {"prompt_embeds": [embeds[""].to(dtype)],
                "negative_prompt": None,  # the embeddings stand for it
                "negative_prompt_embeds": [embeds["negative_"].to(dtype)]}

    def longest(self, pipe) -> int:
        """The most text tokens the transformer places: its rotary table's first axis holds
        them (padded to 32), then the picture."""
        return (self.denoiser(pipe).config.axes_lens[0] - 2) // 32 * 32

    def text_window(self, pipe) -> int:
        """Tokens per encoded chunk, the chat template included: the pipeline's 512, or fewer
        where the transformer places fewer."""
        return min(self.window, self.longest(pipe))

    def prompt_window(self, pipe) -> int:
        return self.text_window(pipe)

    @staticmethod
    def template(pipe) -> tuple[str, str]:
        """The text before and after the prompt in the pipeline's chat template."""
        text = pipe.tokenizer.apply_chat_template(
            [{"role": "user", "content": MARK}], tokenize=False, add_generation_prompt=True,
            enable_thinking=True)
        before, after = text.split(MARK)
        return before, after

    def width(self, pipe) -> int:
        """The prompt's tokens that fit in the window beside the chat template."""
        return self.text_window(pipe) - sum(len(pipe.tokenizer(part).input_ids)
                                 for part in self.template(pipe))

    def encode(self, pipe, prompt: str):
        """``prompt`` through Qwen3 with its weights, as the pipeline's ``_encode_prompt``
        encodes it: a (tokens, D) tensor of its unmasked positions."""
        tokenizer = pipe.tokenizer
        device = pipe.text_encoder.device
        before, after = self.template(pipe)

        def encode(text: str, _length=None):  # padded to the window already
            inputs = tokenizer(text, padding="max_length", max_length=self.text_window(pipe),
                               truncation=True, return_offsets_mapping=True,
                               return_tensors="pt")
            mask = inputs.attention_mask.to(device).bool()
            output = pipe.text_encoder(input_ids=inputs.input_ids.to(device),
                                       attention_mask=mask, output_hidden_states=True)
            return output.hidden_states[-2], mask, inputs.offset_mapping[0].tolist()

        chunks = text_chunks(tokenizer, prompt, self.width(pipe)) if prompt.strip() else [
            TextChunk(prompt, (1.0,) * len(prompt))]  # the empty prompt as the pipeline has it
        qwen = encode_chunks(chunks, before, encode, suffix=after)
        return qwen.embeds[0][qwen.mask[0].bool()]

    def call_plan(self, pipe, request, has_negative: bool) -> CallPlan:
        self.check_request(request)
        return CallPlan({"guidance_scale": max(0.0, request.guidance - 1)})

    def training_time(self, pipe, timesteps):
        """The pipeline passes the transformer 1 − σ (t = 0 is the noise)."""
        return (1000 - timesteps) / 1000

    def training_latents(self, pipe, latents):
        """One (C, 1, h, w) tensor per picture, as the pipeline passes them."""
        return list(latents.unsqueeze(2).unbind(dim=0))

    def training_prediction(self, pipe, output, latents):
        """The pipeline negates the transformer's output (it predicts x0 − ε)."""
        import torch

        return -torch.stack(list(output), dim=0).squeeze(2)
