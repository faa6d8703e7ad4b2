"""μP and CompleteP: base shapes, readout, depth multipliers, optimiser scaling; μP and SP results unchanged."""

from __future__ import annotations

import mup
import pytest
import torch

from trainer.config import ModelConfig, OptimConfig, fingerprint
from trainer.model import attention_scale, build_model, build_optimizer, depth_mult


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


def _three_steps(cfg: ModelConfig) -> tuple[list[float], torch.optim.Optimizer, torch.nn.Module]:
    """Three AdamW steps on fixed random batches from seed 0: the losses, the optimiser and the model."""
    torch.manual_seed(0)
    model = build_model(cfg, 257, 16)
    opt = build_optimizer(model, OptimConfig(learning_rate=1e-2, weight_decay=0.1))
    batches = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(3):
        b = torch.randint(0, 257, (4, 17), generator=batches)
        _, loss = model(b[:, :-1], b[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, opt, model


# Recorded with the model before `completep` existed (commit 28532c0): width 64 on base 32, depth 3.
BEFORE_COMPLETEP = {
    "mup": (
        [5.549075126647949, 5.549679756164551, 5.5515923500061035],
        [(12, 0.005, 0.2, 1e-08), (3, 0.01, 0.1, 1e-08), (14, 0.01, 0.0, 1e-08)],
        2407.1787758118244,
    ),
    "sp": (
        [5.874022483825684, 5.757029056549072, 5.7083563804626465],
        [(15, 0.01, 0.1, 1e-08), (14, 0.01, 0.0, 1e-08)],
        5082.217690578558,
    ),
}


@pytest.mark.parametrize("parametrization", ["mup", "sp"])
def test_mup_and_sp_compute_what_they_computed_before_completep(parametrization):
    losses, opt, model = _three_steps(ModelConfig(width=64, base_width=32, depth=3, parametrization=parametrization))
    before_losses, before_groups, before_abs_sum = BEFORE_COMPLETEP[parametrization]
    assert losses == pytest.approx(before_losses, rel=1e-6)
    assert [(len(g["params"]), g["lr"], g["weight_decay"], g["eps"]) for g in opt.param_groups] == before_groups
    abs_sum = sum(p.double().abs().sum().item() for p in model.parameters())
    assert abs_sum == pytest.approx(before_abs_sum, rel=1e-6)


def _lr_wd_eps(opt: torch.optim.Optimizer, model: torch.nn.Module) -> list[tuple[float, float, float]]:
    """Each parameter's (lr, weight decay, eps), in the model's parameter order."""
    where = {id(p): g for g in opt.param_groups for p in g["params"]}
    return [(where[id(p)]["lr"], where[id(p)]["weight_decay"], where[id(p)]["eps"]) for p in model.parameters()]


def test_completep_at_its_base_shape_is_the_mup_model():
    base = ModelConfig(width=64, base_width=64, depth=4, base_depth=4)
    mup_losses, mup_opt, mup_model = _three_steps(base)
    cp_losses, cp_opt, cp_model = _three_steps(base.model_copy(update={"parametrization": "completep"}))
    assert cp_losses == mup_losses  # exactly: every multiplier is 1
    assert _lr_wd_eps(cp_opt, cp_model) == _lr_wd_eps(mup_opt, mup_model)
    for a, b in zip(cp_model.parameters(), mup_model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_completep_scales_branches_and_block_eps_with_depth_and_keeps_lr_wd_and_init():
    cfg = ModelConfig(width=128, base_width=32, depth=8, base_depth=2, parametrization="completep")
    model = build_model(cfg, 257, 16)
    m_n, m_l = 4, 4
    assert depth_mult(cfg) == m_l and all(b.branch_mult == 1 / m_l for b in model.blocks)
    # init has no depth term: the projections are drawn as at base depth, μP's 1/sqrt(m_N) included
    shallow = build_model(cfg.model_copy(update={"depth": 2}), 257, 16)
    assert model.blocks[5].fc_proj.weight.std().item() == pytest.approx(
        shallow.blocks[0].fc_proj.weight.std().item(), rel=0.05
    )
    assert model.blocks[0].fc_proj.weight.std().item() == pytest.approx(0.02 / 2 / 2, rel=0.05)  # /sqrt(2·2), /sqrt(4)

    opt = build_optimizer(model, OptimConfig(learning_rate=1e-3, weight_decay=0.5))
    settings = dict(zip([n for n, _ in model.named_parameters()], _lr_wd_eps(opt, model), strict=True))
    # α = 1: hidden lr/m_N and wd·m_N as under μP, no depth factor; ε/(m_N·m_L) inside the blocks
    assert settings["blocks.7.fc.weight"] == pytest.approx((1e-3 / m_n, 0.5 * m_n, 1e-8 / (m_n * m_l)))
    assert settings["blocks.7.ln1.weight"] == pytest.approx((1e-3, 0.0, 1e-8 / (m_n * m_l)))
    assert settings["wte.weight"] == pytest.approx((1e-3, 0.5, 1e-8))
    assert settings["ln_f.weight"] == pytest.approx((1e-3, 0.0, 1e-8))
    assert settings["lm_head.weight"] == pytest.approx((1e-3, 0.5, 1e-8))  # the readout's 1/m_N is in its forward


def test_sp_and_mup_branches_are_unscaled_at_any_depth():
    for p in ("sp", "mup"):
        cfg = ModelConfig(depth=8, base_depth=2, parametrization=p)
        assert depth_mult(cfg) == 1 and build_model(cfg, 257, 16).blocks[0].branch_mult == 1


def test_base_depth_keys_a_run_only_under_completep(make_cfg):
    config = make_cfg()
    for p, counts in (("mup", False), ("sp", False), ("completep", True)):
        at = config.model_copy(update={"model": config.model.model_copy(update={"parametrization": p})})
        other = at.model_copy(update={"model": at.model.model_copy(update={"base_depth": 4})})
        assert (fingerprint(other) != fingerprint(at)) == counts
