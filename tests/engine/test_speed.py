"""The speed settings: the CFG cutoff (guidance on the first steps only) is batch-safe, halves
the network's batch after the cutoff, is recorded in the infotext and repaints the same
pixels from it."""

from __future__ import annotations

import numpy as np
import pytest

from huajia.engine.engine import Engine
from huajia.engine.request import GenerationRequest, request_fields
from huajia.errors import HuajiaError


class _Batches:
    """Records the batch size of every denoiser call."""

    def __init__(self, denoiser):
        self.sizes: list[int] = []
        self.handle = denoiser.register_forward_pre_hook(self._seen, with_kwargs=True)

    def _seen(self, module, args, kwargs):
        sample = args[0] if args else kwargs["sample"]
        self.sizes.append(int(sample.shape[0]))

    def close(self):
        self.handle.remove()


def _request(**fields):
    return GenerationRequest("a red circle", seed=4, steps=4, width=64, height=64, **fields)


@pytest.fixture(scope="module")
def sd_engine(sd_dir):
    return Engine(str(sd_dir))


def test_cutoff_halves_the_batch_after_the_guided_steps(sd_engine):
    batches = _Batches(sd_engine.denoiser)
    try:
        result = sd_engine.generate(_request(n=2, cfg_cutoff=0.5))
    finally:
        batches.close()
    assert batches.sizes == [4, 4, 2, 2]  # [uncond, cond] x 2 pictures, then cond alone
    assert len(result.images) == 2 and "CFG cutoff: 0.5" in result.infotexts[0]
    assert not np.array_equal(np.asarray(result.images[0]), np.asarray(result.images[1]))


def test_cutoff_changes_the_picture_and_repaints_from_its_infotext(sd_engine):
    cut = sd_engine.generate(_request(cfg_cutoff=0.5))
    full = sd_engine.generate(_request())
    assert "CFG cutoff" not in full.infotexts[0]
    assert not np.array_equal(np.asarray(cut.images[0]), np.asarray(full.images[0]))
    fields = request_fields(cut.infotexts[0])
    assert fields["cfg_cutoff"] == 0.5
    again = sd_engine.generate(GenerationRequest(**fields))
    assert np.array_equal(np.asarray(again.images[0]), np.asarray(cut.images[0]))


def test_cutoff_keeps_at_least_one_guided_step_and_is_off_without_guidance(sd_engine):
    batches = _Batches(sd_engine.denoiser)
    try:
        sd_engine.generate(_request(cfg_cutoff=0.0))
        sd_engine.generate(_request(cfg_cutoff=0.5, guidance=1.0))
    finally:
        batches.close()
    assert batches.sizes == [2, 1, 1, 1, 1, 1, 1, 1]


def test_cutoff_on_sdxl_halves_its_added_conditions_too(sdxl_dir):
    engine = Engine(str(sdxl_dir))
    batches = _Batches(engine.denoiser)
    try:
        result = engine.generate(_request(n=2, cfg_cutoff=0.5))
    finally:
        batches.close()
    assert batches.sizes == [4, 4, 2, 2] and len(result.images) == 2


def test_cutoff_needs_a_pipeline_that_shows_its_embeddings(sd_engine, monkeypatch):
    monkeypatch.setattr(type(sd_engine.pipe), "_callback_tensor_inputs", ["latents"])
    with pytest.raises(HuajiaError, match="cfg_cutoff needs a pipeline"):
        sd_engine.generate(_request(cfg_cutoff=0.5))


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_cutoff_out_of_range_is_a_clear_error(value):
    with pytest.raises(HuajiaError, match="cfg_cutoff"):
        _request(cfg_cutoff=value)


def test_split_rows_cuts_every_batch_tensor_and_leaves_the_rest():
    import torch

    from huajia.engine.parallel import split_rows

    batch = {"x": torch.arange(8).view(4, 2), "t": torch.tensor(3), "ids": [torch.zeros(4, 1)],
             "other": torch.zeros(2, 4), "scale": 1.5}
    part = split_rows(batch, 4, slice(2, 4))
    assert part["x"].tolist() == [[4, 5], [6, 7]] and part["t"].item() == 3
    assert part["ids"][0].shape == (2, 1) and part["other"].shape == (2, 4)
    assert part["scale"] == 1.5


def test_a_micro_batch_split_across_cores_paints_the_same_pictures(sd_dir, monkeypatch):
    import torch

    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    split = Engine(str(sd_dir), trace=False)
    whole = Engine(str(sd_dir), split_batch=False, trace=False)
    assert split.split.workers == 2 and whole.split is None
    request = _request(n=3)
    batches = _Batches(split.denoiser)  # a pre-hook sees the whole batch before the split
    try:
        ours = split.generate(request)
    finally:
        batches.close()
    assert batches.sizes == [6] * 4 and "forward" not in vars(split.denoiser)
    theirs = whole.generate(request)
    for a, b in zip(ours.images, theirs.images, strict=True):
        assert np.abs(np.asarray(a, int) - np.asarray(b, int)).max() <= 2
    again = split.generate(request)
    assert all(np.array_equal(np.asarray(a), np.asarray(b))
               for a, b in zip(ours.images, again.images, strict=True))


def _close(a, b, levels=2):
    return all(np.abs(np.asarray(x, int) - np.asarray(y, int)).max() <= levels
               for x, y in zip(a.images, b.images, strict=True))


def test_the_frozen_trace_paints_what_eager_paints_and_follows_weight_changes(sd_dir):
    import torch

    traced = Engine(str(sd_dir), split_batch=False)
    eager = Engine(str(sd_dir), split_batch=False, trace=False)
    traces = traced.split.traces
    assert eager.split is None
    first = traced.generate(_request())  # 8 calls, fewer than it takes to pay for a trace
    assert not traces._traces
    traced.warm_up()  # a server's start: traced at once
    assert len(traces._traces) == 1
    ours, theirs = traced.generate(_request(n=2)), eager.generate(_request(n=2))
    assert _close(ours, theirs) and _close(first, eager.generate(_request()))
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in
               zip(ours.images, traced.generate(_request(n=2)).images, strict=True))
    with torch.no_grad():  # weights changed in place (training): the trace is made again
        for unet in (traced.denoiser, eager.denoiser):
            unet.conv_out.bias.add_(0.5)
    traced.warm_up()
    assert _close(traced.generate(_request()), eager.generate(_request()))


def test_a_lora_on_a_traced_engine_paints_as_on_an_eager_one(sd_dir, tmp_path):
    from tests.conftest import loud_lora

    from huajia.engine.request import LoraSpec

    lora = (LoraSpec(str(loud_lora(sd_dir, tmp_path)), 0.8),)
    traced = Engine(str(sd_dir), split_batch=False)
    eager = Engine(str(sd_dir), split_batch=False, trace=False)
    traced.warm_up()
    plain = traced.generate(_request())
    with_lora = traced.generate(_request(loras=lora))
    assert _close(with_lora, eager.generate(_request(loras=lora)))
    assert not _close(with_lora, plain, levels=10)
    assert _close(traced.generate(_request()), plain)  # and off again


def test_sdxl_calls_with_added_conditions_stay_eager(sdxl_dir):
    engine = Engine(str(sdxl_dir), split_batch=False)
    engine.warm_up()
    assert not engine.split.traces._traces
