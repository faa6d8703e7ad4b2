"""MLflow's own system metrics on trial runs: CPU, memory, disk, network, and GPU where pynvml finds one.

One `SystemMetricsMonitor` per running trial samples the machine every 10 s (MLflow's default;
`MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL` sets it) and logs `system/*` metrics to the trial's run,
which the UI shows on the run's "System metrics" tab. The monitor runs in the driver, so the
numbers are those of the driver's machine: the trials' own on one machine, the driver's node on a
cluster. It needs psutil (an automix dependency); GPU metrics need nvidia-ml-py.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class SystemMetrics:
    """Starts and stops MLflow's system-metrics monitor of each trial run."""

    def __init__(self, uri: str):
        self.uri = uri
        self._monitors: dict = {}  # run id -> SystemMetricsMonitor

    def start(self, run_id: str) -> None:
        """Sample the machine into `run_id` until `stop(run_id)` (or the run ends)."""
        try:
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
        except ImportError as e:  # psutil missing: the search goes on without them
            log.warning("MLflow system metrics are off: %s (pip install psutil)", e)
            return
        monitor = SystemMetricsMonitor(run_id, tracking_uri=self.uri)
        monitor.start()
        self._monitors[run_id] = monitor

    def stop(self, run_id: str) -> None:
        """Log the last sample of `run_id` and stop its monitor (before the run is closed)."""
        monitor = self._monitors.pop(run_id, None)
        if monitor is not None:
            monitor.finish()

    def stop_all(self) -> None:
        """Stop every monitor still running (the search ends)."""
        for run_id in list(self._monitors):
            self.stop(run_id)
