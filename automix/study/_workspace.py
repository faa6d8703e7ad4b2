"""Where one study lives: its work directory, Optuna storage, MLflow store, experiment and artifacts.

Every command that opens a study (`search`, `report`, `compare`, `multiplier`, `transfer`,
`export`, `ui`) goes through a `Workspace`; no other code builds these paths or URLs, so a study
kept in PostgreSQL or a journal file is read back exactly where the search wrote it. A work
directory belongs to the first study that searched in it (`study.json`): `best.json`, `trials/`
and the checkpoints in it are that study's, so another study is refused there before anything is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import optuna
from optuna.storages import BaseStorage

from automix.config._study import StudyConfig
from automix.errors import ConfigError
from automix.study._storage import DEFAULT_RETRY_S, is_journal, open_storage
from trainer.atomic import write_json

OWNER_FILE = "study.json"


@dataclass(frozen=True)
class Workspace:
    """The work directory, storage URL, tracking URI and experiment of one study.

    Build it with `Workspace.from_config(config)` (what every command does), `Workspace.of(study,
    ...)` (a custom objective's study) or `Workspace.at(work_dir)` (whichever study owns a folder).

    Example:
        >>> ws = Workspace.from_config(load_config("examples/ar_en_cpu.yaml"))  # doctest: +SKIP
        >>> ws.trial_dir(3), ws.tracking_uri  # doctest: +SKIP
        >>> study = ws.load_study()  # doctest: +SKIP
    """

    study: str
    work_dir: Path
    storage_url: str
    tracking_uri: str
    experiment: str
    storage_retry_s: float = DEFAULT_RETRY_S

    @classmethod
    def of(
        cls,
        study: str,
        work_dir: str | Path | None = None,
        storage: str | None = None,
        tracking_uri: str | None = None,
        experiment: str | None = None,
        storage_retry_s: float = DEFAULT_RETRY_S,
    ) -> Workspace:
        """Fill in the defaults: `runs/<study>`, sqlite files in it, the experiment named after the study."""
        work = Path(work_dir or Path("runs") / study).expanduser().resolve()
        return cls(
            study=study,
            work_dir=work,
            storage_url=_storage_url(storage, work),
            tracking_uri=tracking_uri or f"sqlite:///{work / 'mlflow.db'}",
            experiment=experiment or study,
            storage_retry_s=storage_retry_s,
        )

    @classmethod
    def from_config(cls, config: StudyConfig, storage: str | None = None) -> Workspace:
        """The workspace a study config names; `storage` (the `--storage` flag) overrides its `storage` key."""
        return cls.of(
            config.study,
            config.work_dir,
            storage or config.storage,
            config.tracking.uri,
            config.tracking.experiment,
            config.storage_retry_s,
        )

    @property
    def tracking_server(self) -> bool:
        """Whether MLflow is a server (it stores and serves artifacts itself) rather than a local store."""
        return self.tracking_uri.startswith(("http://", "https://"))

    @classmethod
    def at(cls, work_dir: str | Path) -> Workspace:
        """The workspace of the study that owns `work_dir` (`study.json` or `best.json`), else named after it."""
        workspace = cls.of(Path(work_dir).expanduser().resolve().name, work_dir)
        owner = workspace.owner()
        return workspace if owner in (None, workspace.study) else cls.of(owner, work_dir)

    def __getstate__(self) -> dict:
        # Ray ships a trial's objective, and with it `trial_dir`, to its workers: not the open storage.
        return {k: v for k, v in self.__dict__.items() if k != "storage"}

    @property
    def artifact_root(self) -> Path | None:
        """Where a local MLflow store keeps artifacts; None for a server, which keeps its own."""
        return None if self.tracking_server else self.work_dir / "mlartifacts"

    @property
    def trials_dir(self) -> Path:
        """One folder per trial: checkpoints, `result.json`, the final model."""
        return self.work_dir / "trials"

    def trial_dir(self, number: int) -> Path:
        """Trial `number`'s folder, `trials/NNNN`: the one place this name is made."""
        return self.trials_dir / f"{number:04d}"

    def best_trial_dir(self) -> Path | None:
        """The folder of the best trial that `best.json` names; None without one."""
        best = self.path("best.json")
        number = json.loads(best.read_text()).get("best_trial") if best.is_file() else None
        return None if number is None else self.trial_dir(number)

    def transfer_dir(self, number: int) -> Path:
        """Where `automix transfer` trains trial `number`'s settings at larger shapes: `transfer/trial-NNNN`."""
        return self.path("transfer") / f"trial-{number:04d}"

    def path(self, name: str) -> Path:
        """A file of the study in its work directory (`best.json`, `report.html`, `compare.json`, ...)."""
        return self.work_dir / name

    @property
    def shares_storage(self) -> bool:
        """Whether several drivers may write the study at once (a journal file or a database server)."""
        return not self.storage_url.startswith("sqlite")

    @cached_property
    def storage(self) -> BaseStorage:
        """The Optuna storage, opened once (a ConfigError in one line if it cannot be)."""
        return open_storage(self.storage_url, self.storage_retry_s)

    def storage_missing(self) -> bool:
        """Whether the study's sqlite or journal file does not exist yet (opening it would create it)."""
        return _missing_file(self.storage_url)

    def owner(self) -> str | None:
        """The study the work directory belongs to: `study.json`, else the study of its `best.json`."""
        for name, key in ((OWNER_FILE, "study"), ("best.json", "study")):
            path = self.path(name)
            if path.is_file():
                return json.loads(path.read_text()).get(key)
        return None

    def check_owner(self) -> None:
        """A ConfigError (writing nothing) if the work directory belongs to another study."""
        owner = self.owner()
        if owner is not None and owner != self.study:
            raise ConfigError(
                f"work_dir {self.work_dir} belongs to study '{owner}': give study '{self.study}' its own "
                f"(e.g. work_dir=runs/{self.study}), or open study={owner}"
            )

    def claim(self) -> None:
        """Mark the (existing) work directory as this study's; see `check_owner`."""
        self.check_owner()
        if not self.path(OWNER_FILE).is_file():
            write_json(self.path(OWNER_FILE), {"study": self.study})

    def load_study(self) -> optuna.Study:
        """The study as a search left it, for reading; a ConfigError if there is none, creating nothing."""
        self.check_owner()
        if self.storage_missing():
            raise ConfigError(
                f"no study at {self.storage_url}: run `automix search` with this config first "
                "(or set storage= to where the study is kept)"
            )
        try:
            return optuna.load_study(study_name=self.study, storage=self.storage)
        except KeyError:
            raise ConfigError(
                f"{self.storage_url} holds no study named '{self.study}': check the config's study name"
            ) from None

    def tracker(self):
        """The study's MLflow store and experiment (created if absent)."""
        from automix.tracking._store import Tracker  # MLflow loads only for the commands that track

        return Tracker.open(self.tracking_uri, self.experiment, self.artifact_root)


def _storage_url(storage: str | None, work: Path) -> str:
    if not storage:
        return f"sqlite:///{work / 'optuna.db'}"
    if is_journal(storage):
        return "journal:" + str(Path(storage.removeprefix("journal:")).expanduser().resolve())
    return storage


def _missing_file(url: str) -> bool:
    """A sqlite or journal study whose file does not exist (opening it would create an empty one)."""
    if url.startswith("sqlite:///"):
        return not Path(url.removeprefix("sqlite:///")).is_file()
    if is_journal(url):
        return not Path(url.removeprefix("journal:")).is_file()
    return False
