"""The emulator's sign-in and Azure Resource Manager checks, through plain HTTPS and the real
azure-identity and azure-ai-ml clients: a token's audience is the resource asked for, every
ARM call needs an api-version and a management token, the data plane takes the management
or the Azure ML audience only, and a service principal signs in with its secret."""

from __future__ import annotations

import os
import urllib.parse

import pytest

from .calls import (
    API_VERSION,
    STORAGE_AUDIENCE,
    azure_ml_token,
    call,
    management_token,
    token_for,
)
from .emulator import AML_AUDIENCE, MANAGED_IDENTITY_VARIABLES
from .identity import TENANT, claims


def workspace_path(azure) -> str:
    return azure.workspaces[0].arm_id


def ml_client(azure, credential):
    from azure.ai.ml import MLClient

    workspace = azure.workspaces[0]
    return MLClient(credential, workspace.subscription, workspace.resource_group,
                    workspace.name, enable_telemetry=False)


def test_a_managed_identity_token_is_for_the_resource_asked_for(azure):
    from azure.identity import ManagedIdentityCredential

    credential = ManagedIdentityCredential()
    assert claims(credential.get_token(f"{AML_AUDIENCE}/.default").token)["aud"] == AML_AUDIENCE
    assert claims(credential.get_token(f"{azure.url}/.default").token)["aud"] == azure.url
    assert ml_client(azure, credential).workspaces.get("ws-churn").location == "westeurope"


def test_every_arm_call_needs_an_api_version(azure):
    token = management_token(azure)
    for path in (workspace_path(azure), workspace_path(azure) + "/onlineEndpoints",
                 workspace_path(azure) + "/computes/k8s-cluster", "/subscriptions"):
        refused = call(azure, "GET", path, token=token)
        assert refused.status == 400, path
        assert refused.body["error"]["code"] == "MissingApiVersionParameter"
        assert call(azure, "GET", f"{path}?api-version={API_VERSION}", token=token).status == 200


def test_arm_takes_only_a_live_token_for_the_management_audience(azure):
    path = f"{workspace_path(azure)}?api-version={API_VERSION}"
    for token in (azure_ml_token(azure), token_for(azure, STORAGE_AUDIENCE)):
        refused = call(azure, "GET", path, token=token)
        assert refused.status == 401
        assert refused.body["error"]["code"] == "InvalidAuthenticationTokenAudience"
    for token in (None, "not-a-token-it-issued"):
        refused = call(azure, "GET", path, token=token)
        assert (refused.status, refused.body["error"]["code"]) == (
            401, "InvalidAuthenticationToken")
    assert call(azure, "GET", path, token=management_token(azure)).status == 200


def test_the_data_plane_takes_the_management_or_the_azure_ml_audience(azure):
    workspace = workspace_path(azure)
    for path in (f"/mlflow/v2.0{workspace}/api/2.0/mlflow/experiments/search?max_results=1",
                 f"/artifact/v2.0{workspace}/artifacts/LocalUpload/nothing-here",
                 f"/history/v1.0{workspace}/experimentids/0/runs/none/artifacts"):
        assert call(azure, "GET", path, token=management_token(azure)).status == 200, path
        assert call(azure, "GET", path, token=azure_ml_token(azure)).status == 200, path
        refused = call(azure, "GET", path, token=token_for(azure, STORAGE_AUDIENCE))
        assert refused.status == 401, path
        assert refused.body["error"]["innerError"]["code"] == "InvalidAuthenticationTokenAudience"
        assert call(azure, "GET", path).status == 401


@pytest.fixture
def principal(azure, monkeypatch):
    """The emulator, the SDKs signing in as its service principal (no managed identity)."""
    for name in MANAGED_IDENTITY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in azure.environment(service_principal=True).items():
        monkeypatch.setenv(name, value)
    return azure


def secret_credential(secret: str | None = None, client_id: str | None = None,
                      tenant: str | None = None):
    """azure-identity's ClientSecretCredential from the environment (AZURE_AUTHORITY_HOST is
    the emulator), instance discovery off: it would ask login.microsoftonline.com."""
    from azure.identity import ClientSecretCredential

    return ClientSecretCredential(
        tenant or os.environ["AZURE_TENANT_ID"], client_id or os.environ["AZURE_CLIENT_ID"],
        secret or os.environ["AZURE_CLIENT_SECRET"], disable_instance_discovery=True)


def test_a_service_principal_signs_in_with_its_secret(principal):
    credential = secret_credential()
    token = claims(credential.get_token(f"{AML_AUDIENCE}/.default").token)
    assert (token["aud"], token["appid"]) == (AML_AUDIENCE, os.environ["AZURE_CLIENT_ID"])
    assert ml_client(principal, credential).workspaces.get("ws-churn").name == "ws-churn"
    signed_in = principal.paths(f"/{TENANT}/")
    assert f"/{TENANT}/v2.0/.well-known/openid-configuration" in signed_in
    assert f"/{TENANT}/oauth2/v2.0/token" in signed_in


def test_the_environment_variant_is_what_environment_credential_reads(principal):
    from azure.identity import EnvironmentCredential

    token = EnvironmentCredential(disable_instance_discovery=True).get_token(
        f"{principal.url}/.default").token
    assert claims(token)["aud"] == principal.url


@pytest.mark.parametrize(("wrong", "expected"), [
    ({"secret": "not-the-secret"}, "AADSTS7000215"),
    ({"client_id": "00000000-0000-0000-0000-000000000000"}, "AADSTS700016"),
    ({"tenant": "00000000-0000-0000-0000-0000000000aa"}, "00000000-0000-0000-0000-0000000000aa"),
])
def test_a_wrong_secret_client_or_tenant_is_refused(principal, wrong, expected):
    from azure.core.exceptions import ClientAuthenticationError

    with pytest.raises(ClientAuthenticationError, match=expected):
        secret_credential(**wrong).get_token(f"{principal.url}/.default")


def test_a_client_credentials_scope_names_one_resource_with_default(principal):
    form = {"grant_type": "client_credentials", "client_id": os.environ["AZURE_CLIENT_ID"],
            "client_secret": os.environ["AZURE_CLIENT_SECRET"]}
    for scope in (f"{principal.url}/user_impersonation", f"{principal.url}/.default "
                  f"{AML_AUDIENCE}/.default"):
        body = urllib.parse.urlencode({**form, "scope": scope}).encode()
        refused = call(principal, "POST", f"/{TENANT}/oauth2/v2.0/token", body=body,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert (refused.status, refused.body["error"]) == (400, "invalid_scope")
