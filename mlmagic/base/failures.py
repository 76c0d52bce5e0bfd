"""What went wrong, in one line: network failures, refusals (HTTP 401 and 403), stores that
cannot take a write, failures worth a second try, and a model's reason for refusing input."""

from __future__ import annotations

import errno
import os
import re
import socket
from collections.abc import Callable
from typing import TypeVar

from mlmagic.base.config import DATABRICKS_RUNTIME
from mlmagic.base.errors import ConnectionFailed, MlmagicError, PermissionDenied
from mlmagic.base.secrets import error_line, redact_uri

_REST_STATUS = re.compile(r"error code (\d{3}) != 200|too many (\d{3}) error responses")
_ENDPOINT = re.compile(r"/api/2\.0/mlflow/([a-z-]+(?:/[a-z-]+)?)|(mlflow-artifacts)")
_ACTIONS = {
    "experiments/create": "create experiments",
    "runs/create": "create runs in this experiment",
    "runs/update": "end or change this run",
    "runs/log-batch": "log to this run",
    "runs/log-metric": "log to this run",
    "runs/log-parameter": "log to this run",
    "runs/set-tag": "tag this run",
    "registered-models/create": "register models",
    "registered-models/alias": "set aliases",
    "model-versions/create": "add model versions",
    "logged-models": "change logged models",
    "mlflow-artifacts": "upload artifacts",
}
_DISK_ERRORS = {errno.ENOSPC: "the disk is full", errno.EROFS: "it is read-only",
                errno.EACCES: "permission denied"}
_TRANSIENT_STATUSES = {429, 500, 502, 503, 504}
# What Databricks answers (HTTP 403) to a token that is wrong, expired or revoked: "Invalid
# access token." (databricks/databricks-sdk-go#873, #917), or "Token is expiring within 30
# seconds. (token expired)" (databricks/databricks-vscode#583)
REFUSED_TOKEN = ("Invalid access token", "token expired")
_LASTING_FAILURES = ("readonly database", "read-only", "disk is full", "no space left")
F = TypeVar("F", bound=Callable)


def exception_chain(error: BaseException) -> list[BaseException]:
    """``error`` and every exception it wraps (causes, contexts, reasons, arguments)."""
    chain, pending = [], [error]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or any(current is e for e in chain):
            continue
        chain.append(current)
        context = None if current.__suppress_context__ else current.__context__
        pending += [current.__cause__, context, getattr(current, "reason", None)]
        pending += [arg for arg in current.args if isinstance(arg, BaseException)]
    return chain


def network_failure(error: BaseException) -> str | None:
    """Name the network failure buried in a chain of wrapped exceptions; None if there is
    none (the server answered, or the error is not about the network)."""
    chain = exception_chain(error)
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "connection refused"
    if any(isinstance(e, socket.gaierror) for e in chain):
        return "host not found"
    if any("SSL" in type(e).__name__ for e in chain):
        return "its TLS certificate is not trusted; set REQUESTS_CA_BUNDLE"
    if any("Timeout" in type(e).__name__ or isinstance(e, TimeoutError) for e in chain):
        return "no answer in time"
    if any(isinstance(e, ConnectionError) or "ConnectionError" in type(e).__name__
           for e in chain):
        return "connection lost"
    return None


def transient(error: BaseException) -> bool:
    """Whether the same write, tried again in a moment, may well succeed: the connection was
    refused or dropped, the server said it is busy or failed (429, 500, 502, 503, 504) for a
    reason other than a full or read-only disk, or a SQLite file was locked by another
    writer. A timeout is not transient here: trying again would cost the wait again."""
    reason = network_failure(error)
    if reason is not None:
        return reason in ("connection refused", "connection lost")
    text = " ".join(str(e) for e in exception_chain(error)).lower()
    if any(words in text for words in _LASTING_FAILURES):
        return False
    return http_status(error) in _TRANSIENT_STATUSES or "database is locked" in text


def http_status(error: BaseException) -> int | None:
    """The HTTP status a server answered with, wherever it is in the chain; None if no
    server answered."""
    from mlflow.exceptions import MlflowException

    for item in exception_chain(error):
        response = getattr(item, "response", None)
        for status in (getattr(item, "status_code", None),
                       getattr(response, "status_code", None)):
            if isinstance(status, int) and 100 <= status < 600:
                return status
        found = _REST_STATUS.search(str(item))
        if found:
            return int(found.group(1) or found.group(2))
        if isinstance(item, MlflowException):
            if item.error_code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
                return 401 if item.error_code == "UNAUTHENTICATED" else 403
            if type(item).__name__ == "RestException":
                return item.get_http_status_code()
    return None


