"""Where the tracking target comes from when ``connect()`` is given none.

Order: ``MLMAGIC_TRACKING_URI``, ``MLFLOW_TRACKING_URI``, a config file (``[tool.mlmagic]`` in
a ``pyproject.toml`` of the working directory or a parent, else ``~/.mlmagic/config.toml``),
then an Azure ML workspace ``config.json`` (the file the portal and both Azure ML SDKs write, in
the working directory, its ``.azureml`` folder, or a parent's), then, in a Databricks runtime,
the workspace's own MLflow (``databricks``: a file on the driver's disk would be lost with the
cluster), else the embedded default. A
config file may also name the experiment, and an Azure ML workspace with the keys of
``config.json`` (``subscription_id``, ``resource_group``, ``workspace_name``) and ``auth``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: Databricks Runtime 13.3 and 14.3 LTS
    import tomli as tomllib

from mlmagic.base.errors import ConfigError

URI_VARIABLES = ("MLMAGIC_TRACKING_URI", "MLFLOW_TRACKING_URI")
EMBEDDED = "embedded default"
DATABRICKS_RUNTIME = "DATABRICKS_RUNTIME_VERSION"  # set in every Databricks runtime
# What a config file names besides MlMagic's settings (the traitlets, set from the same table).
CONNECTION_KEYS = ("tracking_uri", "experiment", "subscription_id", "resource_group",
                   "workspace_name", "auth", "autoconnect", "track")
TRACK_MODES = ("both", "azureml")  # where tracked runs go besides (or instead of) the store
# Defaults that more than one layer needs, written once.
DEFAULT_TIMEOUT = 8.0  # seconds an interactive call waits for the store
DEFAULT_MAX_RUNS = 1000  # runs a listing returns when no maximum is given


@dataclass(frozen=True)
class Settings:
    """What to connect to, and where that choice came from."""

    tracking_uri: str | None
    experiment: str | None = None
    origin: str = EMBEDDED
    options: dict = field(default_factory=dict)
    workspace: dict | None = None  # an Azure ML workspace, as the keys of its config.json


def mlmagic_home() -> Path:
    """The per-user folder of mlmagic, ``~/.mlmagic``: config, journal, leases, job logs."""
    return Path.home() / ".mlmagic"


def user_config_path() -> Path:
    """The per-user config file, ``~/.mlmagic/config.toml``."""
    return mlmagic_home() / "config.toml"


def find_config(start: Path | None = None) -> tuple[Path, dict] | None:
    """Find the nearest config: a pyproject.toml with ``[tool.mlmagic]``, else the user file."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            table = _read_toml(pyproject).get("tool", {}).get("mlmagic")
            if table is not None:
                return pyproject, _checked(table, pyproject)
    user_file = user_config_path()
    if user_file.is_file():
        return user_file, _checked(_read_toml(user_file), user_file)
    return None


def resolve_settings(
    start: Path | None = None, environ: Mapping[str, str] | None = None, *,
    workspaces: bool = True,
) -> Settings:
    """Resolve the tracking target from the environment, the config files and the default;
    without ``workspaces``, passing over every Azure ML workspace they name (the store that
    --track both mirrors into one)."""
    environ = os.environ if environ is None else environ
    found = find_config(start)
    table = found[1] if found else {}
    experiment = table.get("experiment")
    for variable in URI_VARIABLES:
        if environ.get(variable) and (workspaces or not _names_workspace(environ[variable])):
            return Settings(environ[variable], experiment, variable, table)
    uri = table.get("tracking_uri") if found else None
    if uri and (workspaces or not _names_workspace(uri)):
        return Settings(uri, experiment, str(found[0]), table)
    if found and table.get("workspace_name") and workspaces:
        return Settings(None, experiment, str(found[0]), table, workspace=table)
    workspace_config = find_workspace_config(start) if workspaces else None
    if workspace_config:
        return Settings(None, experiment, str(workspace_config[0]), table,
                        workspace=workspace_config[1])
    if environ.get(DATABRICKS_RUNTIME):
        return Settings("databricks", experiment, "the Databricks runtime", table)
    return Settings(None, experiment, EMBEDDED, table)


def _names_workspace(uri: str) -> bool:
    return uri.lower().startswith("azureml:")


def databricks_runtime(environ: Mapping[str, str] | None = None) -> tuple[int, int] | None:
    """The Databricks Runtime this Python runs in, as (major, minor); None outside one, and
    for a version that is no number (serverless compute gives ``client.N.M``)."""
    environ = os.environ if environ is None else environ
    parts = (environ.get(DATABRICKS_RUNTIME) or "").split(".")
    if not parts[0].isdigit():
        return None
    minor = parts[1] if len(parts) > 1 and parts[1].isdigit() else "0"
    return int(parts[0]), int(minor)


def find_workspace_config(start: Path | None = None) -> tuple[Path, dict] | None:
    """The nearest Azure ML workspace ``config.json`` and its keys: in ``start`` or a parent,
    directly or in its ``.azureml`` folder (where the Azure ML SDKs look). Other config.json
    files are passed over."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        for candidate in (folder / "config.json", folder / ".azureml" / "config.json"):
            config = _workspace_config_in(candidate)
            if config is not None:
                return candidate, config
    return None


def read_workspace_config(path: Path) -> dict:
    """The keys of a workspace config.json; ConfigError if it is missing or unreadable."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"no workspace config at {path}. Download config.json from the workspace's page "
            "in the Azure portal, or give --workspace, --subscription and --resource-group."
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}. Download it again.") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path} is not a workspace config (a JSON object). Download it again.")
    return config


def _workspace_config_in(path: Path) -> dict | None:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return config if isinstance(config, dict) and "workspace_name" in config else None


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}. Fix or remove that file.") from None


def _checked(table: object, path: Path) -> dict:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: the mlmagic settings must be a table of key = value lines.")
    for key in ("tracking_uri", "experiment"):
        if key in table and not isinstance(table[key], str):
            raise ConfigError(f"{path}: '{key}' must be a string, e.g. {key} = \"...\".")
    if "track" in table and table["track"] not in TRACK_MODES:
        raise ConfigError(f"{path}: track must be one of {', '.join(TRACK_MODES)}, e.g. "
                          'track = "both".')
    return table
