"""The core of mlmagic: plain functions behind every magic, usable without IPython.

Names are loaded on first use, so importing one core module (as ``%load_ext`` does) does not
import them all.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Connection": "session",
    "Session": "session",
    "current_session": "session",
    "new_session": "session",
    "connect": "connection",
    "current_connection": "connection",
    "embedded_uri": "connection",
    "ensure_connected": "connection",
    "set_experiment": "connection",
    "status": "connection",
    "sync": "connection",
    "runs": "search",
    "experiments": "search",
    "metric_history": "search",
    "set_alias": "registry",
    "add_run_listener": "tracking",
    "models": "registry",
    "deploy": "deployment",
    "score": "scoring",
    "spark_session": "spark",
    "endpoints": "deployment",
    "endpoint_summary": "deployment",
    "predict": "deployment",
    "undeploy": "deployment",
    "register": "registry",
    "resolve_model": "registry",
    "version_summary": "registry",
    "last_run": "tracking",
    "last_run_summary": "tracking",
    "last_registered": "tracking",
    "log_variables": "tracking",
    "run_summary": "tracking",
    "running_summary": "tracking",
    "track": "tracking",
    "submit": "remote",
    "jobs": "remote",
    "job": "remote",
    "show": "inspection",
    "compare": "inspection",
    "reproduce": "reproduction",
    "download_artifact": "inspection",
    "workspace": "inspection",
    "databricks_display": "notebook",
    "autoload": "setup",
    "init_script": "setup",
}
__all__ = sorted(_EXPORTS)
# The ones ``import mlmagic`` offers as its own (``mlmagic.connect``, ...).
PUBLIC = (
    "connect", "track", "runs", "last_run", "status", "set_experiment", "sync", "register",
    "models", "resolve_model", "deploy", "endpoints", "predict", "undeploy", "score",
    "submit", "jobs", "show", "compare", "download_artifact", "workspace", "autoload",
    "init_script", "new_session", "experiments", "metric_history", "set_alias",
    "add_run_listener", "reproduce",
)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"mlmagic.core.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'mlmagic.core' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