LOGGED_MODELS_ADVICE = (
    "this store has no MLflow 3 logged-models API (it answered 404 to "
    "/api/2.0/mlflow/logged-models, as Azure ML workspaces did through 2026), so log_model "
    "cannot work here. Save the model into a new folder and log that as the run's artifacts "
    "instead: mlflow.sklearn.save_model(model, path), then mlflow.log_artifacts(path, "
    "'model'); --register and %aml_register find it there.")


def logged_models_missing(error: BaseException) -> bool:
    """Whether ``error`` is a store answering 404 to MLflow 3's logged-models API."""
    mentioned = any("/mlflow/logged-models" in str(item) for item in exception_chain(error))
    return mentioned and http_status(error) == 404


REASON_LENGTH = 300  # characters of a model's reason shown, cut at a sentence's end
_QUOTES_DATA = re.compile(r"Failed to (?:predict|enforce schema of) data '")
_UNEXPECTED = "Encountered an unexpected error while evaluating the model"


def refusal_reason(message: str) -> str:
    """Why a model refused an input, from MLflow's message, in one line: without the parts
    that quote the input ("Failed to enforce schema of data '<frame>' with schema '<schema>'.
    Error: Model is missing inputs ['age']" gives the last part), at most REASON_LENGTH
    characters."""
    parts = [part.strip() for part in re.split(r"\bError: ", message)]
    kept = [part for part in parts if part and not _QUOTES_DATA.match(part)] or parts[-1:]
    reason = ": ".join([part.rstrip(". ") for part in kept[:-1]]
                       + [_unquoted(kept[-1]) if len(kept) > 1 else kept[-1]])
    lines = [line.strip() for line in reason.splitlines() if line.strip()]
    return _shortened(lines[0] if lines else "no reason given")


def answer_reason(body: bytes) -> str:
    """Why a scoring server refused a request, in one line, from its answer: MLflow's JSON
    (``message``; for an exception the model itself raised, the last line of ``stack_trace``,
    never the trace), ``{"error": {"message": ...}}`` or ``{"error": ...}``, or the text."""
    import json

    text = body.decode(errors="replace").strip()
    try:
        answer = json.loads(text)
    except ValueError:
        return refusal_reason(text)
    if not isinstance(answer, dict):
        return refusal_reason(text)
    message = answer.get("message")
    raised = raised_in(answer.get("stack_trace"))
    if raised and (not message or str(message).startswith(_UNEXPECTED)):
        return _shortened(f"the model raised {raised}")
    error = answer.get("error")
    if not message and isinstance(error, dict):
        message = error.get("message")
    return refusal_reason(str(message or error or text))


def raised_in(trace) -> str | None:
    """The exception a Python traceback ends with, in one line ("ValueError: age must not be
    negative"; a message of several lines joined), or None: the last traceback's first line
    that starts with an exception's name (its frames are indented)."""
    lines = str(trace or "").rsplit("Traceback (most recent call last)", 1)[-1].splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^[\w.]+(Error|Exception|Warning)\b", line):
            message = [line.strip()]
            for more in lines[index + 1:]:
                if not more.strip() or more.strip().startswith("SQLSTATE"):
                    break
                message.append(more.strip())
            return " ".join(message).split(" SQLSTATE:")[0].rstrip(" )")
    return None


def _unquoted(text: str) -> str:
    return text[1:-1] if len(text) > 1 and text[0] == text[-1] == "'" else text


def _shortened(reason: str) -> str:
    """``reason`` up to REASON_LENGTH characters, cut after its last whole sentence there."""
    if len(reason) <= REASON_LENGTH:
        return reason
    cut = reason.rfind(". ", 0, REASON_LENGTH)
    return reason[:cut + 1] if cut > 0 else reason[:REASON_LENGTH - 1] + "…"


def failure_reason(error: BaseException) -> str:
    """Why a store did not take a write, in a few words: a network failure, the HTTP status
    it answered with, a read-only store, a full disk, or the error's first line."""
    if isinstance(error, OSError) and error.errno in _DISK_ERRORS:  # not what it was handling
        return _DISK_ERRORS[error.errno]
    reason = network_failure(error)
    if reason is not None:
        return reason
    status = http_status(error)
    if status is not None:
        return f"it answered HTTP {status}"
    codes = {getattr(e, "errno", None) for e in exception_chain(error)}
    text = " ".join(str(e) for e in exception_chain(error)).lower()
    if errno.ENOSPC in codes or "disk is full" in text or "no space left" in text:
        return _DISK_ERRORS[errno.ENOSPC]
    if errno.EROFS in codes or "readonly database" in text or "read-only" in text:
        return _DISK_ERRORS[errno.EROFS]
    if errno.EACCES in codes or "permission denied" in text:
        return _DISK_ERRORS[errno.EACCES]
    root = root_cause(error)
    return f"{type(root).__name__}: {error_line(root)}"


