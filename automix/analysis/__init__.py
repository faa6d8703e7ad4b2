"""Read-only analyses of a finished study: report, mix-vs-tune comparison, effective-data multiplier.

They read the study and its MLflow runs through `automix.study` and `automix.tracking`; re-training
(`compare`, `multiplier`) runs the trainer in worker processes. No Ray.
"""

from automix.analysis._compare import compare_levers, summary_table, welch_contrast
from automix.analysis._multiplier import measure
from automix.analysis._readback import StudyData, load_study_data
from automix.analysis._report import build_report

__all__ = [
    "StudyData",
    "build_report",
    "compare_levers",
    "load_study_data",
    "measure",
    "summary_table",
    "welch_contrast",
]
