"""What a model family changes, in one place (after ComfyUI's ``supported_models``): mostly
data, with a few methods for what is not. The engine and its session ask the family; they do
not ask the pipeline what it has.

A ``Family`` answers: is this pipeline one of mine; what is the denoiser; what size does it
paint natively and in what multiples; does it denoise by noise/v prediction or by flow
matching; how does a prompt reach it (A1111 weights on CLIP embeddings, or the strings its own
``encode_prompt`` takes); what does a user's guidance mean for it (classifier-free guidance,
Flux's distilled guidance, Qwen-Image's true CFG, Z-Image's offset scale) and which options of
a request it cannot honour (refused in one line, never silently dropped); and, for edits,
variations and the hires fix, which diffusers image-to-image/inpainting pipeline it has (or
none: huajia's own partial denoise), how a picture becomes the denoiser's latents and back
(VAE, scale/shift/mean-std, 2x2 packing) and how latents are noised to a step's level; and
how a LoRA file reaches its modules (diffusers' loader or peft injection, which modules, text
encoders or not).
"""

from __future__ import annotations

import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from huajia.engine import lora as loras
from huajia.engine.prompt_weights import plain_text
from huajia.errors import HuajiaError

if TYPE_CHECKING:
    import torch  # imported where used: a front end reads a family's facts without torch


def check_multiple(label: str, step: int, size: tuple[int, int], largest: int | None = None,
                   oblong_area: int | None = None) -> None:
    """Refuse, in one line, a size a model of ``label`` cannot paint (not in multiples of
    ``step``, a side beyond ``largest``, or a picture that is not square larger than
    ``oblong_area`` pixels); the engine asks its family, a front end its ``ModelFacts``."""
    if size[0] % step or size[1] % step:
        fit = "x".join(str(max(step, round(s / step) * step)) for s in size)
        raise HuajiaError(f"{label} paints sizes in multiples of {step}; "
                          f"{size[0]}x{size[1]} is not one (use e.g. {fit})")
    if largest and max(size) > largest:
        raise HuajiaError(f"this {label} model paints at most {largest} pixels a side (its "
                          f"position table ends there); {size[0]}x{size[1]} is larger: ask for "
                          f"less, or leave the upscaler on to paint at most {largest} and upscale")
    if oblong_area and size[0] != size[1] and size[0] * size[1] > oblong_area:
        side = int(oblong_area ** 0.5) // step * step
        raise HuajiaError(f"this {label} model paints a picture that is not square in at most "
                          f"{side}x{side} of area; {size[0]}x{size[1]} is larger: ask for a "
                          "smaller or a square size")


@dataclass(frozen=True)
class CallPlan:
    """The family-specific part of one pipeline call, and what the infotext records of it."""

    kwargs: dict  # guidance and the pipeline's own switches
    fields: dict = field(default_factory=dict)  # infotext keys (e.g. Flux's "Distilled CFG")
    notes: tuple[str, ...] = ()  # what the user asked that had no effect, and why


