"""The Azure Databricks cluster init script: it points a cluster's MLflow at an Azure ML
workspace (the workspace's ``config.json`` for the notebooks, ``MLFLOW_TRACKING_URI`` for every
process) and holds no secret: the cluster signs in with its own identity."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from mlmagic.azure.workspace import CONFIG_KEYS, WorkspaceRef, tracking_uri_of
from mlmagic.base.display import Card, ShownAsCardPath, card
from mlmagic.base.errors import InvalidInput

INIT_ROOT_VARIABLE = "MLMAGIC_INIT_ROOT"
DRIVER_FOLDER = "/databricks/driver"  # a Databricks notebook's working directory
SPARK_ENV = "/databricks/spark/conf/spark-env.sh"  # the cluster's environment variables


def write_init_script(path: str | Path, *, workspace: str | None, subscription: str | None,
                      resource_group: str | None, region: str | None,
                      connected: dict) -> InitScript:
    """Write the init script for the workspace named (names left out come from
    ``connected``, the keys of the workspace in use, with its region); see
    :func:`mlmagic.core.setup.init_script`."""
    names = {key: given or connected.get(key) for key, given
             in zip(CONFIG_KEYS, (subscription, resource_group, workspace), strict=True)}
    flags = {"workspace_name": "--workspace", "subscription_id": "--subscription",
             "resource_group": "--resource-group"}
    missing = [flag for key, flag in flags.items() if not (names[key] or "").strip()]
    if missing:
        raise InvalidInput(f"{' and '.join(missing)} missing: the init script needs "
                           "--workspace, --subscription and --resource-group (or a connection "
                           "to the workspace).")
    ref = WorkspaceRef.from_config(names, "the init script")
    if not region and connected.get("workspace_name") == ref.name:
        region = connected.get("region")
    if not region:
        raise InvalidInput("--region is missing (e.g. westeurope): the tracking URI names the "
                           "workspace's region. Or connect to the workspace first.")
    if not re.fullmatch(r"[a-z0-9]+", region.strip().lower()):
        raise InvalidInput(f"'{region}' is not an Azure region name. Example: westeurope")
    target = Path(path).expanduser().resolve()
    if target.is_dir() or not target.parent.is_dir():
        raise InvalidInput(f"{target} is a folder or in a folder that does not exist; give "
                           "the script's file path, e.g. mlmagic-init.sh.")
    uri = tracking_uri_of(ref, region.strip())
    target.write_text(_script_text(json.dumps(ref.config(), indent=2), uri), encoding="utf-8")
    target.chmod(0o755)
    return InitScript(target, ref.name, uri)


@dataclass(frozen=True, repr=False)
class InitScript(ShownAsCardPath):
    """An init script written: its path, the workspace it points the cluster at, and the
    tracking URI it exports."""

    path: Path
    workspace: str
    tracking_uri: str

    def _card(self) -> Card:
        return card(f"init script written: {self.path}", ("workspace", self.workspace),
                    ("exports", f"MLFLOW_TRACKING_URI={self.tracking_uri}"),
                    ("next", "upload it as the cluster's init script (Compute > cluster > "
                             "Advanced options > Init scripts), then restart the cluster"))



def _script_text(config_json: str, tracking_uri: str) -> str:
    export = f"export MLFLOW_TRACKING_URI={shlex.quote(tracking_uri)}"
    return f"""#!/bin/bash
# Azure Databricks cluster init script, written by mlmagic (%aml_init_script).
# It points the cluster's MLflow at an Azure ML workspace: the workspace's config.json for
# the notebooks, and MLFLOW_TRACKING_URI for every process. It holds no secret; the cluster
# signs in with its own identity (managed identity or a service principal in its settings).
set -euo pipefail
ROOT="${{{INIT_ROOT_VARIABLE}:-}}"

mkdir -p "$ROOT{DRIVER_FOLDER}/.azureml"
cat > "$ROOT{DRIVER_FOLDER}/.azureml/config.json" <<'MLMAGIC_CONFIG'
{config_json}
MLMAGIC_CONFIG

mkdir -p "$(dirname "$ROOT{SPARK_ENV}")"
touch "$ROOT{SPARK_ENV}"
grep -qxF {shlex.quote(export)} "$ROOT{SPARK_ENV}" || \\
  echo {shlex.quote(export)} >> "$ROOT{SPARK_ENV}"
"""
