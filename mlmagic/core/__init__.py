"""The core of mlmagic: plain functions behind every magic, usable without IPython."""

from mlmagic.core.connection import (
    connect,
    current_connection,
    embedded_uri,
    ensure_connected,
    set_experiment,
    status,
)
from mlmagic.core.runs import runs
from mlmagic.core.state import Connection
from mlmagic.core.tracking import (
    last_run,
    last_run_summary,
    log_variables,
    run_summary,
    track,
)

__all__ = [
    "Connection",
    "connect",
    "current_connection",
    "embedded_uri",
    "ensure_connected",
    "last_run",
    "last_run_summary",
    "log_variables",
    "run_summary",
    "runs",
    "set_experiment",
    "status",
    "track",
]
