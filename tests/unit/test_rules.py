"""The fast tier: the pure rules behind the promises (what a secret is, what a valid name
is, how predictions are compared, how a failure is described), each tried both ways."""

from __future__ import annotations

import errno
import os
import signal
import threading
import time

import pandas as pd
import pytest

from mlmagic.base import checks
from mlmagic.base.env import temporary_env
from mlmagic.base.errors import InvalidInput
from mlmagic.base.failures import (
    answer_reason,
    failure_reason,
    http_status,
    logged_models_missing,
    refusal_reason,
    transient,
)
from mlmagic.base.secrets import (
    is_secret_name,
    mask_secret_literals,
    redact_uri,
    scrub,
    secret_literals,
    split_credentials,
)
from mlmagic.core.deployment import prediction_difference
from mlmagic.core.interrupts import run_to_end

SECRET = ["password", "db_password", "apiKey", "APIKey", "API_TOKEN", "client_secret", "sas",
          "sas_token", "storage_connection_string", "MLFLOW_TRACKING_PASSWORD", "private_key",
          "access_key", "accountKey", "credentials", "passwd", "secret", "DATABRICKS_TOKEN",
          "AZURE_CLIENT_SECRET", "sig"]
NOT_SECRET = ["key_size", "pass_rate", "sort_key", "tokenizer", "n_tokens_seen", "accuracy",
              "monkey", "keyboard", "learning_rate", "auth", "session_id", "passenger_count",
              "keystroke", "n_tokens"]


