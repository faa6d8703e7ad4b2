"""MLflow stores: a new sqlite store is a copy of one migrated template, and still a real MLflow store."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from automix.config._study import default_cache_dir
from automix.tracking._store import Tracker, seed_sqlite_store


def default_tracking_uri(work_dir) -> str:
    """The store `automix.Workspace` gives a work directory."""
    return f"sqlite:///{work_dir / 'mlflow.db'}"


def _runs(uri: str, experiment: str) -> list[str]:
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else [r.info.run_name for r in client.search_runs([found.experiment_id])]


def test_new_stores_are_independent_copies_of_one_template(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    one = Tracker(default_tracking_uri(first), "study", first / "art")
    templates = list((default_cache_dir() / "mlflow").glob("empty-store-*.db"))
    assert len(templates) == 1
    one.end(one.start_parent("search-a", {"x": 1}, {}), "FINISHED")

    two = Tracker(default_tracking_uri(second), "study", second / "art")  # from the template, not from `first`
    two.end(two.start_parent("search-b", {"x": 2}, {}), "FINISHED")
    assert _runs(default_tracking_uri(first), "study") == ["search-a"]
    assert _runs(default_tracking_uri(second), "study") == ["search-b"]
    # MLflow verifies the schema revision on open: the copy is at its head, with its default experiment.
    names = {e.name for e in MlflowClient(tracking_uri=default_tracking_uri(second)).search_experiments()}
    assert names == {"Default", "study"}


def test_an_existing_store_is_never_replaced(tmp_path):
    uri = default_tracking_uri(tmp_path)
    tracker = Tracker(uri, "study", tmp_path / "art")
    tracker.end(tracker.start_parent("kept", {}, {}), "FINISHED")
    seed_sqlite_store(uri)
    Tracker(uri, "study", tmp_path / "art")
    assert _runs(uri, "study") == ["kept"]
