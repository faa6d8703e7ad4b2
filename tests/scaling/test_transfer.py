"""Transfer: the lr/wd rules in width and depth, the budget rule, tiny runs tracked in MLflow, the verify sweeps."""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from optuna.distributions import FloatDistribution

from automix.cli import main
from automix.config._study import StudyConfig
from automix.errors import ConfigError
from automix.scaling._transfer import (
    budget_rule,
    effective_lr_wd,
    source_trial,
    study_config_from_tracking,
    target_config,
    transfer,
)
from automix.scaling._verify import plot_sweeps, summarize, verify_transfer
from automix.study import Workspace
from trainer.export import export

LR, WD = 4e-3, 0.5


@pytest.fixture
def proxy(make_cfg):
    """A width-32 μP proxy at base width 32 with lr and wd stated there."""
    cfg = make_cfg(unique_tokens=1024, epochs=2.0, mix_ratio=0.25)
    return cfg.model_copy(
        update={
            "model": cfg.model.model_copy(update={"width": 32, "base_width": 32}),
            "optim": cfg.optim.model_copy(update={"learning_rate": LR, "weight_decay": WD}),
        }
    )


@pytest.mark.parametrize("width", [32, 128, 512])
def test_lr_and_wd_carry_over_and_muadamw_keeps_hidden_lr_times_wd(proxy, width):
    target = target_config(proxy, width)
    assert (target.optim.learning_rate, target.optim.weight_decay) == (LR, WD)
    assert target.budget == proxy.budget  # same U, E, r: the proxy's repetition rate
    eff = effective_lr_wd(target)
    m = width / 32
    assert eff["width_mult"] == pytest.approx(m)
    assert eff["hidden_lr"] == pytest.approx(LR / m)
    assert eff["hidden_wd"] == pytest.approx(WD * m)
    assert eff["hidden_lr_x_wd"] == pytest.approx(LR * WD)  # per-step decay is the base width's
    assert (eff["embedding_lr"], eff["embedding_wd"]) == (pytest.approx(LR), pytest.approx(WD))


@pytest.mark.parametrize("parametrization", ["completep", "mup"])
def test_depth_carries_lr_and_wd_and_completep_scales_branches_and_eps(proxy, parametrization):
    proxy = proxy.model_copy(
        update={"model": proxy.model.model_copy(update={"parametrization": parametrization, "base_depth": 2})}
    )
    target = target_config(proxy, 128, depth=8)
    assert (target.model.width, target.model.depth, target.model.base_depth) == (128, 8, 2)
    assert (target.optim.learning_rate, target.optim.weight_decay) == (LR, WD)
    eff = effective_lr_wd(target)
    # α = 1: lr and wd have no depth factor; only the branches (1/m_L) and the blocks' ε (1/(m_N·m_L)) scale
    m_l = 4 if parametrization == "completep" else 1
    assert (eff["depth_mult"], eff["branch_mult"]) == (m_l, 1 / m_l)
    assert (eff["hidden_lr"], eff["hidden_wd"]) == (pytest.approx(LR / 4), pytest.approx(WD * 4))
    assert eff["hidden_eps"] == pytest.approx(1e-8 / (4 * m_l) if parametrization == "completep" else 1e-8)


@pytest.mark.parametrize("mode", ["epochs", "fixed_tokens"])
def test_larger_budget_keeps_repetition_and_rescales_wd(proxy, mode):
    if mode == "fixed_tokens":
        budget = proxy.budget.model_copy(update={"mode": "fixed_tokens", "train_tokens": 2730})
        proxy = proxy.model_copy(update={"budget": budget})
    T = proxy.budget.total_tokens
    target = target_config(proxy, 128, train_tokens=4 * T)
    b = target.budget
    assert b.total_tokens == pytest.approx(4 * T, rel=1e-3)
    assert b.unique_tokens == 4 * proxy.budget.unique_tokens
    assert b.effective_epochs == pytest.approx(proxy.budget.effective_epochs, rel=1e-3)
    assert b.mix_ratio == proxy.budget.mix_ratio
    # AdamW timescale 1/(lr·wd) constant in epochs: an epoch is 4× the steps, so lr·wd is 4× smaller.
    assert target.optim.learning_rate == LR
    assert target.optim.weight_decay == pytest.approx(WD / 4)
    assert effective_lr_wd(target)["hidden_lr_x_wd"] == pytest.approx(LR * WD / 4)


