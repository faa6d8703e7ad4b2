"""Hugging Face export (logits and token ids match) and checkpoint reload (shapes, multipliers and next step intact)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from automix.cli import main
from automix.study import Workspace
from trainer.checkpoint import load_checkpoint, load_state, save_checkpoint, save_state
from trainer.config import DataConfig, ModelConfig, OptimConfig, TrainConfig
from trainer.export import hf_tokenizer, resolve_checkpoint
from trainer.model import build_model, build_optimizer
from trainer.tokenizer import ByteTokenizer, build_tokenizer

TEXTS = ["السلام عليكم، قال الرئيس إن الحكومة", "The quick brown fox jumps over 13 lazy dogs."]


def _config(parametrization: str, width: int = 48, base_width: int = 16) -> TrainConfig:
    """completep at depth 4 on base depth 2 (its branch multiplier ½ matters); the others at depth 2."""
    depth = 4 if parametrization == "completep" else 2
    model = ModelConfig(
        width=width, base_width=base_width, depth=depth, base_depth=2, n_heads=4, parametrization=parametrization
    )
    return TrainConfig(
        data={"target": "unused", "target_valid": "unused", "seq_len": 32},
        model=model,
        budget={"unique_tokens": 1000},
    )


def _trained_like(config: TrainConfig) -> torch.nn.Module:
    """A model whose readout and queries are not zero (as after training), so every fold matters."""
    torch.manual_seed(0)
    model = build_model(config.model, 257, config.data.seq_len)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize("parametrization", ["mup", "completep", "sp"])
def test_exported_gpt2_gives_the_same_logits_and_ids(tmp_path, parametrization):
    config = _config(parametrization)
    model = _trained_like(config)
    save_checkpoint(tmp_path / "run", model, config, ByteTokenizer())
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "hf")]) == 0

    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    tok = AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert hf.config.model_type == "gpt2" and not hf.config.tie_word_embeddings
    for text in TEXTS:
        ids = tok(text)["input_ids"]
        assert ids == ByteTokenizer().encode(text)
        assert tok.decode(ids) == text
        x = torch.tensor([ids[: config.data.seq_len]])
        with torch.no_grad():
            ours, theirs = model(x)[0], hf(x).logits
        assert ours.abs().max() > 0.1  # a real signal, not two zero tensors
        torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=0)
    assert tok.eos_token_id == 256 and hf.config.eos_token_id == 256


def test_bpe_tokenizer_exports_with_the_same_ids(tmp_path, tiny):
    bpe = build_tokenizer(
        DataConfig(
            target=str(tiny.target),
            target_valid=str(tiny.target_valid),
            auxiliary=str(tiny.auxiliary),
            tokenizer="bpe",
            vocab_size=300,
            cache_dir=str(tiny.cache),
        )
    )
    hf_tokenizer(bpe).save_pretrained(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    for text in TEXTS:
        assert tok(text)["input_ids"] == bpe.encode(text)
    assert tok.eos_token_id == bpe.eos_id


def test_export_finds_the_best_trial_of_a_work_dir(tmp_path, capsys):
    config = _config("mup")
    trial_dir = Workspace.of("s", tmp_path).trial_dir(3)
    save_checkpoint(trial_dir, _trained_like(config), config, ByteTokenizer())
    (tmp_path / "best.json").write_text(json.dumps({"best_trial": 3}))
    assert resolve_checkpoint(trial_dir) == trial_dir / "model.pt"
    with pytest.raises(FileNotFoundError):
        resolve_checkpoint(tmp_path)  # the trainer knows runs, not studies: the CLI resolves a work dir
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "hf")]) == 0
    assert (tmp_path / "hf" / "model.safetensors").is_file()
    assert main(["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2
    assert "give a study config, a model.pt" in capsys.readouterr().err


@pytest.mark.parametrize("parametrization", ["mup", "completep"])
def test_reload_keeps_shapes_and_multipliers_and_gives_the_identical_next_step(tmp_path, parametrization):
    config = _config(parametrization, width=64, base_width=16).model_copy(
        update={"optim": OptimConfig(learning_rate=1e-2, weight_decay=0.5)}
    )
    torch.manual_seed(0)
    model = build_model(config.model, 257, 32)
    opt = build_optimizer(model, config.optim)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    batches = [torch.randint(0, 257, (4, 33)) for _ in range(4)]

    def step(m, o, batch) -> float:
        _, loss = m(batch[:, :-1], batch[:, 1:])
        o.zero_grad()
        loss.backward()
        o.step()
        return loss.item()

    for batch in batches[:2]:
        step(model, opt, batch)
    path = save_checkpoint(tmp_path, model, config, ByteTokenizer())
    save_state(tmp_path, config, model, opt, sched, {"step": 2})

    reloaded, reloaded_config = load_checkpoint(path)
    assert reloaded.blocks[0].fc.weight.infshape.width_mult() == pytest.approx(4)
    assert reloaded.lm_head.width_mult() == pytest.approx(4)
    assert [b.branch_mult for b in reloaded.blocks] == [b.branch_mult for b in model.blocks]
    for a, b in zip(reloaded.parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b)  # no μP rescaling on reload
    reloaded_opt = build_optimizer(reloaded, reloaded_config.optim)
    reloaded_sched = torch.optim.lr_scheduler.LambdaLR(reloaded_opt, lambda step: 1.0)
    assert load_state(tmp_path, reloaded_config, reloaded, reloaded_opt, reloaded_sched) == {"step": 2}
    assert [(g["lr"], g["eps"]) for g in reloaded_opt.param_groups] == [(g["lr"], g["eps"]) for g in opt.param_groups]
    # Adam's moments came back too: the next update, and the loss after it, are bitwise the same.
    assert step(reloaded, reloaded_opt, batches[2]) == step(model, opt, batches[2])
    assert step(reloaded, reloaded_opt, batches[3]) == step(model, opt, batches[3])
