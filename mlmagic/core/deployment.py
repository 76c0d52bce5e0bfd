"""Deploying models to targets, verifying them, scoring through them, and stopping them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlmagic.base.checks import checked_endpoint_name, checked_timeout, safe_name
from mlmagic.base.display import Card, card, notify
from mlmagic.base.env import temporary_env
from mlmagic.base.errors import InvalidInput, MlmagicError, NotFound
from mlmagic.base.failures import refusal_reason
from mlmagic.base.library_log import NO_PROGRESS_BARS
from mlmagic.core import leases
from mlmagic.core.connection import ensure_connected
from mlmagic.core.copying import copy_version, needs_copy
from mlmagic.core.examples import curl_line, sample_request
from mlmagic.core.interactive import interactive
from mlmagic.core.registry import ModelRef, resolve_model
from mlmagic.core.session import current_session
from mlmagic.deploy import Endpoint, checked_options, target

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


@interactive
def deploy(
    model: str,
    *,
    target_name: str = "local",
    name: str | None = None,
    check=None,
    timeout: float | None = None,
    **options,
) -> Endpoint:
    """Serve ``model`` (NAME, NAME:VERSION, NAME@ALIAS or a URI) on a target, then verify it:
    the model's input example (or ``check``, a DataFrame) must get the same predictions from
    the endpoint as from the model in this process (numbers within rounding, labels exactly).
    Deploying under a used name replaces it. Everything named is checked, and the check data
    scored here, before anything starts; an endpoint that answers differently stays up,
    marked unverified, and the call raises one line saying what differed.

    ``target_name`` is one of :func:`mlmagic.deploy.targets` (local, online, kubernetes,
    and the deprecated aci and aks); ``options`` are the fields of its ``Options`` dataclass
    (``port`` locally; ``instance_type``, ``instance_count``, ``compute`` on Azure ML, ...).
    An Azure ML target deploys from the workspace's registry: a version of another registry
    (the Databricks workspace's, Unity Catalog) is copied there first, into the workspace
    linked to the connection (--track both), and one line says so (see
    :func:`mlmagic.register` with ``to="azureml"``)."""
    module = target(target_name)
    options = checked_options(target_name, options)
    timeout = checked_timeout(timeout) or module.DEFAULT_TIMEOUT
    if name is not None:
        name = checked_endpoint_name(name)
    if check is not None and not _is_frame(check):
        raise InvalidInput(f"the check data must be a pandas DataFrame, got a "
                           f"{type(check).__name__}.")
    connection = ensure_connected()
    ref = resolve_model(model)
    name = name or safe_name(ref.name or "model")
    connection, copy_from = _through(module, connection)
    if hasattr(module, "check"):
        module.check(name, connection)
    with temporary_env(NO_PROGRESS_BARS):
        _check_servable(ref)
        example, expected = _expected_predictions(ref, check)
        request = sample_request(ref.uri)
        if copy_from is not None and ref.name is not None:
            ref = _copied(copy_from, ref)
        previous = current_session().endpoints.get(name)
        if previous is not None and previous.details.get("port") == getattr(options, "port", -1):
            undeploy(name)  # the new endpoint wants the old one's port
        endpoint = module.deploy(ref, name, timeout=timeout, connection=connection,
                                 options=options, owner=leases)
        endpoint.details["request"] = request
        current_session().endpoints[name] = endpoint
        if previous is not None and previous.target == "local" and previous is not endpoint:
            target("local").delete(previous)  # Azure endpoints are updated in place
        if example is not None:
            _verify(endpoint, example, expected)
    return endpoint


@interactive
def endpoints() -> pd.DataFrame:
    """The endpoints this session started and, on an Azure ML workspace, the workspace's
    online endpoints and web services: name, target, model, URL and state (Azure's; for
    online endpoints with the traffic)."""
    import pandas as pd

    rows = [
        {"name": e.name, "target": e.target, "model": e.model, "url": e.url,
         "state": target(e.target).status(e)
         + (" (unverified)" if e.details.get("verified") is False else "")}
        for e in (*current_session().endpoints.values(), *_workspace_endpoints().values())
    ]
    return pd.DataFrame(rows, columns=["name", "target", "model", "url", "state"])


@interactive
def predict(name: str, frame) -> np.ndarray:
    """Send a pandas DataFrame to the endpoint ``name``; its predictions, as an array (what
    the model's own ``predict`` gives)."""
    import numpy as np
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise InvalidInput(f"expected a pandas DataFrame to score, got a {type(frame).__name__}.")
    endpoint = _endpoint(name)
    return np.asarray(target(endpoint.target).predict(endpoint, frame))


@interactive
def undeploy(name: str, deployment: str | None = None) -> Card:
    """Stop and forget the endpoint ``name`` (on Azure ML: delete it, or only its
    ``deployment``); a card says what was removed."""
    endpoint = _endpoint(name)
    module = target(endpoint.target)
    if deployment is not None:
        if not hasattr(module, "delete_deployment"):
            raise InvalidInput(f"--deployment applies to Azure ML endpoints; {name} is "
                               f"{endpoint.target}.")
        module.delete_deployment(endpoint, deployment)
        return card(f"endpoint {name}: deployment {deployment} deleted",
                    ("target", endpoint.target), ("endpoint", "kept, with its other deployments"))
    module.delete(endpoint)
    current_session().endpoints.pop(name, None)
    ended = "stopped" if getattr(module, "ENDS_WITH_SESSION", False) else "deleted"
    return card(f"endpoint {name}: {ended}", ("model", endpoint.model),
                ("target", endpoint.target))


def endpoint_summary(endpoint: Endpoint) -> Card:
    """A card for an endpoint with a ready-to-paste request: one row of the model's input
    example (else of its signature) in MLflow's serving format."""
    return card(
        f"endpoint {endpoint.name}: ready",
        ("model", endpoint.model),
        ("target", endpoint.target),
        ("scoring URL", endpoint.url),
        ("deployment", endpoint.details.get("deployment")),
        ("studio", endpoint.details.get("studio")),
        ("log", endpoint.details.get("log")),
        ("try it", curl_line(endpoint.url, endpoint.details.get("request"),
                             protocol=endpoint.details.get("protocol", "mlflow"),
                             key_variable=endpoint.details.get("key variable"))),
        ("key", endpoint.details.get("key hint")),
    )


def _through(module, connection):
    """The connection a target deploys through, and the one whose registry a model must be
    copied from first (None: no copy). A target that deploys from an Azure ML workspace's
    registry goes through the workspace connected or linked (--track both); from the linked
    one, a registered model of the connection's registry is copied there first."""
    target = connection.azureml
    if getattr(module, "REGISTRY", None) != "azureml" or target is None:
        return connection, None
    return target, (connection if needs_copy(target) else None)


def _copied(connection, ref) -> ModelRef:
    """The copy of ``ref`` (of the connection's registry) in the Azure ML workspace's: made
    or found, and said in one line. A failed copy is one line, and nothing is deployed."""
    try:
        copied = copy_version(connection, ref.name, ref.version)
    except MlmagicError as error:
        raise type(error)(f"nothing was deployed: {error}") from None
    notify(copied.line())
    return ModelRef(copied.uri, copied.name, copied.version)


def _check_servable(ref) -> None:
    """Refuse, before starting anything, a model MLflow has no way to serve."""
    from mlflow.exceptions import MlflowException
    from mlflow.models import get_model_info

    try:
        flavors = get_model_info(ref.uri).flavors
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise InvalidInput(
            f"the model {ref} is not an MLflow model (it has no MLmodel file), so it cannot "
            "be served. Log it with an MLflow flavour such as mlflow.sklearn or mlflow.pyfunc."
        ) from None
    if "python_function" not in flavors:
        raise InvalidInput(
            f"the model {ref} has no python_function flavour (it has: {', '.join(flavors)}), "
            "so it cannot be served. Log it with an MLflow flavour such as mlflow.sklearn "
            "or mlflow.pyfunc."
        )


def _endpoint(name: str) -> Endpoint:
    known_here = current_session().endpoints
    if name in known_here:
        return known_here[name]
    workspace = _workspace()
    found = None if workspace is None else workspace.endpoint(name)
    if found is not None:
        return found
    known = ", ".join(known_here) or "none in this session"
    raise NotFound(f"no endpoint named '{name}' (endpoints: {known}; %aml_endpoints lists "
                   "the workspace's too).")


def _workspace_endpoints() -> dict[str, Endpoint]:
    """The connected Azure ML workspace's endpoints not started in this session."""
    workspace = _workspace()
    if workspace is None:
        return {}
    return {e.name: e for e in workspace.endpoints()
            if e.name not in current_session().endpoints}


def _workspace():
    """The handle of the Azure ML workspace connected or linked (it lists the endpoints it
    hosts), or None."""
    connection = current_session().connection
    target = None if connection is None else connection.azureml
    return None if target is None else target.backend.workspace


def _is_frame(data) -> bool:
    import pandas as pd

    return isinstance(data, pd.DataFrame)


def _expected_predictions(ref, check):
    """The check input (``check``, else the model's input example) and what the model itself
    predicts for it here; (None, None) when there is nothing to check with."""
    import mlflow

    model = mlflow.pyfunc.load_model(ref.uri)
    example = check if check is not None else model.input_example
    if example is None:
        return None, None
    try:
        return example, model.predict(example)
    except Exception as error:
        raise InvalidInput(f"the model {ref} cannot score the check data, so nothing was "
                           f"deployed: {refusal_reason(str(error))}") from None


def _verify(endpoint: Endpoint, example, expected) -> None:
    try:
        served = target(endpoint.target).predict(endpoint, example)
    except MlmagicError as error:
        endpoint.details["verified"] = False
        raise MlmagicError(f"the endpoint is up but failed its check request: {error}") from None
    difference = prediction_difference(expected, served)
    endpoint.details["verified"] = difference is None
    if difference is not None:
        raise MlmagicError(
            f"the endpoint {endpoint.name} answers differently from the model itself on the "
            f"check input ({difference}). It is left running, marked unverified; "
            f"%aml_undeploy {endpoint.name} stops it."
        )


def prediction_difference(expected, served) -> str | None:
    """How two sets of predictions differ (numbers compared within rounding, labels and
    other values exactly), or None if they agree."""
    import numpy as np

    wanted, got = _as_array(expected), _as_array(served)
    if wanted.shape != got.shape:
        return f"{got.shape[0] if got.ndim else 1} value(s) served, {wanted.shape[0]} expected"
    if wanted.dtype.kind in "biuf" and got.dtype.kind in "biuf":
        same = np.isclose(wanted.astype(float), got.astype(float), equal_nan=True)
    else:
        same = wanted.astype(str) == got.astype(str)
    if same.all():
        return None
    first = tuple(np.argwhere(~same)[0])
    return (f"{int((~same).sum())} of {same.size} differ; the first: served "
            f"{got[first].item()!r}, expected {wanted[first].item()!r}")


def _as_array(predictions):
    import numpy as np
    import pandas as pd

    if isinstance(predictions, (pd.DataFrame, pd.Series)):
        return predictions.to_numpy()
    if isinstance(predictions, list) and predictions and isinstance(predictions[0], dict):
        return pd.DataFrame(predictions).to_numpy()
    array = np.asarray(predictions)
    return array if array.dtype != object else array.astype(str)