@pytest.mark.parametrize("mode", ["epochs", "fixed_tokens"])
def test_unique_tokens_applies_the_same_budget_rule_as_train_tokens(proxy, mode):
    if mode == "fixed_tokens":
        budget = proxy.budget.model_copy(update={"mode": "fixed_tokens", "train_tokens": 2730})
        proxy = proxy.model_copy(update={"budget": budget})
    U, T = proxy.budget.unique_tokens, proxy.budget.total_tokens
    target = target_config(proxy, 128, unique_tokens=4 * U)
    b = target.budget
    assert b.unique_tokens == 4 * U
    assert b.total_tokens == pytest.approx(4 * T, rel=1e-3)
    assert b.effective_epochs == pytest.approx(proxy.budget.effective_epochs, rel=1e-3)
    assert b.mix_ratio == proxy.budget.mix_ratio
    assert (target.optim.learning_rate, target.optim.weight_decay) == (LR, pytest.approx(WD / 4))
    assert target == target_config(proxy, 128, train_tokens=4 * T)  # one rule, whichever budget is named
    # a smaller target budget follows the same rule: fewer steps per epoch, so more decay per step
    smaller = target_config(proxy, 32, unique_tokens=U // 2)
    assert (smaller.budget.unique_tokens, smaller.optim.weight_decay) == (U // 2, pytest.approx(2 * WD))


def test_budget_rule_takes_one_budget_of_at_least_one_token(proxy):
    assert budget_rule(proxy) == (1.0, {})
    k, values = budget_rule(proxy, unique_tokens=3 * proxy.budget.unique_tokens)
    assert k == 3 and values == {"budget.unique_tokens": 3072, "optim.weight_decay": pytest.approx(WD / 3)}
    with pytest.raises(ConfigError, match="not both"):  # both would change E, which no rule covers
        target_config(proxy, 64, train_tokens=4000, unique_tokens=2048)
    with pytest.raises(ConfigError, match="at least 1 token"):
        target_config(proxy, 64, unique_tokens=0)


@pytest.mark.slow
def test_transfer_cli_unique_tokens_trains_the_target_budget_and_records_k(tmp_path, tiny, capsys, caplog):
    config = _study(tmp_path, tiny)
    path = tmp_path / "study.yaml"
    path.write_text(json.dumps(config.model_dump()))
    both = ["--unique-tokens", "1024", "--train-tokens", "2048"]
    with pytest.raises(SystemExit):  # argparse: E is kept, so one budget fixes the other
        main(["transfer", "--config", str(path), "--widths", "16", *both])
    assert "not allowed with" in capsys.readouterr().err
    assert main(["transfer", "--config", str(path), "--widths", "16", "--unique-tokens", "1024"]) == 0
    record = json.loads((Path(config.work_dir) / "transfer.json").read_text())
    (run,) = record["runs"]
    # the proxy: U = 512, E = 2 (T = 1024), best trial's wd 0.3; U' = 1024 is k = 2
    assert (run["unique_tokens"], run["epochs"], run["train_tokens"]) == (1024, 2, 2048)
    assert run["weight_decay"] == pytest.approx(0.3 / 2)
    assert "k = U'/U = 2" in record["rule"]["budget"]
    assert "search epochs at the target" in caplog.text  # E kept: BENCHMARKS.md "Budget transfer"


def _study(tmp_path, tiny) -> StudyConfig:
    space = tmp_path / "space.yaml"
    space.write_text(
        "params:\n  weight_decay: {type: float, low: 0.01, high: 3, log: true}\n"
        "  learning_rate: {type: float, low: 1.0e-3, high: 3.0e-2, log: true}\n  epochs: 2\n"
    )
    config = StudyConfig.model_validate(
        {
            "study": "tiny",
            "work_dir": str(tmp_path / "work"),
            "data": {
                "target": str(tiny.target),
                "target_valid": str(tiny.target_valid),
                "seq_len": 16,
                "cache_dir": str(tiny.cache),
            },
            "model": {"width": 16, "base_width": 16, "depth": 1, "n_heads": 2},
            "optim": {"batch_size": 4, "warmup_tokens": 64},
            "budget": {"unique_tokens": 512},
            "eval_every_tokens": 512,
            "search": {"space": str(space)},
        }
    )
    workspace = Workspace.from_config(config)
    workspace.work_dir.mkdir(parents=True)
    study = optuna.create_study(study_name="tiny", storage=workspace.storage_url)
    dists = {"weight_decay": FloatDistribution(0.01, 3, log=True), "learning_rate": FloatDistribution(1e-3, 3e-2)}
    for value, wd in [(5.0, 0.01), (4.0, 0.3)]:
        trial = optuna.trial.create_trial(
            params={"weight_decay": wd, "learning_rate": 8e-3}, distributions=dists, value=value
        )
        study.add_trial(trial)
    return config


def test_transfer_trains_the_best_trial_and_tracks_it(tmp_path, tiny):
    config = _study(tmp_path, tiny)
    work = Workspace.from_config(config).work_dir
    assert source_trial(config).number == 1  # the lower loss
    result = transfer(config, [32], verbose=False)

    (run,) = result.runs
    assert (run["width"], run["weight_decay"], run["learning_rate"]) == (32, 0.3, 8e-3)
    assert run["epochs"] == 2  # the space's fixed value, as in the proxy trial
    assert run["effective"]["hidden_lr"] == pytest.approx(8e-3 / 2)
    record = json.loads((work / "transfer.json").read_text())
    assert record["source_trial"] == 1 and record["runs"][0]["metrics"]["target_val_loss"] > 0

    client = MlflowClient(Workspace.from_config(config).tracking_uri)
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id], "tags.kind = 'transfer' and tags.width = '32'")
    assert len(runs) == 1
    tracked = runs[0]
    assert tracked.info.status == "FINISHED"
    assert tracked.data.tags["source_trial"] == "1"
    assert float(tracked.data.params["optim.weight_decay"]) == 0.3
    assert tracked.data.metrics["target_val_loss"] == pytest.approx(run["metrics"]["target_val_loss"])
    assert (export(run["checkpoint"], tmp_path / "hf") / "config.json").is_file()

    # `automix transfer --study NAME` reads the study config back from the search's MLflow run.
    with pytest.raises(ConfigError, match="no search of study"):
        study_config_from_tracking("tiny", work)
    tracker = Workspace.from_config(config).tracker()
    tracker.log_dict(tracker.start_parent("search-tiny", {}, {}), config.model_dump(), "config.json")
    assert study_config_from_tracking("tiny", work) == config
    copy = shutil.copytree(work, tmp_path / "copy")  # the copy's own dir is its work dir
    assert Path(study_config_from_tracking("tiny", copy).work_dir) == copy
    shutil.rmtree(work / "mlartifacts")
    with pytest.raises(ConfigError, match="cannot read the config"):
        study_config_from_tracking("tiny", copy)


