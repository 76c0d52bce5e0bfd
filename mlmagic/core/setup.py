"""Hands-free setup: loading mlmagic in every IPython session and kernel of a profile,
connecting on load when a config file names the backend, and an Azure Databricks cluster
init script that points a cluster's MLflow at an Azure ML workspace."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlmagic.azure.init_script import InitScript

BEGIN = "# >>> mlmagic autoload >>>"
END = "# <<< mlmagic autoload <<<"
AUTOLOAD_BLOCK = (
    f"{BEGIN}\n"
    "# added by `python -m mlmagic autoload`; `python -m mlmagic autoload off` removes it\n"
    "c.InteractiveShellApp.extensions.append('mlmagic')\n"
    f"{END}\n"
)


def profile_config_path(profile: str = "default", ipython_dir: str | Path | None = None) -> Path:
    """The ``ipython_config.py`` of an IPython profile (``IPYTHONDIR`` or ~/.ipython); both
    terminal IPython and Jupyter's IPython kernels read it."""
    from IPython.paths import get_ipython_dir

    folder = Path(ipython_dir) if ipython_dir else Path(get_ipython_dir())
    return folder / f"profile_{profile}" / "ipython_config.py"


def autoload(enable: bool = True, *, profile: str = "default",
             ipython_dir: str | Path | None = None) -> Path:
    """Add mlmagic to the profile's extensions, so every IPython session and notebook kernel
    has the magics without ``%load_ext``; ``enable=False`` removes it again. Safe to repeat;
    the rest of the file is left as it is. Returns the config file."""
    path = profile_config_path(profile, ipython_dir)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    kept = _without_block(text)
    if enable:
        path.parent.mkdir(parents=True, exist_ok=True)
        separator = "" if not kept or kept.endswith("\n") else "\n"
        path.write_text(kept + separator + AUTOLOAD_BLOCK, encoding="utf-8")
    elif kept != text:
        path.write_text(kept, encoding="utf-8")
    return path


def autoload_enabled(profile: str = "default", ipython_dir: str | Path | None = None) -> bool:
    """Whether the profile loads mlmagic on start."""
    path = profile_config_path(profile, ipython_dir)
    return path.exists() and BEGIN in path.read_text(encoding="utf-8")


def _without_block(text: str) -> str:
    start = text.find(BEGIN)
    if start < 0:
        return text
    end = text.find(END, start)
    end = len(text) if end < 0 else end + len(END)
    return text[:start] + text[end:].removeprefix("\n")


def connect_from_config() -> None:
    """On ``%load_ext``: connect when a config file names the backend (``tracking_uri`` or a
    workspace) and does not say ``autoconnect = false``. Never fails: a problem is one line,
    and the magics stay loaded. Nothing is imported when no config file names a backend."""
    from mlmagic.base.config import find_config
    from mlmagic.base.display import notify
    from mlmagic.base.errors import MlmagicError
    from mlmagic.base.secrets import error_line

    try:
        found = find_config()
    except MlmagicError as error:
        notify(f"{error} The magics are loaded; %aml_connect works once the file is fixed.")
        return
    if found is None:
        return
    path, table = found
    if not (table.get("tracking_uri") or table.get("workspace_name")):
        return
    if table.get("autoconnect", True) is False:
        return
    from mlmagic.core.connection import connect

    try:
        connection = connect()
    except Exception as error:  # a kernel must start whatever the backend does
        notify(f"could not connect as {path} says: {error_line(error)} The magics are loaded; "
               "%aml_connect connects when the backend is back.")
        return
    notify(f"connected to {connection.backend.name} ({path.name}), experiment "
           f"'{connection.experiment_name}'.")


def init_script(
    path: str | Path = "mlmagic-init.sh",
    *,
    workspace: str | None = None,
    subscription: str | None = None,
    resource_group: str | None = None,
    region: str | None = None,
) -> InitScript:
    """Write an Azure Databricks cluster init script (bash) that drops the workspace's
    ``config.json`` into the notebooks' working directory and exports ``MLFLOW_TRACKING_URI``
    (the workspace's ``azureml://`` URI) for the cluster. Names left out come from the Azure
    ML workspace in use. No secret goes into the script: the cluster signs in with its own
    identity. ``MLMAGIC_INIT_ROOT`` moves every target path under a root (for testing).
    Returns what was written, shown as a card; ``os.fspath()`` of it is the script's path."""
    from mlmagic.azure.init_script import write_init_script

    return write_init_script(path, workspace=workspace, subscription=subscription,
                             resource_group=resource_group, region=region,
                             connected=_connected_workspace())


def _connected_workspace() -> dict:
    from mlmagic.core.session import current_session

    connection = current_session().connection
    if connection is None or connection.backend.workspace is None:
        return {}
    ref, facts = connection.backend.workspace.ref, dict(connection.backend.facts)
    return {**ref.config(), "region": facts.get("region")}
