"""Checking what a call names before anything is created: names, aliases, versions, ports,
timeouts, params and tags. Each check returns the cleaned value or raises InvalidInput with
one line that says what is wrong and gives an example."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from mlmagic.base.errors import InvalidInput
from mlmagic.base.secrets import error_line

MAX_EXPERIMENT_NAME = 500  # MLflow's limits
MAX_ALIAS = 255
ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
_ALIAS = re.compile(r"^[\w-]+$", re.ASCII)
_RESERVED_ALIAS = re.compile(r"^(latest|[vV]\d+)$")
_DIGITS = re.compile(r"^[0-9]+$")


def checked_text(value: str | None, what: str, example: str) -> str:
    """``value`` stripped; InvalidInput if it is missing or blank."""
    if value is None or not str(value).strip():
        raise InvalidInput(f"the {what} is empty. Example: {example}")
    return str(value).strip()


def checked_experiment_name(name: str | None) -> str:
    """An experiment name MLflow accepts."""
    name = checked_text(name, "experiment name", "%aml_experiment churn")
    if len(name) > MAX_EXPERIMENT_NAME:
        raise InvalidInput(f"the experiment name has {len(name)} characters; MLflow takes "
                           f"at most {MAX_EXPERIMENT_NAME}.")
    return name


def checked_model_name(name: str | None) -> str:
    """A registered model name MLflow accepts (not blank, no '/' or ':')."""
    name = checked_text(name, "model name", "churn")
    if "/" in name or ":" in name:
        raise InvalidInput(f"'{name}' is not a model name: names cannot contain '/' or ':'. "
                           "Example: churn-model")
    return name


def checked_alias(alias: str | None) -> str:
    """A model alias MLflow accepts: letters, digits, '_' and '-', not 'latest' or 'v1'."""
    alias = checked_text(alias, "alias", "champion")
    if not _ALIAS.match(alias) or len(alias) > MAX_ALIAS:
        raise InvalidInput(f"'{alias[:80]}' is not an alias: use up to {MAX_ALIAS} letters, "
                           "digits, '_' or '-'. Example: champion")
    if _RESERVED_ALIAS.match(alias):
        raise InvalidInput(f"'{alias}' is reserved by MLflow (it names a version); choose "
                           "another alias, e.g. champion.")
    return alias


def checked_version(text: str, reference: str) -> str:
    """A model version: a whole number from 1."""
    if not _DIGITS.match(text) or int(text) < 1:
        raise InvalidInput(f"'{text}' in '{reference}' is not a version: versions are whole "
                           "numbers from 1, e.g. churn:3.")
    return str(int(text))


def checked_port(port: int | None) -> int | None:
    """A TCP port (1 to 65535), or None for a free one."""
    if port is None:
        return None
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidInput(f"the port must be a whole number from 1 to 65535, got {port}.")
    return port


def checked_positive(value: float | None, what: str) -> float | None:
    """A finite number above 0, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        math.isfinite(value) and value > 0
    ):
        raise InvalidInput(f"the {what} must be a number above 0, got {value}.")
    return float(value)


def checked_timeout(seconds: float | None) -> float | None:
    """A time limit in seconds (finite, above 0), or None for the default."""
    return checked_positive(seconds, "timeout (in seconds)")


def checked_count(count: int | None, what: str) -> int | None:
    """A count of at least 1, or None."""
    if count is not None and count < 1:
        raise InvalidInput(f"the {what} must be at least 1, got {count}.")
    return count


def checked_endpoint_name(name: str) -> str:
    """An endpoint name: up to 63 letters, digits, '_' or '-', starting with a letter or a
    digit (it becomes part of file names and URLs)."""
    name = checked_text(name, "endpoint name", "churn-api")
    if not ENDPOINT_NAME.match(name):
        raise InvalidInput(f"'{name[:80]}' is not an endpoint name: use up to 63 letters, "
                           "digits, '_' or '-', starting with a letter or a digit.")
    return name


def safe_name(text: str) -> str:
    """``text`` made fit for a file or endpoint name: other characters become '-'."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-_")[:63]
    return cleaned or "model"


def checked_params(values: Mapping[str, object], kind: str) -> dict[str, str]:
    """Params (``kind`` "param") or tags ("tag") as MLflow would store them; InvalidInput
    for a key or value MLflow refuses."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import _validate_param, _validate_tag

    from mlmagic.base.env import temporary_env

    validate = _validate_param if kind == "param" else _validate_tag
    checked = {}
    for key, value in values.items():
        try:
            with temporary_env({"MLFLOW_TRUNCATE_LONG_VALUES": "false"}):
                entity = validate(str(key), str(value))
        except MlflowException as error:
            first = error_line(error)[:200]
            raise InvalidInput(f"the {kind} '{str(key)[:60]}' cannot be logged: {first}") from None
        checked[entity.key] = entity.value
    return checked
