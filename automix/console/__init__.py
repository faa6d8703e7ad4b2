"""What a search prints: the live view or plain lines while trials run, the summary table at the end,
one format for both, and a quiet console (Ray's and MLflow's own output goes to WORK/automix.log)."""

from automix.console._callback import ProgressCallback, save_traceback, traceback_path
from automix.console._format import WIDTH, fit, fmt_duration, fmt_params, fmt_tokens, fmt_value, short
from automix.console._progress import SearchProgress, planned_tokens
from automix.console._quiet import LOG_NAME, VERBOSE_ENV, quiet_output
from automix.console._summary import print_summary

__all__ = [
    "LOG_NAME",
    "VERBOSE_ENV",
    "WIDTH",
    "ProgressCallback",
    "SearchProgress",
    "fit",
    "fmt_duration",
    "fmt_params",
    "fmt_tokens",
    "fmt_value",
    "planned_tokens",
    "print_summary",
    "quiet_output",
    "save_traceback",
    "short",
    "traceback_path",
]
