"""Every model family through the Engine: recognised, painted with a prompt, a negative prompt,
A1111 weights and BREAK, seeds, n, styles and samplers (flow-aware where needed), guidance as the
family means it, and one-line refusals of what a family cannot do."""

from __future__ import annotations

import numpy as np
import pytest
from tests.family_fixtures import FAMILIES

from huajia.engine.engine import Engine
from huajia.engine.infotext import parse_infotext
from huajia.engine.request import GenerationRequest
from huajia.errors import HuajiaError

FAMILY_OF = {"sd15": "sd", "pixart_sigma": "pixart_sigma"}  # fixture name → family name
FLOW = {"sd3", "flux", "chroma", "qwenimage", "zimage", "sana", "lumina2", "hidream"}
SMALL = {"steps": 2, "width": 64, "height": 64}


@pytest.fixture(scope="module")
def engines(family_dirs):
    return {}  # built on first use, one per family for the module


def _engine(engines, family_dirs, name: str) -> Engine:
    if name not in engines:
        engines[name] = Engine(str(family_dirs[name]))
    return engines[name]


def _pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


@pytest.mark.parametrize("name", FAMILIES)
def test_each_family_paints_what_was_asked(engines, family_dirs, name):
    engine = _engine(engines, family_dirs, name)
    assert engine.family.name == FAMILY_OF.get(name, name)
    facts = engine.family.describe(engine.pipe)
    assert facts["prediction"] == "flow" if name in FLOW else facts["prediction"] != "flow"
    request = GenerationRequest("(red:1.5) circle BREAK a blue square", negative_prompt="blurry",
                                seed=5, n=2, scheduler="euler", **SMALL)
    result = engine.generate(request)
    assert [image.size for image in result.images] == [(64, 64), (64, 64)]
    assert all(_pixels(image).std() > 1 for image in result.images)
    assert result.seeds == (5, 6)
    again = engine.generate(GenerationRequest("(red:1.5) circle BREAK a blue square",
                                              negative_prompt="blurry", seed=6,
                                              scheduler="euler", **SMALL))
    # picture k of a batch is seed + k's picture (batched kernels may move low bits)
    assert np.abs(_pixels(again.images[0]) - _pixels(result.images[1])).max() <= 2
    same = engine.generate(GenerationRequest("(red:1.5) circle BREAK a blue square",
                                             negative_prompt="blurry", seed=6,
                                             scheduler="euler", **SMALL))
    assert np.array_equal(_pixels(again.images[0]), _pixels(same.images[0]))  # same seed
    fields = parse_infotext(result.infotexts[0])
    assert fields["Sampler"] == "Euler" and fields["Seed"] == "5" and fields["Size"] == "64x64"
    weighted = engine.family.weighted
    assert weighted or any("prompt weights" in w for w in result.warnings)


@pytest.mark.parametrize("name", FAMILIES)
def test_samplers_by_name_and_flow_samplers_on_flow_models(engines, family_dirs, name):
    engine = _engine(engines, family_dirs, name)
    pictures = {}
    for sampler in ("euler", "dpmpp_2m", "unipc", "Euler Karras" if name in FLOW else
                    "DPM++ 2M Karras"):
        image = engine.generate(GenerationRequest("a red circle", seed=1, scheduler=sampler,
                                                  **SMALL)).images[0]
        assert _pixels(image).std() > 1, sampler
        pictures[sampler] = _pixels(image)
    if name in FLOW:
        with pytest.raises(HuajiaError, match="cannot serve a flow-matching model; use one of"):
            engine.generate(GenerationRequest("a red circle", scheduler="euler_a", **SMALL))
        with pytest.raises(HuajiaError, match="schedule spaces noise-prediction sigmas"):
            engine.generate(GenerationRequest("a red circle", scheduler="dpmpp_2m_karras",
                                              **SMALL))
    else:
        assert engine.generate(GenerationRequest("a red circle", scheduler="Euler a",
                                                 **SMALL)).images


