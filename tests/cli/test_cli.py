"""Bad input ends with one line on stderr, exit code 2, and nothing written."""

from __future__ import annotations

import os
from pathlib import Path

from automix.config._study import default_cache_dir, load_config
from automix.errors import ConfigError


def test_unknown_key(study_yaml, usage_error):
    usage_error(["search", str(study_yaml(optim={"learnin_rate": 1e-3}))], "optim.learnin_rate", "unknown key")


def test_out_of_range_value(study_yaml, usage_error):
    usage_error(["search", str(study_yaml()), "budget.mix_ratio=1.5"], "budget.mix_ratio", "1.5")


def test_bad_override_syntax(study_yaml, usage_error):
    usage_error(["search", str(study_yaml()), "search.n_trials"], "key=value")


def test_missing_config_file(usage_error, tmp_path):
    usage_error(["search", str(tmp_path / "nope.yaml")], "not found")


def test_missing_corpus_leaves_nothing_behind(study_yaml, usage_error, tmp_path):
    path = study_yaml(data={"target": str(tmp_path / "missing")})
    usage_error(["search", str(path)], str(tmp_path / "missing"))
    assert not (tmp_path / "work").exists()


def test_corpus_smaller_than_unique_tokens(study_yaml, usage_error):
    usage_error(["search", str(study_yaml(budget={"unique_tokens": 10**7}))], "10,676 tokens", "unique_tokens")


def test_auxiliary_too_small_for_the_largest_trial(study_yaml, usage_error, tmp_path):
    # paper.yaml reaches E = 32 and r = 0.75: T = 32·2000/0.25 = 256k tokens, r·T ≫ 33k auxiliary bytes.
    err = usage_error(["search", str(study_yaml())], "auxiliary")
    assert "0.75" in err
    assert not (tmp_path / "work" / "optuna.db").exists()


def test_unknown_space_param(study_yaml, usage_error, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("params:\n  optim.learnin_rate: {type: float, low: 0.001, high: 0.01}\n")
    usage_error(["search", str(study_yaml(search={"space": str(space)}))], "learnin_rate")


def test_overrides_are_typed_and_paths_absolute(study_yaml):
    cfg = load_config(study_yaml(), ["search.n_trials=5", "optim.learning_rate=1e-2", "model.parametrization=sp"])
    assert cfg.search.n_trials == 5 and cfg.optim.learning_rate == 0.01 and cfg.model.parametrization == "sp"
    assert Path(cfg.data.target).is_absolute() and Path(cfg.data.cache_dir) == default_cache_dir()


def test_impossible_train_token_cap(study_yaml, usage_error, tmp_path):
    # The smallest trial of paper.yaml is E = 1, r = 0: T = 2000 tokens, above a cap of 1000.
    usage_error(["search", str(study_yaml()), "search.max_train_tokens=1000"], "max_train_tokens", "2,000")
    assert not (tmp_path / "work").exists()


def test_a_key_outside_its_section_gets_a_hint_and_its_source(study_yaml, usage_error):
    err = usage_error(["search", str(study_yaml()), "n_trials=3"], "unknown key 'n_trials'", "'search.n_trials'")
    assert "command line" in err
    err = usage_error(["search", str(study_yaml(search={"n_trails": 3}))], "'search.n_trials'")
    assert "study.yaml" in err and "command line" not in err


def test_search_takes_verbose_and_leaves_the_environment_as_it_was(study_yaml, usage_error, monkeypatch):
    monkeypatch.delenv("AUTOMIX_VERBOSE", raising=False)
    # Parsed as a flag (not an unknown argument): the run gets as far as the bad override.
    usage_error(["search", str(study_yaml()), "--verbose", "n_trials=3"], "'search.n_trials'")
    assert "AUTOMIX_VERBOSE" not in os.environ


def test_python_wording_becomes_flags_on_the_command_line(study_yaml, usage_error, monkeypatch):
    from automix.cli import _analysis

    def refuse(args):
        raise ConfigError("the search stopped; fix the objective, then run again with resume=True")

    monkeypatch.setattr(_analysis, "_report", refuse)
    usage_error(["report", str(study_yaml())], "run again with --resume")
