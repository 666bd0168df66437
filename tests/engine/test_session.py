"""``engine.session(request)``: a run sets scheduler, LoRAs and hooks and puts them back, so no
run inherits another's state (issue 25's leak: a generate with euler_a made every later
thinking run paint with Euler a)."""

from __future__ import annotations

import numpy as np
import pytest
from tests.conftest import loud_lora

from huajia.engine.engine import Engine
from huajia.engine.request import GenerationRequest, LoraSpec
from huajia.errors import HuajiaError
from huajia.thinking.critics import ShapesCritic
from huajia.thinking.loop import Thinker
from huajia.thinking.options import ThinkOptions

OPTIONS = ThinkOptions(pauses=1, max_repaints=1, restarts=1, compose_tries=0)


def _think(engine, **fields):
    request = GenerationRequest("two red circles left of a blue square", seed=3, steps=4,
                                width=64, height=64, **fields)
    return Thinker(engine, ShapesCritic(), OPTIONS).think(request)


def _pixels(image):
    return np.asarray(image)


def test_a_generate_does_not_leak_its_scheduler_or_lora_into_thinking(sd_dir, tmp_path):
    lora = loud_lora(sd_dir, tmp_path)
    used = Engine(str(sd_dir))
    scheduler = used.pipe.scheduler
    used.generate(GenerationRequest("a yellow star", seed=2, steps=3, width=64, height=64,
                                    scheduler="euler_a", loras=(LoraSpec(str(lora)),)))
    assert used.pipe.scheduler is scheduler and used.active_loras == ()
    after = _think(used)
    fresh = _think(Engine(str(sd_dir)))
    assert np.array_equal(_pixels(after.image), _pixels(fresh.image))
    assert after.infotext == fresh.infotext and "Sampler: UniPC" in after.infotext  # the default
    assert not used.denoiser._forward_hooks and not used.denoiser._forward_pre_hooks


def test_thinking_honours_the_scheduler_and_n(sd_dir):
    engine = Engine(str(sd_dir))
    euler = _think(engine, scheduler="euler_a")
    assert "Sampler: Euler a" in euler.infotext
    assert not np.array_equal(_pixels(euler.image), _pixels(_think(engine).image))
    request = GenerationRequest("a red circle", seed=5, steps=3, width=64, height=64, n=2)
    results = Thinker(engine, ShapesCritic(), OPTIONS).think_all(request)
    assert [r.seed for r in results] == [5, 6]
    with pytest.raises(HuajiaError, match="think_all"):
        Thinker(engine, ShapesCritic(), OPTIONS).think(request)


def test_a_session_restores_even_when_the_run_fails(sd_dir):
    engine = Engine(str(sd_dir))
    scheduler = engine.pipe.scheduler

    class Boom:
        def attach(self, denoiser):
            self.handle = denoiser.register_forward_pre_hook(self.fail)

        def fail(self, *args):
            raise RuntimeError("boom")

        def close(self):
            self.handle.remove()

    request = GenerationRequest("a red circle", seed=1, steps=2, width=64, height=64,
                                scheduler="unipc")
    with pytest.raises(RuntimeError, match="boom"):
        with engine.session(request, hooks=[Boom()]) as run:
            run.denoise(engine.prepare(request).kwargs, None, (64, 64))
    assert engine.pipe.scheduler is scheduler and not engine.denoiser._forward_pre_hooks


def test_an_injected_pipeline_is_shared_not_copied(sd_dir):
    loaded = Engine(str(sd_dir))
    shared = Engine.from_pipe(loaded.pipe, name="tiny")
    assert shared.pipe is loaded.pipe and shared.source.name == "tiny"
    assert len(shared.model_hash) == 10
    request = GenerationRequest("a red circle", seed=4, steps=2, width=64, height=64)
    assert np.array_equal(_pixels(shared.generate(request).images[0]),
                          _pixels(loaded.generate(request).images[0]))
