import pytest

from huajia.engine.loading import resolve_model
from huajia.errors import HuajiaError


def test_missing_folder_and_non_pipeline(tmp_path):
    with pytest.raises(HuajiaError, match="no model at"):
        resolve_model(str(tmp_path / "nope"))
    with pytest.raises(HuajiaError, match="no model_index.json"):
        resolve_model(str(tmp_path))


def test_hub_id_without_hub_is_a_clear_error(monkeypatch):
    from huajia.engine.engine import Engine

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HuajiaError, match="Hugging Face Hub"):
        Engine("someone/not-a-real-model")


def test_plain_diffusers_loads_what_huajia_loads(sd_dir):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(sd_dir)
    assert pipe.unet.config.sample_size == 16
