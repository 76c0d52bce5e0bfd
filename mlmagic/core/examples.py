"""A model's example request, one row in MLflow's serving format: what an endpoint card's
curl line sends. From the model's own ``serving_input_example.json`` (MLflow writes it next to
the input example), else a row built from the signature's input schema, else None."""

from __future__ import annotations

import json
import shlex
import tempfile
from pathlib import Path

from mlmagic.base.env import temporary_env
from mlmagic.base.library_log import NO_PROGRESS_BARS

PLACEHOLDER = '{"dataframe_split": {"columns": ["<column>", ...], "data": [[<value>, ...]]}}'
AZURE_PLACEHOLDER = '{"input_data": {"columns": ["<column>", ...], "data": [[<value>, ...]]}}'
# A value of each MLflow column type that the type's parser takes.
_SAMPLE_VALUES = {"double": 0.0, "float": 0.0, "long": 0, "integer": 0, "boolean": False,
                  "string": "", "binary": "", "datetime": "2024-01-01T00:00:00"}


def sample_request(model_uri: str) -> str | None:
    """The JSON body of one request that ``model_uri``'s endpoint answers: the first row of
    its serving input example, or a row of typical values from its signature; None when the
    model has neither (or they cannot be read)."""
    from mlflow.exceptions import MlflowException
    from mlflow.models import get_model_info

    try:
        info = get_model_info(model_uri)
        saved = (info.saved_input_example_info or {}).get("serving_input_path")
        request = _saved_request(model_uri, saved) if saved else None
        request = request or _signature_request(info.signature)
    except (MlflowException, OSError, ValueError, TypeError, KeyError):
        return None
    return json.dumps(_one_row(request)) if request else None


def curl_line(url: str, body: str | None, *, protocol: str = "mlflow",
              key_variable: str | None = None) -> str:
    """A shell line that posts ``body`` (a placeholder without one) to ``url``: in MLflow's
    serving format, or in Azure ML's (``protocol="input_data"``); signed with the key the
    environment variable ``key_variable`` holds, so the line itself holds no key."""
    if protocol == "input_data":
        body = _as_input_data(body) or AZURE_PLACEHOLDER
    signed = f' -H "Authorization: Bearer ${key_variable}"' if key_variable else ""
    return (f"curl -s {shlex.quote(url)} -H 'Content-Type: application/json'{signed} "
            f"-d {shlex.quote(body or PLACEHOLDER)}")


def _as_input_data(body: str | None) -> str | None:
    """A ``dataframe_split`` request in Azure ML's ``input_data`` form, or None."""
    split = json.loads(body).get("dataframe_split") if body else None
    if not isinstance(split, dict):
        return None
    return json.dumps({"input_data": {"columns": split.get("columns"), "data": split["data"]}})


def _saved_request(model_uri: str, path: str) -> dict | None:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    with tempfile.TemporaryDirectory() as folder, \
            temporary_env(NO_PROGRESS_BARS):
        local = get_artifact_repository(model_uri).download_artifacts(path, folder)
        request = json.loads(Path(local).read_text())
    return request if isinstance(request, dict) else None


def _signature_request(signature) -> dict | None:
    """One row of typical values for a signature of named columns (not for tensors)."""
    inputs = signature.inputs.to_dict() if signature is not None and signature.inputs else []
    if not inputs or any("name" not in column or column.get("type") not in _SAMPLE_VALUES
                         for column in inputs):
        return None
    return {"dataframe_split": {"columns": [column["name"] for column in inputs],
                                "data": [[_SAMPLE_VALUES[column["type"]] for column in inputs]]}}


def _one_row(request: dict) -> dict:
    """``request`` with only its first row (the card's line stays readable)."""
    shortened = dict(request)
    for key, value in request.items():
        if key == "dataframe_split" and isinstance(value, dict):
            shortened[key] = {k: v for k, v in value.items() if k != "index"}
            shortened[key]["data"] = list(value.get("data") or [])[:1]
        elif key in ("dataframe_records", "inputs", "instances") and isinstance(value, list):
            shortened[key] = value[:1]
        elif key in ("inputs", "instances") and isinstance(value, dict):
            shortened[key] = {k: v[:1] if isinstance(v, list) else v for k, v in value.items()}
    return shortened
