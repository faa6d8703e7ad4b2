"""Study configs and search spaces: YAML + `key=value` overrides → validated, typed objects."""

from automix.config._space import SearchSpace, load_space, parse_space
from automix.config._study import (
    SearchConfig,
    StudyConfig,
    TrackingConfig,
    default_cache_dir,
    format_validation_error,
    load_config,
)

__all__ = [
    "SearchConfig",
    "SearchSpace",
    "StudyConfig",
    "TrackingConfig",
    "default_cache_dir",
    "format_validation_error",
    "load_config",
    "load_space",
    "parse_space",
]
