import pytest


def test_snr_loss_weights_cap_clean_steps_and_floor_noisy_ones():
    import torch

    from huajia.training.components import snr_loss_weights

    alphas = torch.tensor([0.999, 0.5, 0.01, 0.0])  # SNR ≈ 999, 1, 0.0101, 0
    plain = snr_loss_weights(alphas, True, gamma=5.0)
    floored = snr_loss_weights(alphas, True, gamma=5.0, floor=1.0)
    assert plain[-1] == 0 and floored[-1] == 1  # pure noise: untrained vs full weight
    assert torch.allclose(plain[:2], floored[:2])  # SNR ≥ 1: the same Min-SNR weights
    assert abs(float(plain[0]) - 5 / 1000) < 1e-3  # γ caps the nearly clean step
    eps = snr_loss_weights(alphas[:3], False, gamma=5.0)
    assert abs(float(eps[0]) - 5 / 999) < 1e-3 and abs(float(eps[1]) - 1.0) < 1e-4


def test_ema_update_warms_up():
    import torch

    from huajia.training.components import ema_update

    average, param = [torch.zeros(3)], torch.ones(3)
    ema_update(average, [param], 0.99, step=0)  # decay 1/10 at the first step
    assert average[0].tolist() == pytest.approx([0.9] * 3)