@pytest.mark.slow
def test_transfer_to_a_depth_names_runs_by_shape_and_warns_outside_completep(tmp_path, tiny, caplog):
    config = _study(tmp_path, tiny)
    with caplog.at_level(logging.WARNING, logger="automix.scaling._transfer"):
        result = transfer(config, [16], verbose=False, depth=2)
    assert "completep" in caplog.text  # a μP study: nothing carries the lr across depth
    (run,) = result.runs
    assert (run["width"], run["depth"]) == (16, 2)
    assert Path(run["checkpoint"]).parent.name == "w16d2"
    assert json.loads(result.path.read_text())["proxy_depth"] == 1


def test_transfer_cli_rejects_bad_input(tmp_path, tiny, capsys):
    config = _study(tmp_path, tiny)
    path = tmp_path / "study.yaml"
    path.write_text(json.dumps(config.model_dump()))  # JSON is YAML
    assert main(["transfer", "--config", str(path), "--widths", "33"]) == 2  # not divisible by 2 heads
    assert "n_heads" in capsys.readouterr().err
    assert main(["transfer", "--config", str(path), "--widths", "32", "--trial", "7"]) == 2
    assert main(["transfer", "--study", "absent", "--work-dir", str(tmp_path), "--widths", "32"]) == 2
    assert main(["transfer", "--config", str(path), "--width", "32", "--depth", "0"]) == 2
    assert "depth" in capsys.readouterr().err


