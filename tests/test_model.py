"""μP parametrisation: base shapes, readout, optimiser scaling, checkpoint reload."""

from __future__ import annotations

import mup
import pytest
import torch

from trainer.config import ModelConfig, OptimConfig
from trainer.model import attention_scale, build_model, build_optimizer


@pytest.mark.parametrize("width", [32, 128])
def test_mup_base_shapes_and_readout(width):
    cfg = ModelConfig(width=width, base_width=32, depth=2, n_heads=4)
    model = build_model(cfg, vocab_size=257, seq_len=16)
    assert isinstance(model.lm_head, mup.MuReadout)
    assert all(hasattr(p, "infshape") for p in model.parameters())
    m = width / 32
    assert model.blocks[0].fc.weight.infshape.width_mult() == pytest.approx(m)
    assert model.lm_head.width_mult() == pytest.approx(m)
    # μP readout starts at zero: the initial loss is exactly log(vocab) at every width.
    x = torch.randint(0, 257, (2, 16))
    _, loss = model(x, x)
    assert loss.item() == pytest.approx(torch.log(torch.tensor(257.0)).item(), abs=1e-5)


def test_mup_hidden_init_shrinks_with_width():
    stds = []
    for width in (64, 256):
        model = build_model(ModelConfig(width=width, base_width=64, n_heads=4), 257, 16)
        stds.append(model.blocks[0].fc.weight.std().item())
    assert stds[1] == pytest.approx(stds[0] / 2, rel=0.05)  # std ∝ 1/sqrt(width_mult), m = 4


def test_sp_keeps_std_and_lr_constant():
    model = build_model(ModelConfig(width=256, base_width=64, n_heads=4, parametrization="sp"), 257, 16)
    assert model.blocks[0].fc.weight.std().item() == pytest.approx(0.02, rel=0.05)
    opt = build_optimizer(model, OptimConfig(learning_rate=1e-3, weight_decay=0.5))
    assert {g["lr"] for g in opt.param_groups} == {1e-3}


def test_muadamw_scales_hidden_lr_and_wd_and_skips_decay_on_vectors():
    model = build_model(ModelConfig(width=256, base_width=64, n_heads=4), 257, 16)
    opt = build_optimizer(model, OptimConfig(learning_rate=1e-3, weight_decay=0.5))
    hidden = next(g for g in opt.param_groups if any(p is model.blocks[0].fc.weight for p in g["params"]))
    assert hidden["lr"] == pytest.approx(1e-3 / 4)
    assert hidden["lr"] * hidden["weight_decay"] == pytest.approx(1e-3 * 0.5)  # lr·wd kept
    for g in opt.param_groups:
        if any(p.dim() == 1 for p in g["params"]):
            assert g["weight_decay"] == 0.0
            assert all(p.dim() == 1 for p in g["params"])


def test_attention_scale_is_one_over_d_under_mup():
    base = ModelConfig(width=64, base_width=64, n_heads=4)
    wide = ModelConfig(width=256, base_width=64, n_heads=4)
    assert attention_scale(base) == pytest.approx(1 / 16**0.5)  # equals SP at the base width
    assert attention_scale(wide) / attention_scale(base) == pytest.approx(16 / 64)  # 1/d_head
    assert attention_scale(wide.model_copy(update={"parametrization": "sp"})) == pytest.approx(1 / 64**0.5)
