"""SDK v1 model management (ACI / AKS web services) through plain HTTPS, as azureml-core
calls it: every route needs a token for the workspace, and a web service whose entry script
cannot start (its model is no MLflow model) fails as Azure's container crash does."""

from __future__ import annotations

import time
import uuid

from .calls import STORAGE_AUDIENCE, call, management_token, token_for
from .conftest import PRICE, RAW
from .network import BLOB_ACCOUNT

ENTRY_SCRIPT = """\
import json
import os

import mlflow.pyfunc
import pandas as pd


def init():
    global model
    model = mlflow.pyfunc.load_model(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model"))


def run(raw_data, request_headers=None):  # as azureml-core's driver calls it
    split = json.loads(raw_data)["input_data"]
    return model.predict(pd.DataFrame(split["data"], columns=split["columns"])).tolist()
"""


def mms(azure) -> str:
    return f"/modelmanagement/v1.0{azure.workspaces[0].arm_id}"


def test_every_model_management_route_needs_a_token_for_the_workspace(azure, registered):
    routes = [
        ("GET", f"{mms(azure)}/models/{PRICE}:{registered[PRICE]}"),
        ("GET", f"{mms(azure)}/services"), ("GET", f"{mms(azure)}/services/none"),
        ("POST", f"{mms(azure)}/services/validate"),
        ("POST", f"{mms(azure)}/services/none/listkeys"),
        ("GET", f"{mms(azure)}/operations/none"),
        ("POST", f"/artifact/v2.0{azure.workspaces[0].arm_id}/artifacts/batch/metadata/"
                 "LocalUpload/none"),
    ]
    wrong = token_for(azure, STORAGE_AUDIENCE)
    for method, path in routes:
        body = {} if method == "POST" else None
        for token in (None, "not-a-token-it-issued", wrong):
            assert call(azure, method, path, token=token, body=body).status == 401, path
        assert call(azure, method, path, token=management_token(azure),
                    body=body).status != 401, path


def upload_entry_script(azure, token: str) -> str:
    """Upload the entry script as azureml-core does; its asset URL."""
    container = str(uuid.uuid4())
    answer = call(azure, "POST", f"/artifact/v2.0{azure.workspaces[0].arm_id}/artifacts/"
                  f"batch/metadata/LocalUpload/{container}", token=token,
                  body={"paths": [{"path": "score.py"}]})
    sas = answer.body["artifactContentInformation"]["score.py"]["contentUri"]
    path_style = sas.replace(f"https://{BLOB_ACCOUNT}/", f"/{BLOB_ACCOUNT}/")
    assert call(azure, "PUT", path_style, body=ENTRY_SCRIPT.encode(),
                headers={"x-ms-blob-type": "BlockBlob"}).status == 201
    return f"aml://artifact/LocalUpload/{container}/score.py"


def create_service(azure, token: str, name: str, model_id: str) -> dict:
    """Create an ACI web service and wait for its operation's end; the operation."""
    request = {"name": name, "computeType": "ACI", "environmentImageRequest": {
        "driverProgram": "score.py", "modelIds": [model_id],
        "assets": [{"url": upload_entry_script(azure, token)}]},
        "containerResourceRequirements": {"cpu": 0.1, "memoryInGB": 0.5}}
    created = call(azure, "POST", f"{mms(azure)}/services", token=token, body=request)
    assert created.status == 202
    operation = created.headers["Operation-Location"].removeprefix(azure.url)
    deadline = time.monotonic() + 30
    while (state := call(azure, "GET", operation, token=token).body)["state"] == "Running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return state


def test_a_service_whose_entry_script_cannot_load_its_model_fails(quick, registered):
    token = management_token(quick)
    failed = create_service(quick, token, "raw-aci", f"{RAW}:{registered[RAW]}")
    assert failed["state"] == "Failed"
    assert failed["error"]["code"] == "AciDeploymentFailed"
    assert "Your container application crashed" in failed["error"]["message"]
    assert "init()" in failed["error"]["message"]

    healthy = create_service(quick, token, "price-aci", f"{PRICE}:{registered[PRICE]}")
    assert healthy["state"] == "Succeeded"
    houses = {"input_data": {"columns": ["rooms", "age"], "data": [[1.0, 10.0], [3.0, 20.0]]}}
    scored = call(quick, "POST", "/v1score/price-aci", body=houses)
    assert [round(p, 6) for p in scored.body] == [0.0, 10.0]

