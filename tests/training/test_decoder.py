"""Decoder refinement: texture-focused batches, the encoder left alone, passes on record."""

import json

import numpy as np
import torch

from huajia.training import components as C
from huajia.training.decoder import decoder_batch, refine_decoder
from huajia.training.model_card import _decoder_line

TINY = C.ModelSize(image_side=64, vocab_size=400, text_width=32, text_layers=1,
                   vae_channels=(8, 8, 16, 16), latent_channels=4, unet_channels=(32, 32, 64),
                   unet_heads=2)


def test_a_full_focus_batch_weighs_every_objects_pattern():
    x, weights = decoder_batch(np.random.default_rng(0), 3, texture_focus=1.0)
    assert x.shape == (3, 3, 128, 128) and weights.shape == (3, 1, 128, 128)
    heavy = weights > 1
    assert all(heavy[i].any() for i in range(3))  # every picture has patterned objects
    background = x[:, :, :2, :2]  # corners are background (objects keep a margin)
    assert (weights[:, :, :2, :2] == 1).all() and background.abs().max() <= 1


def test_without_focus_solid_objects_carry_no_extra_weight():
    rng = np.random.default_rng(3)
    _, weights = decoder_batch(rng, 4, texture_focus=0.0)
    assert weights.min() == 1 and set(weights.unique().tolist()) <= {1.0, 7.0}


def test_passes_are_recorded_and_the_encoder_is_untouched(tmp_path):
    model_dir = tmp_path / "model"
    vae = C.build_vae(TINY)
    vae.save_pretrained(model_dir / "vae")
    (model_dir / "training.json").write_text(json.dumps(
        {"decoder_refinement": {"steps": 600, "batch": 8, "lr": 2e-4}}))
    refine_decoder(model_dir, steps=1, batch=1)
    refine_decoder(model_dir, steps=2, batch=1, texture_focus=0.5)
    assert not (tmp_path / "checkpoints" / "decoder.pt").exists()  # finished passes leave none
    record = json.loads((model_dir / "training.json").read_text())
    assert [p["steps"] for p in record["decoder_refinement"]] == [600, 1, 2]
    assert "texture focus 0.5" in _decoder_line(record)
    tuned = type(vae).from_pretrained(model_dir / "vae").state_dict()
    before = vae.state_dict()
    assert all(torch.equal(tuned[k], before[k].half().float()) or torch.equal(tuned[k], before[k])
               for k in before if k.startswith(("encoder.", "quant_conv.")))
    assert any(not torch.equal(tuned[k].float(), before[k].half().float())
               for k in before if k.startswith("decoder."))


def test_the_card_rebuilds_decoder_passes_between_base_and_fine_tune():
    from huajia.training.model_card import _rebuild_commands

    base = {"seed": 0, "n_scenes": 10, "vae_steps": 3, "unet_steps": 7}
    training = {"recipe": {**base, "init_from": "embedded", "unet_steps": 12, "unet_lr": 2e-4},
                "fine_tuned_from": {"recipe": base},
                "decoder_refinement": [{"steps": 6, "batch": 8, "lr": 2e-4},
                                       {"steps": 12, "batch": 8, "lr": 4e-4, "texture_focus": 0.75}]}
    steps = _rebuild_commands(training).split("`, then `")
    assert steps[0].startswith("huajia train base --out DIR ") and "--init-from" not in steps[0]
    assert steps[1:3] == ["huajia train decoder DIR/model --steps 6 --lr 0.0002",
                          "huajia train decoder DIR/model --steps 12 --lr 0.0004 --texture-focus 0.75"]
    assert steps[3].startswith("huajia train base --out DIR2 ") and "--init-from DIR/model" in steps[3]
