"""A trial's MLflow run holds what trained it and what came out, and reads back into a trial.

Beside the searched params (listed in the `automix.searched` tag) and each evaluation's metrics at
step = tokens: the effective trainer config (`config.*` params, `trial_params`), sizes as metrics
(`budget/*`, `model/*`: the UI filters by numbers, not param strings), each corpus as a dataset
input (`dataset_input`) and the artifacts (`log_trial_artifacts`). `read_trial_run` turns a run
back into its config, data and curves (`automix train --from-run`); docs/ui.md has the layout.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow.data.huggingface_dataset_source import HuggingFaceDatasetSource
from mlflow.data.meta_dataset import MetaDataset
from mlflow.data.sources import LocalArtifactDatasetSource
from mlflow.entities import Dataset, DatasetInput, InputTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from automix.errors import ConfigError
from automix.tracking._store import flatten

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CONFIG_PREFIX = "config."  # the effective trainer config's params
SEARCHED_TAG = "automix.searched"  # JSON list of the params the sampler chose
TOKENIZER_TAG = "automix.tokenizer"
CONTEXT_TAG = "mlflow.data.context"  # MLflow's own input tag: what the dataset was used for
ROLE_TAG = "automix.role"  # on a dataset input: target, auxiliary, target_valid or aux_valid
SOURCE_TAG = "automix.source"  # on a dataset input: the source exactly as the config names it
USED_TAG = "automix.used_tokens"  # on a dataset input: the tokens this trial reads of the corpus
CURVES = ("target_val_loss", "aux_val_loss", "train_loss")  # plotted beside the search's own metrics


class CorpusDataset(MetaDataset):
    """A corpus as an MLflow dataset: its source, content hash as digest, and size as profile."""

    def __init__(self, source: str, name: str, digest: str, profile: dict[str, int]):
        super().__init__(_source(source), name=name, digest=digest)
        self.sizes = profile

    @property
    def profile(self) -> dict[str, int]:
        """Tokens (an eos after each document) and documents of the whole corpus."""
        return self.sizes

    def to_dict(self) -> dict[str, str]:
        """MLflow's dataset fields, the profile among them (as JSON)."""
        return {**super().to_dict(), "profile": json.dumps(self.sizes)}


def _source(source: str):
    """A `hf:NAME[:CONFIG]` source as MLflow's Hugging Face source, a path as a local one."""
    if source.startswith("hf:"):
        name, _, config = source[3:].partition(":")
        return HuggingFaceDatasetSource(path=name, config_name=config or None, split="train")
    return LocalArtifactDatasetSource(source)


def dataset_input(dataset: dict[str, Any], tokenizer: str) -> DatasetInput:
    """A run input for one corpus record (role, source, digest, tokens, documents, used_tokens)."""
    # MLflow keeps one dataset per name and digest in an experiment: what differs between trials
    # (the tokens each uses) is a tag of the run's input, not part of the dataset's profile.
    profile = {k: int(dataset[k]) for k in ("tokens", "documents")}
    corpus = CorpusDataset(dataset["source"], dataset["role"], dataset["digest"], profile)
    context = "validation" if dataset["role"].endswith("_valid") else "training"
    tags = {CONTEXT_TAG: context, ROLE_TAG: dataset["role"], SOURCE_TAG: dataset["source"], TOKENIZER_TAG: tokenizer}
    tags[USED_TAG] = str(dataset["used_tokens"])
    return DatasetInput(Dataset(**corpus.to_dict()), tags=[InputTag(k, v) for k, v in tags.items()])


def trial_params(params: dict[str, Any], config: dict[str, Any] | None) -> dict[str, Any]:
    """A trial run's params: the searched ones by name, then the effective config under `config.`."""
    return {**params, **(flatten(config, CONFIG_PREFIX) if config else {})}