def test_verify_summary_finds_the_best_lr_per_width_and_its_drift(tmp_path):
    grid = [1e-3, 2e-3, 4e-3, 8e-3]
    # μP: the optimum stays at 4e-3 (one step at the widest); SP: it halves with every doubling of width.
    best = {("mup", 32): 4e-3, ("mup", 64): 4e-3, ("mup", 128): 8e-3, ("sp", 32): 8e-3, ("sp", 64): 4e-3}
    best[("sp", 128)] = 1e-3  # 3 steps away, and 2e-3 diverged
    rows = [
        {"sweep": "lr", "parametrization": p, "width": w, "value": lr, "loss": abs(math.log2(lr / b)) + 2.0}
        for (p, w), b in best.items()
        for lr in grid
    ]
    losses = pd.DataFrame(rows)
    losses.loc[(losses.parametrization == "sp") & (losses.width == 128) & (losses.value == 2e-3), "loss"] = math.inf
    table, drift = summarize(losses, {"lr": grid})
    assert {(r.parametrization, r.width): r.value for r in table.itertuples()} == best
    assert drift == {"lr/mup": 1, "lr/sp": 3}
    assert plot_sweeps(losses, tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_verify_summary_along_depth(tmp_path):
    grid = [1e-3, 2e-3, 4e-3]
    best = {("completep", 2): 2e-3, ("completep", 8): 4e-3, ("mup", 2): 2e-3, ("mup", 8): 1e-3}
    losses = pd.DataFrame(
        {"sweep": "lr", "parametrization": p, "width": 64, "depth": d, "value": lr, "loss": abs(math.log2(lr / b))}
        for (p, d), b in best.items()
        for lr in grid
    )
    table, drift = summarize(losses, {"lr": grid}, "depth")
    assert {(r.parametrization, r.depth): r.value for r in table.itertuples()} == best
    assert drift == {"lr/completep": 1, "lr/mup": 1}
    assert plot_sweeps(losses, tmp_path / "depth.png", "depth").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_verify_transfer_along_depth_runs_every_point_once(tmp_path, tiny, capsys):
    config = _study(tmp_path, tiny)
    result = verify_transfer(config, lrs=[4e-3, 8e-3], wds=(), depths=[1, 2])
    assert result.axis == "depth" and result.path.name == "verify_transfer_depth_w16.json"
    assert set(result.drift) == {"lr/completep", "lr/mup"}  # no wd sweep asked for
    assert capsys.readouterr().out.count("target_val_loss=") == 2 * 2 * 2  # lr × depth × 2 parametrisations
    record = json.loads(result.path.read_text())
    assert record["base_depth"] == 1 and record["wd_sweep_lr"] is None
    again = verify_transfer(config, lrs=[4e-3, 8e-3], wds=(), depths=[1, 2])
    assert "target_val_loss=" not in capsys.readouterr().out  # every loss read back from the cache
    assert again.losses.equals(result.losses)

    path = tmp_path / "study.yaml"
    path.write_text(json.dumps(config.model_dump()))
    assert main(["verify-transfer", str(path), "--depths", "2"]) == 2  # one depth is no sweep