def root_cause(error: BaseException) -> BaseException:
    """The exception at the bottom of ``error``'s causes (what a database driver raised,
    say, under the wrappers of an ORM and of MLflow)."""
    for _ in range(100):  # chains are short; this only guards against a cycle
        below = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
        if below is None:
            break
        error = below
    return error


def explain(error: BaseException, uri: str) -> MlmagicError | None:
    """The one-line error for a network failure or a 401/403 from the store at ``uri``;
    None for other errors."""
    shown = redact_uri(uri)
    reason = network_failure(error)
    if reason is not None:
        waited = os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT")  # what the request was given
        if reason == "no answer in time" and waited:
            reason = f"no answer within {float(waited):g} s"
        return ConnectionFailed(f"cannot reach {shown} ({reason}). Check that it runs, then "
                                "try again.")
    status = http_status(error)
    if credentials_refused(error):
        return PermissionDenied(f"{shown} {refusal(error, uri)}: {credential_advice(uri)}")
    if status == 403:
        return PermissionDenied(
            f"{_who(uri)} may not {_action(error)} on {shown} (HTTP 403). Ask its admin for "
            "that permission, or work in an experiment of your own (%aml_experiment NAME)."
        )
    return None


def credentials_refused(error: BaseException) -> bool:
    """Whether the store refused the credentials themselves (HTTP 401, or Databricks' 403
    "Invalid access token"), rather than a permission the credentials lack."""
    status = http_status(error)
    return status == 401 or (status == 403 and _token_phrase(error) is not None)


def _token_phrase(error: BaseException) -> str | None:
    """Databricks' words for a refused token, if the error carries them."""
    text = " ".join(str(item) for item in exception_chain(error)).lower()
    return next((phrase for phrase in REFUSED_TOKEN if phrase.lower() in text), None)


def whose_credentials(uri: str) -> str:
    """The credentials MLflow sends to the store at ``uri``, in a few words (never them)."""
    if not uri.lower().startswith("databricks"):
        return "the credentials"
    profile = uri.split("://", 1)[1].split(":", 1)[0] if "://" in uri else ""
    profile = profile or os.environ.get("DATABRICKS_CONFIG_PROFILE", "")
    if profile:
        return f"the token of the Databricks profile {profile}"
    if os.environ.get("DATABRICKS_TOKEN"):
        return "the token in DATABRICKS_TOKEN"
    return "the notebook's token" if os.environ.get(DATABRICKS_RUNTIME) else "the Databricks token"


def refusal(error: BaseException, uri: str) -> str:
    """How the store at ``uri`` refused the credentials: "refused the notebook's token (HTTP
    403: Invalid access token; it expired or was revoked)"."""
    whose = whose_credentials(uri)
    phrase = _token_phrase(error) if http_status(error) == 403 else None
    said = f": {phrase}" if phrase else ""
    how = ""
    if phrase == REFUSED_TOKEN[0]:  # said of a wrong token too, except the notebook's own
        how = ("; it expired or was revoked" if whose == "the notebook's token"
               else "; it is wrong, expired or revoked")
    return f"refused {whose} (HTTP {http_status(error)}{said}{how})"


def credential_advice(uri: str) -> str:
    """What to set when a store refused the credentials."""
    scheme = uri.split(":", 1)[0].lower()
    if scheme == "azureml":
        return "sign in again (az login, or the --auth you use) and check your role on it."
    if scheme.startswith("databricks") and whose_credentials(uri) == "the notebook's token":
        return ("the workspace gives the notebook its token; to sign in with a personal access "
                "token instead, set DATABRICKS_HOST and DATABRICKS_TOKEN.")
    if scheme.startswith("databricks"):
        return "check DATABRICKS_TOKEN (or your Databricks profile); it may have expired."
    if os.environ.get("MLFLOW_TRACKING_USERNAME"):
        return (f"the password of user '{os.environ['MLFLOW_TRACKING_USERNAME']}' was "
                "refused; check MLFLOW_TRACKING_PASSWORD.")
    if os.environ.get("MLFLOW_TRACKING_TOKEN"):
        return "the token in MLFLOW_TRACKING_TOKEN was refused."
    return ("no credentials were given. Set MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN).")


def _who(uri: str) -> str:
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    return f"user '{user}'" if user and uri.startswith("http") else "these credentials"


def _action(error: BaseException) -> str:
    for item in exception_chain(error):
        for text in (getattr(item, "message", None), str(item)):
            found = _ENDPOINT.search(text or "")
            if found:
                endpoint = found.group(1) or found.group(2)
                return next((action for prefix, action in _ACTIONS.items()
                             if endpoint.startswith(prefix)), "do this")
    return "do this"