@pytest.mark.parametrize("name", SECRET)
def test_secret_names(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", NOT_SECRET)
def test_names_that_are_not_secrets(name):
    assert not is_secret_name(name)


def test_secret_literals_are_masked_and_the_rest_of_the_source_kept():
    source = (
        'db_password = "lit-one-1"\n'
        'cfg = {"api_key": "lit-two-2", "region": "eu"}\n'
        "connect(host='h', password='lit-three-3')\n"
        'os.environ["MY_TOKEN"] = "lit-four-4"\n'
        'mlflow.log_param("client_secret", "lit-five-5")\n'
        'pwd: str = "lit-six-6"\n'
        "token = ('lit-seven-7'\n         'lit-eight-8')\n"
        'sort_key = "rooms"\n'
        "%time x = 1\n"
    )
    masked = mask_secret_literals(source)
    for number, word in enumerate(["one", "two", "three", "four", "five", "six", "seven",
                                   "eight"], start=1):
        assert f"lit-{word}-{number}" not in masked
    assert '"region": "eu"' in masked and 'sort_key = "rooms"' in masked
    assert "%time x = 1" in masked and masked.count("'***'") == 7
    assert secret_literals(source)[:2] == ["lit-one-1", "lit-two-2"]


def test_source_that_does_not_tokenize_is_still_masked():
    source = 'api_key = "lit-open-1"\nnotes = """never closed\n'
    masked = mask_secret_literals(source)
    assert "lit-open-1" not in masked and 'notes = """never closed' in masked


def test_uris_lose_their_credentials():
    assert redact_uri("http://u:pw@host:5000") == "http://u:***@host:5000"
    assert "pw" not in redact_uri("http://u:pw@[::1")  # not even parseable
    assert redact_uri("https://h/p?sig=abc&x=1") == "https://h/p?sig=***&x=1"
    assert split_credentials("http://alice:s3@h:5000/p") == ("http://h:5000/p", "alice", "s3")
    assert split_credentials("sqlite:///x.db") == ("sqlite:///x.db", None, None)


def test_scrub_hides_the_values_of_secret_environment_variables(monkeypatch):
    monkeypatch.setenv("MY_API_TOKEN", "tok-12345")
    monkeypatch.setenv("DEBUG_FLAG", "tok-12345-not-secret")  # not secret-named
    monkeypatch.setenv("SHORT_PASSWORD", "abc")  # too short to mask ordinary text
    assert scrub("sent tok-12345 with abc") == "sent *** with abc"


@pytest.mark.parametrize(("expected", "served", "difference"), [
    ([1.0, 2.0], [1.0 + 1e-12, 2.0], None),
    ([1.0, 2.0], [1.0, 2.5], "1 of 2 differ; the first: served 2.5, expected 2.0"),
    (["cat", "dog"], ["cat", "dog"], None),
    (["cat", "dog"], ["cat", "cow"], "1 of 2 differ; the first: served 'cow', expected 'dog'"),
    ([1, 2, 3], [1, 2], "2 value(s) served, 3 expected"),
    (pd.DataFrame({"a": [1], "b": ["x"]}), [{"a": 1, "b": "x"}], None),
])
def test_predictions_are_compared_numbers_within_rounding_labels_exactly(
    expected, served, difference
):
    assert prediction_difference(expected, served) == difference


def test_refusal_reasons_drop_the_quoted_input():
    message = ("Failed to enforce schema of data '  colour\n0    red' with schema "
               "'['rooms': double (required)]'. Error: Model is missing inputs ['rooms'].")
    assert refusal_reason(message) == "Model is missing inputs ['rooms']."


SERVED_TRACE = ('Traceback (most recent call last):\n  File "/x/scoring_server/__init__.py", line '
                '341, in invocations\n    raw_predictions = model.predict(data)\n  File '
                '"<dynamic-code>", line 7, in predict\nValueError: age must not be negative\n')


@pytest.mark.parametrize(
    ("body", "reason"),
    [  # MLflow's scoring server (3.x), what it answered in a real `mlflow models serve`
        ({"error_code": "BAD_REQUEST", "message": "Failed to predict data '  colour\n0    "
          "red'. \nError: Failed to enforce schema of data '  colour\n0    red' with schema "
          "'['age': double (required)]'. Error: Model is missing inputs ['age']. Note that "
          "there were extra inputs: ['colour']."},
         "Model is missing inputs ['age']. Note that there were extra inputs: ['colour']."),
        ({"error_code": "BAD_REQUEST", "message": "Invalid input. Data is not compatible with "
          "model signature. Failed to convert column age to type 'float64'. Error: 'ValueError"
          "(\"could not convert string to float: 'x'\")'"},
         "Invalid input. Data is not compatible with model signature. Failed to convert column "
         "age to type 'float64': ValueError(\"could not convert string to float: 'x'\")"),
        ({"error_code": "BAD_REQUEST", "message": "Encountered an unexpected error while "
          "evaluating the model. Verify that the serialized input Dataframe is compatible with "
          "the model for inference.", "stack_trace": SERVED_TRACE},
         "the model raised ValueError: age must not be negative"),
        ({"error_code": "BAD_REQUEST", "message": "The input must be a JSON dictionary with "
          "exactly one of the input fields {'dataframe_split', 'inputs'}. Received dictionary "
          "with input fields: []. IMPORTANT: The MLflow Model scoring protocol has changed in "
          "MLflow version 2.0. " + "More words. " * 40},
         "The input must be a JSON dictionary with exactly one of the input fields "
         "{'dataframe_split', 'inputs'}. Received dictionary with input fields: []."),
        # other servers' shapes (Azure ML's inference server and gateways)
        ({"error": {"code": 400, "message": "Input data are inconsistent with schema."}},
         "Input data are inconsistent with schema."),
        ({"error": "the request needs 'input_data'"}, "the request needs 'input_data'"),
        ("invalid key", "invalid key"),
    ],
)
def test_a_refused_requests_answer_gives_the_models_reason_in_one_line(body, reason):
    import json

    raw = (body if isinstance(body, str) else json.dumps(body)).encode()
    assert answer_reason(raw).startswith(reason)
    assert answer_reason(raw) == reason or (len(answer_reason(raw)) <= 300
                                            and answer_reason(raw).endswith("."))
    assert "Traceback" not in answer_reason(raw) and "\n" not in answer_reason(raw)


def test_a_full_disk_is_named_whatever_the_error_was_handling():
    try:
        try:
            raise ConnectionError("the store went away")
        except ConnectionError:
            raise OSError(errno.ENOSPC, "No space left on device") from None
    except OSError as error:
        assert failure_reason(error) == "the disk is full"
    status = Exception("Max retries (Caused by ResponseError('too many 503 error responses'))")
    assert http_status(status) == 503


@pytest.mark.parametrize(("error", "passes"), [
    (ConnectionRefusedError(111, "Connection refused"), True),
    (ConnectionResetError(104, "Connection reset by peer"), True),
    (TimeoutError("timed out"), False),
    (Exception("API request failed: too many 503 error responses"), True),
    (Exception("API request failed: too many 429 error responses"), True),
    (Exception("(sqlite3.OperationalError) database is locked"), True),
    (Exception("(sqlite3.OperationalError) attempt to write a readonly database"), False),
    (Exception("Response: error code 500 != 200: No space left on device"), False),
    (Exception("Response: error code 403 != 200: Permission denied"), False),
    (Exception("Response: error code 400 != 200: Invalid value"), False),
    (ValueError("a bug"), False),
])
def test_transient_failures_are_the_ones_worth_a_second_try(error, passes):
    assert transient(error) is passes


@pytest.mark.parametrize(("message", "missing"), [
    # what MLflow 3 raises against Azure ML (azure-sdk-for-python#44896)
    ("API request to endpoint /api/2.0/mlflow/logged-models failed with error code 404 != 200."
     " Response body: ''", True),
    ("API request to endpoint /api/2.0/mlflow/logged-models/search failed with error code 404"
     " != 200. Response body: ''", True),
    ("API request to endpoint /api/2.0/mlflow/logged-models failed with error code 403 != 200",
     False),
    ("API request to endpoint /api/2.0/mlflow/runs/get failed with error code 404 != 200", False),
])
def test_a_store_without_logged_models_is_recognised(message, missing):
    from mlflow.exceptions import MlflowException

    assert logged_models_missing(MlflowException(message)) is missing


@pytest.mark.parametrize(("check", "value"), [
    (checks.checked_alias, "v3"), (checks.checked_alias, "latest"),
    (checks.checked_alias, "a b"), (checks.checked_alias, "x" * 256),
    (checks.checked_port, 0), (checks.checked_port, 65536), (checks.checked_port, True),
    (checks.checked_timeout, float("nan")), (checks.checked_timeout, float("inf")),
    (checks.checked_timeout, -1), (checks.checked_endpoint_name, "../x"),
    (checks.checked_endpoint_name, "a:b"), (checks.checked_model_name, "a/b"),
    (checks.checked_experiment_name, "  "),
])
def test_checks_refuse(check, value):
    with pytest.raises(InvalidInput):
        check(value)


def test_checks_accept_and_clean():
    assert checks.checked_alias("champion_2") == "champion_2"
    assert checks.checked_version("007", "m:007") == "7"
    with pytest.raises(InvalidInput):
        checks.checked_version("\u0661", "m:\u0661")  # an Arabic-Indic digit
    assert checks.checked_endpoint_name("churn-api_2") == "churn-api_2"
    assert checks.safe_name("my model/v2!") == "my-model-v2"


@pytest.mark.parametrize(("name", "spelt"), [
    ("churn", "churn"), ("churn_model-2", "churn_model-2"),
    ("main.default.churn", "main-default-churn"), ("churn model (v2)", "churn-model-v2"),
    ("_private.churn", "private-churn"), ("...", "model"), ("x" * 300, "x" * 255),
])
def test_a_model_gets_a_name_azure_ml_takes(name, spelt):
    from mlmagic.azure.workspace import MODEL_NAME, model_name

    assert model_name(name) == spelt and MODEL_NAME.fullmatch(spelt)


def test_overlapping_temporary_environments_in_threads_restore_the_original(monkeypatch):
    monkeypatch.setenv("MLMAGIC_PROBE", "original")
    inside = threading.Event()
    leave = threading.Event()

    def other() -> None:
        with temporary_env({"MLMAGIC_PROBE": "thread"}):
            inside.set()
            leave.wait(5)

    thread = threading.Thread(target=other)
    with temporary_env({"MLMAGIC_PROBE": "main"}):
        thread.start()
        inside.wait(5)
    assert os.environ["MLMAGIC_PROBE"] == "thread"  # still held by the other block
    leave.set()
    thread.join()
    assert os.environ["MLMAGIC_PROBE"] == "original"


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signals reach the main thread only")
def test_work_that_must_end_runs_to_its_end_under_interrupts():
    steps = []

    def step() -> None:
        steps.append("begun")
        for _ in range(3):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
        steps.append("ended")

    assert run_to_end(step) is True
    assert steps == ["begun", "ended"]
    assert run_to_end(lambda: None) is False


def test_the_locks_of_ended_sessions_are_removed_and_live_ones_kept(tmp_path):
    import socket

    from filelock import FileLock

    from mlmagic.core.leases import _remove_dead_session_locks

    host = socket.gethostname()
    live, ended = tmp_path / f"{host}-1-live.lock", tmp_path / f"{host}-2-ended.lock"
    held = FileLock(live, timeout=0, thread_local=False)
    held.acquire()
    ended.touch()
    _remove_dead_session_locks(tmp_path, older_than=0)
    assert live.exists() and not ended.exists()
    held.release()


def test_long_text_is_shortened_and_says_how_much_was_left_out():
    from mlmagic.base.render import shortened

    assert shortened("rooms", 10) == "rooms"
    cut = shortened("x" * 1000, 50)
    assert len(cut) <= 50 and cut.startswith("xxx") and cut.endswith("(1000 characters)")


def test_a_chart_of_many_points_draws_a_bounded_line_that_keeps_peaks_and_ends():
    import re

    from mlmagic.base.render import MAX_CHART_POINTS, svg_chart

    steps = list(range(100_000))
    values = [1.0] * 100_000
    values[54_321] = 99.0  # one spike
    drawn = svg_chart("loss", {"run": (steps, values)})
    (points,) = re.findall(r"points='([^']+)'", drawn)
    kept = [tuple(map(float, p.split(","))) for p in points.split(" ")]
    assert len(kept) <= MAX_CHART_POINTS and len(drawn) < 30_000
    assert min(y for _, y in kept) < max(y for _, y in kept)  # the spike is drawn
    assert kept[0][0] == 60.0 and kept[-1][0] == 410.0  # the first and the last step
    small = svg_chart("loss", {"run": ([0, 1, 2], [3.0, 2.0, 1.0])})
    assert len(re.findall(r"points='([^']+)'", small)[0].split(" ")) == 3


def _rest_error(status: int, code: str, message: str):
    from mlflow.exceptions import RestException

    error = RestException({"error_code": code, "message": message})
    error.response = type("Response", (), {"status_code": status})()
    return error


def test_a_refused_token_is_told_apart_from_a_missing_permission(monkeypatch):
    from mlmagic.base.failures import credentials_refused, explain, whose_credentials

    expired = _rest_error(403, "PERMISSION_DENIED", "Invalid access token.")
    forbidden = _rest_error(403, "PERMISSION_DENIED", "User may not create runs.")
    wrong = _rest_error(401, "UNAUTHENTICATED", "Credential was not sent.")
    expiring = _rest_error(403, "403", "Token is expiring within 30 seconds. (token expired)")
    assert credentials_refused(expired) and credentials_refused(wrong)
    assert credentials_refused(expiring)
    assert not credentials_refused(forbidden) and not credentials_refused(ValueError("x"))
    for name in ("DATABRICKS_TOKEN", "DATABRICKS_CONFIG_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    assert whose_credentials("databricks") == "the notebook's token"
    line = str(explain(expired, "databricks"))
    assert line.startswith("databricks refused the notebook's token (HTTP 403: Invalid access "
                           "token; it expired or was revoked): "), line
    assert "permission" not in line
    assert "(HTTP 403: token expired): " in str(
        explain(expiring, "databricks"))
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-not-shown")
    assert whose_credentials("databricks") == "the token in DATABRICKS_TOKEN"
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION")
    assert whose_credentials("http://127.0.0.1:5000") == "the credentials"
    assert "may not" in str(explain(forbidden, "http://127.0.0.1:5000"))


def test_a_python_workers_exception_is_sparks_reason_in_one_line():
    from mlmagic.core.spark import spark_reason

    thrown = RuntimeError(  # as PySpark 4 passes on a pandas UDF's failure (abridged)
        "[PYTHON_EXCEPTION] An exception was thrown from the Python worker: Traceback (most "
        "recent call last):\n  File \"/site-packages/mlflow/pyfunc/__init__.py\", line 2791, in "
        "udf\n    if scoring_server_proc is not None:\nValueError: The feature names should "
        "match those that were passed during fit.\nFeature names unseen at fit time:\n- region"
        "\n\n SQLSTATE: 38000)")
    assert spark_reason(thrown) == (
        "a Python worker raised ValueError: The feature names should match those that were "
        "passed during fit. Feature names unseen at fit time: - region")
    assert spark_reason(RuntimeError("[TABLE_OR_VIEW_NOT_FOUND] nope. SQLSTATE: 42P01\nmore")
                        ) == "[TABLE_OR_VIEW_NOT_FOUND] nope"
