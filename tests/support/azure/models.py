"""The files of a workspace's registered models, as the services that deploy them find them
in the blob store."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any


def model_folder(emulator: Any, name: str, version: str) -> Path | None:
    """The folder holding the files of the registered model ``name`` version ``version``;
    None if the workspace has no such version."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri=emulator.mlflow_url)
    try:
        source = client.get_model_version(name, str(version)).source
    except MlflowException:
        return None
    return folder_of(emulator.blobs, source)


def folder_of(blobs: Path, source: str) -> Path:
    """Where a model version's ``source`` (``models:/ID``, ``runs:/RUN/PATH`` or a run's
    artifact URI) keeps its files: logged models are stored like runs, under their id."""
    runs = blobs / "ExperimentRun"
    if source.startswith("models:/"):
        return runs / f"dcid.{source.removeprefix('models:/').strip('/')}"
    if source.startswith("runs:/"):
        run_id, _, path = source.removeprefix("runs:/").partition("/")
        return runs / f"dcid.{run_id}" / path
    found = re.search(r"/runs/([^/]+)/artifacts/?(.*)$", source)
    if found is None:
        raise ValueError(f"the emulator cannot find the model files of {source}")
    return runs / f"dcid.{found[1]}" / found[2]


def requirements_of(folder: Path) -> list[str]:
    """The pip requirements an MLflow model was logged with (its requirements.txt)."""
    listed = folder / "requirements.txt"
    return listed.read_text().splitlines() if listed.is_file() else []


def unavailable(requirements: list[str]) -> list[str]:
    """The requirements no package index would satisfy. The emulator's index is what is
    installed here (the machine is offline): a distribution not installed cannot be found."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import InvalidRequirement, Requirement

    missing = []
    for line in requirements:
        try:
            name = Requirement(line.split("#")[0].strip()).name
        except InvalidRequirement:  # blank lines, comments, pip options
            continue
        try:
            distribution(name)
        except PackageNotFoundError:
            missing.append(name)
    return missing


def build_log(missing: list[str]) -> str:
    """What pip says of requirements it cannot satisfy."""
    return " ".join(f"ERROR: Could not find a version that satisfies the requirement {name} "
                    f"(from versions: none) ERROR: No matching distribution found for {name}"
                    for name in missing)


def is_mlflow_model(folder: Path | None) -> bool:
    """Whether a model folder holds an MLflow model (its MLmodel file)."""
    return folder is not None and (folder / "MLmodel").is_file()