@pytest.mark.parametrize("name", FAMILIES)
def test_the_negative_prompt_and_the_style_reach_the_picture(engines, family_dirs, name):
    engine = _engine(engines, family_dirs, name)
    plain = engine.generate(GenerationRequest("a red circle", seed=2, **SMALL)).images[0]
    negative = engine.generate(GenerationRequest("a red circle", seed=2,
                                                 negative_prompt="a green square",
                                                 **SMALL)).images[0]
    styled = engine.generate(GenerationRequest("a red circle", seed=2, style="cyberpunk",
                                               **SMALL))
    assert not np.array_equal(_pixels(plain), _pixels(negative))
    assert not np.array_equal(_pixels(plain), _pixels(styled.images[0]))
    assert parse_infotext(styled.infotexts[0])["Prompt"].startswith("cyberpunk a red circle")


@pytest.mark.parametrize("name", sorted(set(FAMILIES) - {"sd15", "sdxl"}))
def test_what_a_family_cannot_do_is_one_line(engines, family_dirs, name):
    engine = _engine(engines, family_dirs, name)
    with pytest.raises(HuajiaError, match="guidance_rescale is not available on") as caught:
        engine.generate(GenerationRequest("a red circle", guidance_rescale=0.7, **SMALL))
    assert "\n" not in str(caught.value)
    with pytest.raises(HuajiaError, match="cfg_cutoff is not available on"):
        engine.generate(GenerationRequest("a red circle", cfg_cutoff=0.5, **SMALL))
    step = engine.family.size_multiple(engine.pipe)
    if step > 8:
        with pytest.raises(HuajiaError, match=f"paints sizes in multiples of {step}"):
            engine.generate(GenerationRequest("a red circle", steps=1, width=72, height=64,
                                              upscaler="none"))


@pytest.mark.parametrize("name", ["sd15", "sdxl"])
def test_cfg_rescale_and_cutoff_work_where_they_mean_something(engines, family_dirs, name):
    engine = _engine(engines, family_dirs, name)
    result = engine.generate(GenerationRequest("a red circle", seed=1, guidance_rescale=0.7,
                                               cfg_cutoff=0.5, **SMALL))
    fields = parse_infotext(result.infotexts[0])
    assert fields["CFG rescale"] == "0.7" and fields["CFG cutoff"] == "0.5"
    assert _pixels(result.images[0]).std() > 1


def test_flux_guidance_is_distilled_and_a_negative_prompt_turns_on_true_cfg(engines, family_dirs):
    engine = _engine(engines, family_dirs, "flux")
    plain = engine.generate(GenerationRequest("a red circle", seed=3, guidance=3.5, **SMALL))
    fields = parse_infotext(plain.infotexts[0])
    assert fields["Distilled CFG Scale"] == "3.5" and fields["CFG scale"] == "1"
    negative = engine.generate(GenerationRequest("a red circle", seed=3, guidance=3.5,
                                                 negative_prompt="blue", true_guidance=4.0,
                                                 **SMALL))
    assert parse_infotext(negative.infotexts[0])["CFG scale"] == "4.0"
    assert not np.array_equal(_pixels(plain.images[0]), _pixels(negative.images[0]))
    other = engine.generate(GenerationRequest("a red circle", seed=3, guidance=1.5, **SMALL))
    assert not np.array_equal(_pixels(plain.images[0]), _pixels(other.images[0]))


def test_flux_schnell_says_guidance_had_no_effect(tmp_path):
    from tests.family_fixtures import saved

    engine = Engine(str(saved("flux_schnell", tmp_path)))
    result = engine.generate(GenerationRequest("a red circle", seed=1, **SMALL))
    assert any("takes no guidance" in w for w in result.warnings)
    assert "Distilled CFG Scale" not in parse_infotext(result.infotexts[0])


def test_a_pipeline_that_cannot_be_told_needs_family(family_dirs):
    from diffusers import DiffusionPipeline

    from huajia.engine.families import detect

    pipe = DiffusionPipeline.from_pretrained(str(family_dirs["sd3"]))
    assert detect(pipe).name == "sd3"
    with pytest.raises(HuajiaError, match="unknown family 'sd4'; known: sd, sdxl, kolors"):
        detect(pipe, "sd4")
    with pytest.raises(HuajiaError, match="cannot tell which model family a object is"):
        detect(object())


