"""On/off settings read as users write them: on/off, true/false, yes/no, in a file and on the command line.

YAML reads `on`, `yes` and `true` (and their capitalised forms) as booleans, so `compile: on` reached
the `Literal["auto", "on", "off"]` as True and was refused. Every on/off setting of the study config
is found by its type, so one added later is checked too.
"""

from __future__ import annotations

from typing import Literal, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel

from automix.config import StudyConfig, load_config
from automix.errors import ConfigError
from trainer.config import TrainConfig

ON = ["on", "ON", "On", "true", "True", "yes", "Yes", "'on'", "'true'", "'yes'"]
OFF = ["off", "OFF", "Off", "false", "False", "no", "No", "'off'", "'false'", "'no'"]
WORDS = [(word, True) for word in ON] + [(word, False) for word in OFF]
BASE = {"study": "forms", "data": {"target": "t", "target_valid": "v"}, "budget": {"unique_tokens": 1000}}


def _is_switch(annotation) -> bool:
    """A bool, or a Literal with "on" and "off", anywhere in the annotation."""
    if annotation is bool:
        return True
    if get_origin(annotation) is Literal:
        return {"on", "off"} <= set(get_args(annotation))
    return any(_is_switch(arg) for arg in get_args(annotation))


def _switches(model: type[BaseModel], prefix: str = "") -> list[str]:
    """The dotted keys of every on/off setting of `model` and its sections."""
    keys = []
    for name, info in model.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            keys += _switches(info.annotation, f"{prefix}{name}.")
        elif _is_switch(info.annotation):
            keys.append(f"{prefix}{name}")
    return keys


SWITCHES = _switches(StudyConfig)


def _value(config: StudyConfig, key: str):
    for part in key.split("."):
        config = getattr(config, part)
    return config


def _means(value, on: bool) -> bool:
    return value in ((True, "on") if on else (False, "off"))


@pytest.fixture
def write_study(tmp_path):
    """A study config as a user types it: `key: WORD` in its section, the word left for YAML to read."""

    def write(key: str = "", word: str = "") -> str:
        raw = yaml.safe_load(yaml.safe_dump(BASE))
        if key:
            section, _, leaf = key.rpartition(".")
            (raw.setdefault(section, {}) if section else raw)[leaf] = "WORD"
        path = tmp_path / "study.yaml"
        path.write_text(yaml.safe_dump(raw).replace("WORD", word))
        return str(path)

    return write


def test_the_switches_are_found():
    assert {"compile", "data.mc_every_eval"} <= set(SWITCHES)


@pytest.mark.parametrize("key", SWITCHES)
@pytest.mark.parametrize(("word", "on"), WORDS)
def test_a_switch_in_a_file(write_study, key, word, on):
    assert _means(_value(load_config(write_study(key, word)), key), on)


@pytest.mark.parametrize("key", SWITCHES)
@pytest.mark.parametrize(("word", "on"), WORDS)
def test_a_switch_on_the_command_line(write_study, key, word, on):
    assert _means(_value(load_config(write_study(), [f"{key}={word}"]), key), on)


@pytest.mark.parametrize(("word", "on"), WORDS)
def test_compile_reaches_every_trial_as_on_or_off(write_study, word, on):
    assert load_config(write_study(), [f"compile={word}"]).base_train_config().compile == ("on" if on else "off")


def test_the_trainer_config_and_python_take_booleans_too():
    base = {"data": {"target": "t", "target_valid": "v"}, "budget": {"unique_tokens": 1000}}
    assert TrainConfig.model_validate({**base, "compile": True}).compile == "on"
    assert TrainConfig.model_validate({**base, "compile": "auto"}).compile == "auto"


def test_other_words_are_refused_in_one_line_naming_the_choices(write_study):
    with pytest.raises(ConfigError) as err:
        load_config(write_study(), ["compile=sometimes"])
    message = str(err.value)
    assert "\n" not in message and "compile" in message and "'auto', 'on' or 'off'" in message


def test_precision_is_a_study_setting_that_reaches_every_trial(write_study):
    assert load_config(write_study("precision", "fp32")).base_train_config().precision == "fp32"


def test_a_study_config_is_the_trainers_run_settings_plus_how_to_search():
    """`StudyConfig` extends the trainer's `RunSettings`: a section or setting added there is a study key too,
    and `base_train_config` carries every one of them."""
    from trainer.config import RunSettings

    config = StudyConfig.model_validate({**BASE, "seed": 3, "eval_every_tokens": 500, "compile": "off"})
    assert set(RunSettings.model_fields) <= set(StudyConfig.model_fields)
    base = config.base_train_config()
    assert base.model_dump(include=set(RunSettings.model_fields)) == config.model_dump(
        include=set(RunSettings.model_fields)
    )
    assert (base.seed, base.eval_every_tokens, base.compile, base.out_dir) == (3, 500, "off", None)


@pytest.mark.parametrize("word", OFF)
def test_scheduler_off_means_none_in_a_file_and_on_the_command_line(write_study, word):
    """`scheduler: off` reached the Literal as False ("got False"); off, false and no all mean none."""
    assert load_config(write_study("search.scheduler", word)).search.scheduler == "none"
    assert load_config(write_study(), [f"search.scheduler={word}"]).search.scheduler == "none"