def curve_figure(history: list[dict[str, Any]], metrics: list[str], title: str) -> Figure:
    """The learning curve: the search's metrics and the losses against tokens trained."""
    from matplotlib.figure import Figure  # only where a trial ends: the UI and analyses need none

    fig = Figure(figsize=(6.4, 3.6), layout="tight")
    ax = fig.add_subplot()
    for key in dict.fromkeys([*metrics, *CURVES]):
        points = [(h["tokens"], h[key]) for h in history if _finite(h.get(key)) and "tokens" in h]
        if points:
            ax.plot(*zip(*points, strict=True), ":" if key == "train_loss" else "-", marker="o", ms=3, label=key)
    ax.set(xlabel="tokens", ylabel="value", title=title)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend()
    return fig


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def log_trial_artifacts(
    client: MlflowClient, run_id: str, result: dict[str, Any], metrics: list[str], files: list[str]
) -> None:
    """`result.json`, `curve.png` (from `result['history']`) and the checkpoint `files` under `model/`.

    `result.json` holds the params, final metrics, every evaluation, config and data; `files` are a
    COMPLETE trial's final checkpoint and tokenizer (unless `tracking.log_models: false`), as
    `automix export` reads them.

    Args:
        client: the store's client.
        run_id: the trial's run.
        result: what `result.json` holds; its `history` (one dict per evaluation) draws the curve.
        metrics: the search's metrics, drawn first.
        files: the checkpoint and tokenizer files to keep (those that exist), or none.
    """
    client.log_dict(run_id, result, "result.json")
    title = f"trial {result.get('trial')} ({result.get('state')})"
    client.log_figure(run_id, curve_figure(result.get("history", []), metrics, title), "curve.png")
    for path in files:
        if Path(path).is_file():
            client.log_artifact(run_id, path, "model")


@dataclass(frozen=True)
class TrialRun:
    """A trial as its MLflow run records it."""

    run_id: str
    name: str
    state: str | None  # COMPLETE, PRUNED or FAIL (the `state` tag)
    config: dict[str, Any]  # the effective trainer config, nested, values parsed back from params
    datasets: list[dict[str, str]]  # role, source and digest of each corpus input
    tokenizer: str | None


def read_trial_run(uri: str, run_id: str) -> TrialRun:
    """Read a trial's run back from the store at `uri`; a ConfigError if it is not one automix logged.

    Args:
        uri: the tracking URI of the store holding the run.
        run_id: the run's id (the UI shows it on the run's page).

    Returns:
        The run's effective config (as a nested dict of parsed values), datasets and tokenizer.
    """
    try:
        run = MlflowClient(tracking_uri=uri).get_run(run_id)
    except MlflowException as e:
        raise ConfigError(f"no MLflow run {run_id} in {uri} ({e.error_code}): check the run id and the store") from None
    flat = {k.removeprefix(CONFIG_PREFIX): v for k, v in run.data.params.items() if k.startswith(CONFIG_PREFIX)}
    if not flat:
        raise ConfigError(
            f"run {run_id} ({run.info.run_name}) holds no effective config (config.* params): it is not a "
            "trial run, or an automix before 2026-12 logged it"
        )
    datasets = [{t.key: t.value for t in d.tags} | {"digest": d.dataset.digest} for d in run.inputs.dataset_inputs]
    datasets = [{"role": d[ROLE_TAG], "source": d[SOURCE_TAG], "digest": d["digest"]} for d in datasets]
    return TrialRun(
        run_id,
        run.info.run_name,
        run.data.tags.get("state"),
        unflatten(flat),
        datasets,
        run.data.tags.get(TOKENIZER_TAG),
    )


def metric_history(uri: str, run_id: str, key: str) -> dict[int, float]:
    """A run's values of metric `key` by step (tokens)."""
    return {m.step: m.value for m in MlflowClient(tracking_uri=uri).get_metric_history(run_id, key)}


def unflatten(flat: dict[str, str]) -> dict[str, Any]:
    """{'optim.lr': '0.1'} → {'optim': {'lr': '0.1'}}, with None and JSON lists and dicts parsed back
    (how `Tracker` logs them); other values stay strings for the config's own validation to type."""
    tree: dict[str, Any] = {}
    for dotted, text in flat.items():
        *parents, leaf = dotted.split(".")
        node = tree
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = _parse(text)
    return tree


def _parse(text: str) -> Any:
    if text == "None":
        return None
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text