class Family:
    """The default is a Stable Diffusion-style UNet pipeline; families override what differs."""

    name = "generic"
    label = "diffusers pipeline"
    pipelines: tuple[str, ...] = ()  # pipeline class names that are this family
    denoiser_name = "unet"  # the pipeline component that denoises
    flow = False  # denoises by flow matching (velocity), not noise/v prediction
    packed = False  # latents packed in 2x2 patches (sizes in multiples of 2 latent pixels)
    patch = 1  # the denoiser's patch size in latent pixels
    native = 1024  # the native side when the denoiser's config does not say
    weighted = False  # A1111 weights and BREAK are applied (as embeddings)
    window: int | None = None  # tokens per chunk of a weighted prompt (None: the tokenizer's)
    guidance_rescale = False  # the pipeline takes guidance_rescale
    cfg_cutoff = False  # guidance can stop part-way (an [uncond, cond] batch in the callback)
    step_callback = True  # the pipeline takes callback_on_step_end
    cpu_split = False  # engine/parallel may trace the denoiser and split its batch
    negative = "negative_prompt"  # the keyword of a negative prompt (None: it has none)
    defaults: dict[str, Any] = {}  # switches every call passes (e.g. no resolution binning)
    img2img: str | None = None  # diffusers' image-to-image pipeline (None: huajia's own)
    inpaint: str | None = None  # diffusers' inpainting pipeline (None: huajia's own)
    # the denoiser input widths that inpainting pipeline accepts (empty: any); another width
    # (a small or custom model) is inpainted by huajia's own partial denoise
    inpaint_channels: tuple[int, ...] = ()
    sigma_spacing = False  # the pipeline spaces flow sigmas linspace(1, 1/n, n) (Flux's way)
    # LoRAs: "pipeline" loads them with diffusers' load_lora_weights (its per-family conversions
    # of kohya and other trainers' files), "peft" injects them into the denoiser (a pipeline
    # without a LoRA loader), None refuses them
    lora_loader: str | None = "pipeline"
    lora_targets: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0")  # what a LoRA adapts
    lora_text_encoders: tuple[str, ...] = ()  # components a LoRA's text-encoder part goes into
    lora_formats: tuple[str, ...] = ()  # other tools' names huajia maps ("diffsynth")
    # how thinking's regional prompts reach the denoiser: "batch" (each region's sub-caption in
    # the same call as the CFG pair, blended under masks: thinking/regional), "joint" (a mask over an MMDiT's
    # joint attention, thinking/attention), None (not supported: thinking steers the whole
    # picture and says so)
    regions: str | None = None
    text_first = True  # joint attention orders its tokens [text, image] (SD3: [image, text])

    # -- recognising ------------------------------------------------------------------------
    def matches(self, pipe) -> bool:
        return type(pipe).__name__ in self.pipelines

    def denoiser(self, pipe):
        return getattr(pipe, self.denoiser_name)

    # -- sizes ------------------------------------------------------------------------------
    def native_size(self, pipe) -> int:
        sample = getattr(self.denoiser(pipe).config, "sample_size", None)
        if isinstance(sample, (list, tuple)):
            sample = sample[0]
        if sample:
            return int(sample) * self.vae_scale(pipe)
        # the family's side in its real 8x VAE's latents: a VAE of another scale (a small
        # test pipeline's) keeps the latent size, as the pipelines' default_sample_size does
        multiple = self.size_multiple(pipe)
        side = max(multiple, self.native * self.vae_scale(pipe) // 8 // multiple * multiple)
        largest = self.largest_side(pipe)  # room for the usual 2x hires fix inside it
        return min(side, max(multiple, largest // 2 // multiple * multiple)) if largest else side

    def largest_side(self, pipe) -> int | None:
        """The largest side the denoiser can paint, in pixels (None: no limit it states)."""
        return None

    def largest_oblong_area(self, pipe) -> int | None:
        """The largest area, in pixels, of a picture that is not square (None: no limit)."""
        return None

    def vae_scale(self, pipe) -> int:
        return int(getattr(pipe, "vae_scale_factor", 8))

    def size_multiple(self, pipe) -> int:
        return self.vae_scale(pipe) * max(self.patch, 2 if self.packed else 1)

    def check_size(self, pipe, size: tuple[int, int]) -> None:
        check_multiple(self.label, self.size_multiple(pipe), size, self.largest_side(pipe),
                       self.largest_oblong_area(pipe))

    # -- what the model predicts ------------------------------------------------------------
    def prediction(self, pipe) -> str:
        """'flow', 'v_prediction' or 'epsilon'."""
        if self.flow:
            return "flow"
        return str(pipe.scheduler.config.get("prediction_type", "epsilon"))

    # -- prompts ----------------------------------------------------------------------------
    def prompt_kwargs(self, pipe, prompt: str, negative: str, dtype=None) -> dict:
        """The strings the pipeline's own ``encode_prompt`` takes (weights not applied)."""
        kwargs = {"prompt": plain_text(prompt)}
        if self.negative:
            kwargs[self.negative] = plain_text(negative)  # "" where none (some take no None)
        return kwargs

    def prompt_notes(self, prompt: str, negative: str) -> tuple[str, ...]:
        """What the prompt asked that this family does not honour yet."""
        if self.weighted or plain_text(prompt) == prompt.strip() and \
                plain_text(negative) == negative.strip():
            return ()
        return (f"prompt weights and BREAK are not applied on {self.label} yet; the words were "
                "painted at weight 1",)

    def prompt_window(self, pipe) -> int | None:
        """Tokens per chunk of a prompt: a longer prompt is encoded in more chunks, a longer
        text for the denoiser to attend to (what a request costs). None: the pipeline's own
        encoder takes any prompt at one fixed length."""
        if not self.weighted:
            return None
        return self.window or int(pipe.tokenizer.model_max_length) - 2

    window_tokenizer = "tokenizer"  # the tokenizer of the encoder ``window`` counts tokens of

    def counting_tokenizer(self, pipe):
        """The tokenizer whose tokens ``prompt_window`` counts (a prompt's real cost)."""
        return getattr(pipe, self.window_tokenizer, None)

    def caption_embeds(self, pipe, caption: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(1, L, D) embeddings of one caption (its first chunk) and its pooled vector (None
        where there is none), as the denoiser's cross-attention takes them: thinking's
        regional prompts on "batch" families."""
        from huajia.engine.embeddings import encode_weighted

        encoded, _ = encode_weighted(pipe, caption, "")
        return encoded.prompt_embeds[:, :pipe.tokenizer.model_max_length], encoded.pooled

    def mask_processors(self, denoiser) -> dict | None:
        """Attention processors that apply an attention mask given in the denoiser's
        ``joint_attention_kwargs`` (thinking's joint-attention regions), set for a run and
        restored after; None where the pipeline's own processors already apply it."""
        return None

    def joint_mask(self, kwargs: dict, mask: torch.Tensor) -> dict:
        """The denoiser's keywords with ``mask`` (B, 1, S, S) bool over the joint sequence
        (thinking's regions): where the family's attention processors read it."""
        kwargs = dict(kwargs)
        joint = dict(kwargs.get("joint_attention_kwargs") or {})
        joint["attention_mask"] = mask
        kwargs["joint_attention_kwargs"] = joint
        return kwargs

    def joint_text(self, kwargs: dict, extra: torch.Tensor) -> dict:
        """The denoiser's keywords with ``extra`` (B, L, D) text tokens after the prompt's
        (thinking's regions in joint attention; the mask is given apart)."""
        import torch

        kwargs = dict(kwargs)
        text = kwargs["encoder_hidden_states"]
        kwargs["encoder_hidden_states"] = torch.cat([text, extra.to(text.dtype)], 1)
        return kwargs

    # -- one call ---------------------------------------------------------------------------
    def call_plan(self, pipe, request, has_negative: bool) -> CallPlan:
        """Guidance as the user means it for this family, and the pipeline's switches."""
        self.check_request(request)
        kwargs = {"guidance_scale": request.guidance, **self.defaults}
        if self.guidance_rescale:
            kwargs["guidance_rescale"] = request.guidance_rescale
        return CallPlan(kwargs)

    def check_request(self, request) -> None:
        if request.guidance_rescale and not self.guidance_rescale:
            raise HuajiaError(f"guidance_rescale is not available on {self.label} (its pipeline "
                              "has no CFG rescale); use guidance_rescale 0")
        if request.cfg_cutoff < 1 and not self.cfg_cutoff:
            raise HuajiaError(f"cfg_cutoff is not available on {self.label}; use cfg_cutoff 1")

    def sized(self, pipe, size: tuple[int, int]):
        """A context in which the pipeline paints ``size`` (most do when asked)."""
        return nullcontext()

    # -- LoRAs ----------------------------------------------------------------------------------
    def lora_modules(self, pipe) -> list:
        """The models a LoRA of this family may adapt: the denoiser and its text encoders."""
        return [self.denoiser(pipe)] + [getattr(pipe, name) for name in self.lora_text_encoders
                                         if getattr(pipe, name, None) is not None]

    def injects_loras(self, pipe) -> bool:
        """Whether huajia injects LoRAs itself (peft) rather than through the pipeline's
        loader: where the family says so, and for a pipeline class without a loader."""
        return self.lora_loader == "peft" or not hasattr(type(pipe), "load_lora_weights")

    def place_lora(self, pipe, lora) -> loras.Fit:
        """``lora``'s layers on this family's denoiser: peft, kohya and diffusers names, and
        the other tools' names of ``lora_formats`` (DiffSynth's, with its trainer's alpha)."""
        diffsynth = lora.format == "diffsynth" and "diffsynth" in self.lora_formats
        rename = loras.diffsynth_unet_names(self.denoiser(pipe).config) if diffsynth else None
        return loras.place_layers(
            lora, self.denoiser(pipe), rename=rename,
            alpha=loras.DIFFSYNTH_ALPHA if diffsynth else None,
            prefixes=(f"{self.denoiser_name}.", "base_model.model.", "lora_unet_",
                      "lora_transformer_"))

    def load_lora(self, pipe, lora, name: str) -> None:
        """Load ``lora`` (a ``read_lora`` file) as adapter ``name``, off until ``set_loras``;
        a one-line ``HuajiaError`` where it fits no module of the model (nothing is left).

        Through the pipeline's loader, diffusers reads its own, kohya's and other trainers'
        files (its per-family conversions) and huajia maps bare peft keys and other tools'
        names onto the denoiser (``place_lora``); each is the other's fallback, so kohya
        names of diffusers' modules load where diffusers converts none for the family."""
        if self.lora_loader is None:
            raise HuajiaError(f"{self.label} takes no LoRA files; paint without '{lora.path}'")

        def injected():
            loras.inject(self.denoiser(pipe), self._placed(pipe, lora), name)

        def as_is():
            loras.load_with_pipeline(pipe, lora, name, None)

        def mapped():
            state = self._placed(pipe, lora).state_dict(self.denoiser_name)
            loras.load_with_pipeline(pipe, lora, name, state)

        if self.injects_loras(pipe):
            attempts = [injected]
        else:
            attempts = [mapped, as_is] if lora.format in ("peft", "diffsynth") else [as_is, mapped]
        error = None
        for attempt in attempts:
            try:
                attempt()
                if not loras.holds_adapter(self.lora_modules(pipe), name):
                    raise loras.fits_nothing(lora, self.label)
                return
            except HuajiaError as failure:
                self.drop_lora(pipe, name)
                if error is None or isinstance(error, loras.NoFit):
                    error = failure  # the first reason, unless it only said "fits nothing"
        raise error

    def _placed(self, pipe, lora) -> loras.Fit:
        fit = self.place_lora(pipe, lora)
        if not fit.layers:
            raise loras.fits_nothing(lora, self.label)
        if fit.unplaced:
            warnings.warn(f"LoRA '{lora.path}': {len(fit.unplaced)} of its layers fit no module "
                          f"of this {self.label} model and were left out (e.g. "
                          f"'{fit.unplaced[0]}')", stacklevel=3)
        return fit

    def drop_lora(self, pipe, name: str) -> None:
        loras.drop_adapter(self.lora_modules(pipe), name)

    def set_loras(self, pipe, names: list[str], scales: list[float]) -> None:
        """Make the loaded adapters ``names`` the active ones at ``scales``; none: all off."""
        if self.injects_loras(pipe):
            loras.activate(self.denoiser(pipe), names, scales)
        elif names:
            pipe.enable_lora()  # set_adapters does not undo an earlier disable_lora
            pipe.set_adapters(list(names), list(scales))
        else:
            pipe.disable_lora()

    # -- what a front end shows ---------------------------------------------------------------
    def describe(self, pipe) -> dict:
        from huajia.engine.schedulers import SAMPLERS, flow_samplers

        return {"family": self.name, "label": self.label, "pipeline": type(pipe).__name__,
                "native_size": self.native_size(pipe), "size_multiple": self.size_multiple(pipe),
                "largest_side": self.largest_side(pipe),
                "largest_oblong_area": self.largest_oblong_area(pipe),
                "prediction": self.prediction(pipe),
                "samplers": flow_samplers() if self.flow else list(SAMPLERS),
                "prompt_window": self.prompt_window(pipe),
                "features": {"prompt_weights": self.weighted,
                             "negative_prompt": self.negative is not None,
                             "guidance_rescale": self.guidance_rescale,
                             "cfg_cutoff": self.cfg_cutoff,
                             "loras": self.lora_loader is not None}}

    # -- pictures and latents (edits, variations, the hires fix) ------------------------------
    def img2img_pipeline(self, pipe) -> str | None:
        """The diffusers image-to-image pipeline built on ``pipe`` (``from_pipe``), by class
        name; None where diffusers has none (huajia's own partial denoise paints instead)."""
        return self.img2img

    def inpaint_pipeline(self, pipe) -> str | None:
        """The diffusers inpainting pipeline built on ``pipe``, by class name; None as above."""
        channels = self.denoiser(pipe).config.in_channels
        if self.inpaint_channels and channels not in self.inpaint_channels:
            return None
        return self.inpaint

    def to_latents(self, pipe, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) pixels in [-1, 1] → the denoiser's latents (B, C, H/s, W/s), unpacked
        and normalised as the pipeline's own latents are (the posterior's mode)."""
        import torch

        vae = pipe.vae
        with torch.no_grad():
            raw = self.vae_encode(vae, pixels.to(vae.device, vae.dtype))
        scale, shift, mean, std = self._latent_format(pipe, raw)
        if mean is not None:
            return (raw - mean) * scale / std
        return (raw - shift) * scale if shift else raw * scale

    def to_image(self, pipe, latents: torch.Tensor) -> torch.Tensor:
        """The denoiser's (unpacked) latents → (B, 3, H, W) pixels, about [-1, 1]."""
        import torch

        vae = pipe.vae
        latents = latents.to(vae.dtype)
        scale, shift, mean, std = self._latent_format(pipe, latents)
        if mean is not None:
            raw = latents * std / scale + mean
        else:
            raw = latents / scale + shift if shift else latents / scale
        with torch.no_grad():
            return self.vae_decode(vae, raw)

    def _latent_format(self, pipe, like: torch.Tensor) -> tuple:
        """(scale, shift, mean, std) of the VAE's latents (ComfyUI's ``latent_format``):
        normalised = (raw - shift) * scale, or (raw - mean) * scale / std per channel."""
        import torch

        config = pipe.vae.config
        scale = config.get("scaling_factor") or 1.0
        mean, std = config.get("latents_mean"), config.get("latents_std")
        if mean is None or std is None:
            return scale, config.get("shift_factor") or 0.0, None, None
        shape = (1, -1) + (1,) * (like.ndim - 2)
        return (scale, 0.0, torch.tensor(mean).view(shape).to(like.device, like.dtype),
                torch.tensor(std).view(shape).to(like.device, like.dtype))

    def vae_encode(self, vae, pixels: torch.Tensor) -> torch.Tensor:
        """The VAE's raw latents of (B, 3, H, W) pixels (a KL VAE: its posterior's mode)."""
        return vae.encode(pixels).latent_dist.mode()

    def vae_decode(self, vae, raw: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) pixels of the VAE's raw latents."""
        return vae.decode(raw).sample

    def pack(self, pipe, latents: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) latents → what the pipeline's ``latents=`` and step callbacks hold
        (Flux, Chroma, Qwen-Image: (B, h/2 · w/2, 4C) in 2x2 patches)."""
        if not self.packed:
            return latents
        b, c, h, w = latents.shape
        patches = latents.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
        return patches.reshape(b, (h // 2) * (w // 2), c * 4)

    def unpack(self, pipe, latents: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The pipeline's latents of a ``size`` (W, H) picture → (B, C, h, w)."""
        if not self.packed:
            return latents
        b, _, d = latents.shape
        h, w = size[1] // self.vae_scale(pipe), size[0] // self.vae_scale(pipe)
        patches = latents.reshape(b, h // 2, w // 2, d // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
        return patches.reshape(b, d // 4, h, w)

    def schedule_kwargs(self, pipe, size: tuple[int, int], steps: int) -> dict:
        """What the text-to-image pipeline gives its scheduler's ``set_timesteps`` besides the
        step count: flow pipelines' sigma spacing and, where the scheduler shifts by the
        picture's size, the shift ``mu`` (diffusers' ``calculate_shift``)."""
        if not self.flow:
            return {}
        config, kwargs = pipe.scheduler.config, {}
        if self.sigma_spacing:
            import numpy as np

            kwargs["sigmas"] = np.linspace(1.0, 1 / steps, steps)
        if config.get("use_dynamic_shifting"):
            side = self.vae_scale(pipe) * max(self.patch, 2 if self.packed else 1)
            tokens = (size[0] // side) * (size[1] // side)
            base, most = config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096)
            low, high = config.get("base_shift", 0.5), config.get("max_shift", 1.15)
            kwargs["mu"] = low + (tokens - base) * (high - low) / (most - base)
        return kwargs

    def x0_from_step(self, scheduler, before: torch.Tensor, after: torch.Tensor,
                     index: int) -> torch.Tensor | None:
        """What the model predicts the clean latents are, read off step ``index`` (latents
        ``before`` → ``after``, the pipeline's layout). Flow: the step moved the latents along
        the guided velocity, v = (x_after − x_before) / (σ_after − σ_before), and
        x0 = x_t − σ·v (exact for Euler, a preview's estimate for multistep solvers). None for
        noise/v prediction: their x0 needs the denoiser's output (thinking's regional hooks)."""
        sigmas = getattr(scheduler, "sigmas", None)
        if not self.flow or sigmas is None or index + 1 >= len(sigmas):
            return None
        high, low = (float(s) for s in sigmas[index:index + 2])
        if high == low:
            return None
        velocity = (after - before) / (low - high)
        return after - low * velocity

    def noise_to(self, scheduler, latents: torch.Tensor, noise: torch.Tensor,
                 step: int) -> torch.Tensor:
        """``latents`` noised to the level step ``step`` of the scheduler's schedule starts
        from (clean after the last step). Flow: x = (1 − σ)·x0 + σ·ε (``scale_noise``); else
        the scheduler's own ``add_noise``."""
        timesteps = scheduler.timesteps
        if step >= len(timesteps):
            return latents
        if self.flow:
            sigma = scheduler.sigmas[step].to(latents.dtype)
            return (1 - sigma) * latents + sigma * noise
        return scheduler.add_noise(latents, noise, timesteps[step:step + 1])

    # -- training (huajia train lora): the denoiser's call as the pipeline makes it ---------------
    def training_time(self, pipe, timesteps: torch.Tensor) -> torch.Tensor:
        """The denoiser's time input for scheduler ``timesteps`` (flow: σ · 1000), as the
        text-to-image pipeline passes it."""
        return timesteps

    def training_latents(self, pipe, latents: torch.Tensor):
        """(B, C, h, w) latents → the denoiser's latent input (packed where the family packs)."""
        return self.pack(pipe, latents)

    def training_prediction(self, pipe, output, latents: torch.Tensor) -> torch.Tensor:
        """The denoiser's output → its prediction as (B, C, h, w), in the convention the
        pipeline's scheduler steps with (flow: dx/dσ = ε − x0); a learned-variance half
        (PixArt-Σ) dropped."""
        if self.packed:
            scale = self.vae_scale(pipe)
            output = self.unpack(pipe, output, (latents.shape[-1] * scale,
                                                latents.shape[-2] * scale))
        channels = latents.shape[1]
        return output[:, :channels] if output.shape[1] == 2 * channels else output

    def training_shift(self, pipe, size: tuple[int, int]) -> float:
        """The shift s of a flow model's σ at ``size`` (σ' = s·σ / (1 + (s − 1)·σ)): its
        scheduler's fixed shift, or e^μ where the scheduler shifts by the picture's size."""
        import math

        mu = self.schedule_kwargs(pipe, size, 2).get("mu")
        if mu is not None:
            return math.exp(mu)
        config = pipe.scheduler.config  # DPM-Solver on flow sigmas (Sana) names it flow_shift
        return float(config.get("shift") or config.get("flow_shift") or 1.0)

    def latent_channels(self, pipe) -> int:
        """Channels of the denoiser's unpacked latents (the VAE's; Qwen-Image's names it z_dim)."""
        config = pipe.vae.config
        return int(config.get("latent_channels") or config.get("z_dim"))

    def unconditional_kwargs(self, pipe, negative: str) -> dict:
        """The pipeline's keywords that make ``negative`` its prompt, encoded as the pipeline
        encodes a negative prompt (CFG's other half in a sampler of huajia's own)."""
        return {"prompt": negative}

    def sampler_guidance(self, pipe, guidance: float) -> tuple[float, float]:
        """How a sampler of huajia's own (RL's SDE) guides this family at the user's
        ``guidance``: the guidance its denoiser calls are captured with (a distilled model's
        input) and the classifier-free scale it applies on top (1: no unconditional call)."""
        return 1.0, guidance

    def guided(self, pipe, uncond: torch.Tensor, cond: torch.Tensor, scale: float) -> torch.Tensor:
        """Classifier-free guidance of (B, C, h, w) predictions, as the pipeline combines them."""
        return uncond + scale * (cond - uncond)

    def clip_text_encoders(self, pipe) -> tuple[str, ...]:
        """The text encoders a LoRA trains on: the CLIPs (not T5, ChatGLM, Gemma, Qwen, Llama)."""
        return tuple(name for name in self.lora_text_encoders
                     if type(getattr(pipe, name, None)).__name__.startswith("CLIPText"))

    def training_targets(self, pipe) -> list[str]:
        """The denoiser's module names a trained LoRA adapts: the attention projections and,
        where the family has them, the text stream's (the context projections)."""
        names = {name.rsplit(".", 1)[-1] if not name.endswith("to_out.0") else "to_out.0"
                 for name, _ in self.denoiser(pipe).named_modules()}
        wanted = (*self.lora_targets, "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out")
        return [target for target in dict.fromkeys(wanted) if target in names]


def join_masks(mask: torch.Tensor | None, region: torch.Tensor) -> torch.Tensor:
    """An attention mask the pipeline gives (bool: where a query may attend; float: added to
    the scores) narrowed to where the region mask (bool) lets a query attend too."""
    import torch

    region = region.to(mask.device if mask is not None else region.device)
    if mask is None:
        return region
    if mask.dtype == torch.bool:
        return mask & region
    return mask.masked_fill(~region, float("-inf"))