WEIGHTED = ["sd15", "sdxl", "kolors", "sd3", "flux", "chroma", "pixart_sigma", "sana",
            "lumina2", "qwenimage", "zimage", "hidream"]


@pytest.mark.parametrize("name", WEIGHTED)
def test_weights_and_break_reach_the_encoder(engines, family_dirs, name):
    engine = _engine(engines, family_dirs, name)
    plain = engine.generate(GenerationRequest("a red circle", seed=1, **SMALL))
    assert not plain.warnings

    def pixels(prompt: str, **extra) -> np.ndarray:
        request = GenerationRequest(prompt, seed=1, **SMALL, **extra)
        return _pixels(engine.generate(request).images[0])

    assert np.array_equal(_pixels(plain.images[0]), pixels("a (red:1.0) circle"))  # weight 1
    assert not np.array_equal(_pixels(plain.images[0]), pixels("a (red:1.5) circle"))
    assert not np.array_equal(_pixels(plain.images[0]), pixels("a red BREAK circle"))
    assert pixels("a (red:1.2) circle", negative_prompt="(blue:1.3) square").std() > 1
    # a prompt past the encoder's window is chunked, not cut: its last words still count
    long = "red " * engine.family.prompt_window(engine.pipe)
    assert not np.array_equal(pixels(long), pixels(long + "and a green triangle"))


def test_where_weights_are_not_applied_the_result_says_so():
    from huajia.engine.families.base import Family

    assert set(WEIGHTED) == set(FAMILIES)  # every family applies them now
    family = Family()  # the generic diffusers pipeline does not
    assert any("prompt weights and BREAK are not applied" in note
               for note in family.prompt_notes("a (red:1.5) circle", ""))
    assert not family.prompt_notes("a red circle", "")


