"""Samplers by the names users paste (huajia, A1111, ComfyUI), built from the model's own
scheduler config, in their flow versions for flow-matching models, refused where they cannot
serve."""

from __future__ import annotations

import pytest

from huajia.engine.request import GenerationRequest, request_fields
from huajia.engine.schedulers import (
    SAMPLERS,
    SCHEDULES,
    canonical,
    flow_samplers,
    make_scheduler,
    sampler_label,
)
from huajia.errors import HuajiaError
from huajia.training import components as C

FLOW = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000,
        "shift": 3.0, "use_dynamic_shifting": False}


@pytest.mark.parametrize("written, name", [
    ("DPM++ 2M Karras", "dpmpp_2m_karras"), ("dpmpp_2m karras", "dpmpp_2m_karras"),
    ("dpmpp_2m_karras", "dpmpp_2m_karras"), ("Euler a", "euler_a"),
    ("euler_ancestral", "euler_a"), ("uni_pc", "unipc"), ("DPM++ SDE Karras", "dpmpp_sde_karras"),
    ("DPM++ 2M SDE", "dpmpp_2m_sde"), ("euler sgm_uniform", "euler_sgm_uniform"),
    ("DPM2 a", "dpm2_a"), ("LMS", "lms"), ("Heun", "heun"), ("LCM", "lcm"), ("model", "model")])
def test_every_spelling_means_one_sampler(written, name):
    assert canonical(written) == name
    assert GenerationRequest("a cat", scheduler=written).scheduler == name


def test_an_unknown_sampler_is_one_line_naming_the_known():
    with pytest.raises(HuajiaError, match="unknown scheduler 'heun9'; known: euler, euler_a"):
        GenerationRequest("a cat", scheduler="heun9")


def test_samplers_keep_the_models_schedule_and_prediction():
    config = dict(C.build_scheduler().config)  # v-prediction, zero-terminal-SNR, trailing
    for name in SAMPLERS:
        for schedule in SCHEDULES:
            full = name if schedule == "normal" else f"{name}_{schedule}"
            try:
                scheduler = make_scheduler(full, config)
            except HuajiaError as error:
                assert f"no '{schedule}' schedule" in str(error), full
                continue
            assert scheduler.config.prediction_type == "v_prediction", full
            assert scheduler.config.num_train_timesteps == 1000
            if schedule == "karras":
                assert scheduler.config.use_karras_sigmas, full
    assert sampler_label("dpmpp_2m_karras", config) == "DPM++ 2M Karras"
    assert sampler_label("model", config) == "DDIM"


def test_flow_models_get_flow_samplers_and_others_are_refused():
    for name in flow_samplers():
        scheduler = make_scheduler(name, FLOW)
        config = scheduler.config
        flow_native = type(scheduler).__name__.startswith("FlowMatch")
        assert flow_native or (config.use_flow_sigmas and config.flow_shift == 3.0
                               and config.prediction_type == "flow_prediction"), name
        scheduler.set_timesteps(4)
        assert len(scheduler.timesteps) >= 4
    for name in ("euler_a", "ddim", "lms"):
        with pytest.raises(HuajiaError, match=f"'{name}' cannot serve a flow-matching model; "
                                              "use one of euler, heun"):
            make_scheduler(name, FLOW)


def test_an_a1111_infotext_brings_its_sampler_back():
    base = "a cat\nSteps: 20, Sampler: {}, CFG scale: 7, Seed: 1, Size: 512x512"
    assert request_fields(base.format("DPM++ 2M Karras"))["scheduler"] == "dpmpp_2m_karras"
    # A1111 1.9+ writes the schedule apart
    newer = "a cat\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1"
    assert request_fields(newer)["scheduler"] == "dpmpp_2m_karras"
    assert "scheduler" not in request_fields(base.format("Restart"))  # unknown: left as is