def test_unweighted_t5_is_the_pipelines_own(engines, family_dirs):
    import torch

    from huajia.engine.t5_weights import encode_t5

    pipe = _engine(engines, family_dirs, "flux").pipe
    ours = encode_t5(pipe.tokenizer_2, pipe.text_encoder_2, "a red circle, 两个红色圆形", 512,
                     masked=False)
    with torch.no_grad():  # as the pipeline's own call encodes
        theirs = pipe._get_t5_prompt_embeds("a red circle, 两个红色圆形", max_sequence_length=512)
    assert torch.equal(ours.embeds, theirs)
    long = encode_t5(pipe.tokenizer_2, pipe.text_encoder_2, "red " * 600, 512, masked=False)
    tokens = len(pipe.tokenizer_2("red " * 600, add_special_tokens=False).input_ids)
    chunks = -(-tokens // 511)
    assert long.embeds.shape[1] == 512 * chunks and long.mask.sum() == tokens + chunks  # not cut


@pytest.mark.parametrize("name", ["sana", "lumina2"])
def test_unweighted_gemma_is_the_pipelines_own(engines, family_dirs, name):
    import torch

    engine = _engine(engines, family_dirs, name)
    pipe, family = engine.pipe, engine.family
    prompt, negative = "A red circle, 两个红色圆形", "Blurry 模糊"
    ours, ours_negative = family.encode(pipe, prompt), family.encode(pipe, negative,
                                                                     negative=True)
    own = {"complex_human_instruction": family.instruction(pipe)} if name == "sana" else {}
    with torch.no_grad():  # as the pipeline's own call encodes
        theirs = pipe.encode_prompt(prompt, negative_prompt=negative, device=pipe.device, **own)
    assert torch.equal(ours.embeds, theirs[0]) and torch.equal(ours.mask, theirs[1])
    assert torch.equal(ours_negative.embeds, theirs[2])
    assert torch.equal(ours_negative.mask, theirs[3])
    tokens = len(pipe.tokenizer("red " * 400, add_special_tokens=False).input_ids)
    long = family.encode(pipe, "red " * 400)
    chunks = long.embeds.shape[1] // family.window
    assert chunks >= 2 and long.mask.sum() >= tokens  # chunked, not cut


def test_unweighted_qwen_image_is_the_pipelines_own(engines, family_dirs):
    import torch

    engine = _engine(engines, family_dirs, "qwenimage")
    pipe, family = engine.pipe, engine.family
    for prompt in ("A red circle, 两个红色圆形", " "):  # " ": the empty negative
        ours = family.encode(pipe, prompt)
        with torch.no_grad():  # as the pipeline's own call encodes
            theirs, mask = pipe._get_qwen_prompt_embeds(prompt, device=pipe.device)
        assert torch.equal(ours.embeds, theirs) and torch.equal(ours.mask, mask)
    tokens = len(pipe.tokenizer("red " * 600, add_special_tokens=False).input_ids)
    long = family.encode(pipe, "red " * 600)
    assert long.mask.sum() > tokens  # two chunks, each with the template's end, not cut
    with pytest.raises(HuajiaError, match="takes at most 1024 tokens of prompt"):
        engine.generate(GenerationRequest("r " * 1100, **SMALL))


def test_unweighted_z_image_is_the_pipelines_own(engines, family_dirs):
    import torch

    engine = _engine(engines, family_dirs, "zimage")
    pipe, family = engine.pipe, engine.family
    for prompt in ("A red circle, 两个红色圆形", ""):  # "": the empty negative
        with torch.no_grad():  # as the pipeline's own call encodes
            theirs = pipe._encode_prompt(prompt, device=pipe.device)[0]
        assert torch.equal(family.encode(pipe, prompt), theirs)
    tokens = len(pipe.tokenizer("red " * 600, add_special_tokens=False).input_ids)
    assert len(family.encode(pipe, "red " * 600)) > tokens  # two chunks, not cut


def test_unweighted_hidream_is_the_pipelines_own(engines, family_dirs):
    import torch

    engine = _engine(engines, family_dirs, "hidream")
    pipe, family = engine.pipe, engine.family
    for prompt in ("A red circle, 两个红色圆形", ""):
        with torch.no_grad():  # as the pipeline's own call encodes
            t5 = pipe._get_t5_prompt_embeds(prompt, 128, pipe.device)
            llama = pipe._get_llama3_prompt_embeds(prompt, 128, pipe.device)
        assert torch.equal(family.encode_t5(pipe, prompt).embeds, t5)
        assert torch.equal(family.encode_llama(pipe, prompt), llama)
    long = family.encode_llama(pipe, "red " * 200)
    assert long.shape[2] == 256  # two chunks, not cut


@pytest.mark.parametrize("name", ["pixart_sigma", "sana", "qwenimage", "zimage", "hidream"])
def test_a_batch_mixes_weighted_and_plain_prompts(engines, family_dirs, name):
    engine = _engine(engines, family_dirs, name)
    plain = GenerationRequest("a red circle, 两个红色圆形", seed=1, **SMALL)
    weighted = GenerationRequest("a (red:1.5) circle, 两个红色圆形", seed=1, **SMALL)
    results = engine.generate_batch([weighted, plain])  # one call: all as embeddings
    alone = engine.generate(plain).images[0]  # the pipeline's own encoding
    assert np.abs(_pixels(results[1].images[0]) - _pixels(alone)).max() <= 2


def test_qwen_image_refuses_one_step_in_one_line(engines, family_dirs):
    engine = _engine(engines, family_dirs, "qwenimage")
    with pytest.raises(HuajiaError, match="needs at least 2 steps"):
        engine.generate(GenerationRequest("a red circle", steps=1, width=64, height=64))


@pytest.mark.parametrize(("name", "counted"), [("sd15", "tokenizer"), ("sd3", "tokenizer_3"),
                                               ("flux", "tokenizer_2"), ("hidream", "tokenizer_4")])
def test_a_prompts_cost_counts_the_tokens_of_the_encoder_whose_window_it_is(
        engines, family_dirs, name, counted):
    """SD3's and FLUX.1's windows are T5's, HiDream's Llama's: the budget counts their tokens,
    not the CLIP tokenizer's."""
    engine = _engine(engines, family_dirs, name)
    assert engine.facts.tokenizer is getattr(engine.pipe, counted)
    window = engine.facts.prompt_window
    prompt = "一个红色的圆在蓝色正方形左边, " * 60
    assert len(engine.facts.tokenizer(prompt).input_ids) > window  # several chunks
