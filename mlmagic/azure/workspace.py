"""An Azure Machine Learning workspace: found through azure-ai-ml, tracked through
azureml-mlflow's ``azureml://`` store.

The workspace is looked up in Azure Resource Manager with an azure-identity credential; its
MLflow tracking URI is then handed to MLflow together with that same credential, so every
MLflow call (and every mlmagic magic) goes to the workspace and refreshes its own token.
"""

from __future__ import annotations

import functools
import re
import warnings
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from mlmagic.azure import AUTH_METHODS, INSTALL, INSTALL_V1, sdk
from mlmagic.backends.contract import Backend
from mlmagic.base.errors import ConfigError, ConnectionFailed, InvalidInput, MissingExtra, NotFound

NAME = "azureml"
CATCH_ALL = False
SERVICE_PRINCIPAL_VARIABLES = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET")
WORKSPACE_ID = re.compile(
    r"/subscriptions/([^/]+)/resourceGroups/([^/]+)"
    r"/providers/Microsoft\.MachineLearningServices/workspaces/([^/?]+)",
    re.IGNORECASE,
)
NO_SIGN_IN = (
    "cannot sign in to Azure: no credential worked, or the token was refused. Run 'az login' "
    "(then --auth cli), set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET "
    "(--auth service-principal), or use --auth interactive."
)


CONFIG_KEYS = ("subscription_id", "resource_group", "workspace_name")  # of its config.json
EXPERIMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,254}")  # what Azure ML takes
MODEL_NAME = EXPERIMENT_NAME  # the pattern of its REST API's workspaces/models names


@dataclass(frozen=True)
class WorkspaceRef:
    """Which workspace: the three names of Azure's workspace ``config.json``."""

    subscription: str
    resource_group: str
    name: str

    @classmethod
    def from_config(cls, config: dict, source: str) -> WorkspaceRef:
        """From the keys of a workspace config.json (or the same keys in mlmagic's config)."""
        missing = [key for key in CONFIG_KEYS
                   if not isinstance(config.get(key), str) or not config[key].strip()]
        if missing:
            raise ConfigError(
                f"{source} lacks {', '.join(missing)}. Download the workspace's config.json "
                "from the Azure portal, or give --workspace, --subscription and --resource-group."
            )
        return cls(config["subscription_id"].strip(), config["resource_group"].strip(),
                   config["workspace_name"].strip())

    def config(self) -> dict[str, str]:
        """The workspace as the keys of its config.json."""
        return dict(zip(CONFIG_KEYS, (self.subscription, self.resource_group, self.name),
                        strict=True))

    @property
    def arm_id(self) -> str:
        """The workspace's Azure Resource Manager id."""
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
                f"/providers/Microsoft.MachineLearningServices/workspaces/{self.name}")


@dataclass(frozen=True)
class WorkspaceHandle:
    """A connected workspace: which one, and the credential that reached it."""

    ref: WorkspaceRef
    credential: Any

    def ml_client(self) -> Any:
        """An azure-ai-ml MLClient for the workspace."""
        from azure.ai.ml import MLClient

        return MLClient(self.credential, self.ref.subscription, self.ref.resource_group,
                        self.ref.name, enable_telemetry=False, show_progress=False)

    def endpoints(self) -> list:
        """The workspace's endpoints, whoever made them: online endpoints (managed and
        Kubernetes) and SDK v1 web services (ACI and AKS)."""
        from mlmagic.azure import online, webservice

        return [*online.endpoints_in(self), *webservice.endpoints_in(self)]

    def endpoint(self, name: str) -> Any:
        """The workspace's endpoint ``name`` of any kind, or None."""
        from mlmagic.azure import online, webservice

        return online.endpoint_in(self, name) or webservice.endpoint_in(self, name)

    def studio_link(self, path: str) -> str:
        """An Azure ML studio page of the workspace."""
        return f"{sdk.studio_url().rstrip('/')}/{path}?wsid={self.ref.arm_id}"

    @functools.cached_property
    def v1(self) -> Any:
        """An azureml-core (SDK v1) ``Workspace`` signing in with the same credential; tokens
        are asked for per audience, so they refresh as the credential does."""
        try:
            from azureml.core import Workspace
            from azureml.core.authentication import TokenAuthentication
        except ImportError:
            raise MissingExtra(INSTALL_V1) from None
        credential = self.credential
        auth = TokenAuthentication(
            lambda audience: credential.get_token(audience.rstrip("/") + "/.default").token)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # SDK v1 announcing its own end
            return Workspace(self.ref.subscription, self.ref.resource_group, self.ref.name,
                             auth=auth)



def handles(uri: str) -> bool:
    """Azure ML tracking URIs, ``azureml://<region>.api.azureml.ms/mlflow/…/workspaces/NAME``."""
    return uri.lower().startswith("azureml://")


def open(uri: str, timeout: float) -> Backend:
    """A workspace named by its tracking URI, reached with the default credential chain."""
    ref = WorkspaceRef.from_config(workspace_of_uri(uri), "this azureml:// URI")
    return open_workspace(ref, credential("default"), timeout)


def tracking_uri_of(ref: WorkspaceRef, region: str) -> str:
    """The MLflow tracking URI of a workspace in ``region`` (public cloud), the form
    ``azureml://<region>.api.azureml.ms/mlflow/v1.0/subscriptions/…/workspaces/NAME`` that
    the workspace reports and :func:`workspace_of_uri` reads back."""
    return f"azureml://{region}.api.azureml.ms/mlflow/v1.0{ref.arm_id}"


def workspace_of_uri(uri: str) -> dict:
    """The workspace an ``azureml://`` tracking URI names, as the keys of its config.json."""
    found = WORKSPACE_ID.search(urlparse(uri).path)
    if not found:
        raise InvalidInput(
            "this azureml:// URI names no workspace (…/subscriptions/…/resourceGroups/…/"
            "workspaces/NAME). Use %aml_connect --config config.json instead."
        )
    return dict(zip(CONFIG_KEYS, found.groups(), strict=True))


def credential(auth: str) -> Any:
    """An azure-identity credential for ``auth``; none of them waits on a prompt unless
    ``interactive`` is asked for."""
    import os

    identity = _identity()
    if auth == "default":
        return identity.DefaultAzureCredential()
    if auth == "cli":
        return identity.AzureCliCredential()
    if auth == "interactive":
        return identity.InteractiveBrowserCredential()
    if auth == "managed-identity":
        return identity.ManagedIdentityCredential(client_id=os.environ.get("AZURE_CLIENT_ID"))
    if auth == "service-principal":
        missing = [name for name in SERVICE_PRINCIPAL_VARIABLES if not os.environ.get(name)]
        if missing:
            raise ConfigError(
                f"a service principal needs {', '.join(missing)} in the environment. Set "
                "them (never in the notebook), then connect again."
            )
        tenant, client_id, secret = (os.environ[n] for n in SERVICE_PRINCIPAL_VARIABLES)
        # login.microsoftonline.com's instance discovery refuses the authority of a private
        # cloud (AZURE_AUTHORITY_HOST); for Microsoft's own hosts MSAL skips it anyway
        return identity.ClientSecretCredential(
            tenant, client_id, secret,
            disable_instance_discovery=bool(os.environ.get("AZURE_AUTHORITY_HOST")))
    raise InvalidInput(f"unknown --auth '{auth}'. Use one of: {', '.join(AUTH_METHODS)}.")


def workspace_of(client: Any) -> dict:
    """The workspace of an azure-ai-ml ``MLClient`` or an azureml-core ``Workspace``, as the
    keys of its config.json."""
    names = (
        getattr(client, "subscription_id", None),
        getattr(client, "resource_group_name", None) or getattr(client, "resource_group", None),
        getattr(client, "workspace_name", None) or getattr(client, "name", None),
    )
    if not all(isinstance(name, str) and name for name in names):
        raise InvalidInput(
            f"a {type(client).__name__} is not an Azure ML workspace handle. Give an "
            "azure-ai-ml MLClient made for a workspace, or an azureml-core Workspace."
        )
    return dict(zip(CONFIG_KEYS, names, strict=True))



def open_workspace(ref: WorkspaceRef, token_credential: Any, timeout: float) -> Backend:
    """Find the workspace in Azure Resource Manager, hand its tracking URI and the credential
    to MLflow, and check that its MLflow API answers."""
    workspace = _look_up(ref, token_credential, timeout)
    tracking_uri = workspace.mlflow_tracking_uri
    host_creds = sdk.use_credential_for_mlflow(tracking_uri, ref.subscription,
                                               ref.resource_group, ref.name, token_credential)
    from mlmagic.backends.server import probe_rest_api

    probe_rest_api(
        host_creds(), f"the workspace '{ref.name}'", timeout,
        refused_advice="Give this identity a role on the workspace (e.g. AzureML Data "
        "Scientist) in the Azure portal, then connect again.",
    )
    return Backend(
        "azure ml", tracking_uri, ui_url=sdk.studio_url(), host_creds=host_creds,
        run_path=f"runs/{{run_id}}?wsid={ref.arm_id}",
        experiment_path=f"experiments/id/{{experiment_id}}?wsid={ref.arm_id}",
        model_path=f"model/{{name}}:{{version}}/details?wsid={ref.arm_id}",
        logged_model_path=None,  # the studio has no page for MLflow 3's logged models
        home_path=f"?wsid={ref.arm_id}",
        facts=(("workspace", ref.name), ("region", workspace.location),
               ("resource group", ref.resource_group), ("subscription", ref.subscription)),
        workspace=WorkspaceHandle(ref, token_credential),
        experiment_name_rule=experiment_name,
        model_name_rule=model_name,
    )


def experiment_name(name: str) -> str:
    """The Azure ML experiment name for ``name``: as it is where Azure ML takes it (a letter
    or digit, then letters, digits, ``_`` and ``-``); a Databricks workspace path becomes its
    parts after the user's folder, joined by ``-`` (``/Users/me@x.com/churn/train`` →
    ``churn-train``), other characters ``_``."""
    if EXPERIMENT_NAME.fullmatch(name):
        return name
    parts = [part for part in name.split("/") if part]
    if len(parts) > 2 and parts[0] in ("Users", "Repos"):
        parts = parts[2:]
    elif len(parts) > 1 and parts[0] in ("Shared", "Workspace"):
        parts = parts[1:]
    mapped = re.sub(r"[^A-Za-z0-9_-]", "_", "-".join(parts)).lstrip("_-")[:255]
    return mapped or "Default"


def model_name(name: str) -> str:
    """The Azure ML model name for ``name``: as it is where Azure ML takes it (a letter or
    digit, then letters, digits, ``_`` and ``-``, at most 255); otherwise each run of other
    characters becomes ``-`` (Unity Catalog's ``main.default.churn`` → ``main-default-churn``,
    so models of two schemas stay apart)."""
    if MODEL_NAME.fullmatch(name):
        return name
    mapped = re.sub(r"[^A-Za-z0-9_-]+", "-", name).lstrip("_-")[:255].rstrip("-")
    return mapped or "model"


def _identity():
    try:
        import azure.identity
    except ImportError:
        raise MissingExtra(INSTALL) from None
    return azure.identity


def _look_up(ref: WorkspaceRef, token_credential: Any, timeout: float):
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
    )

    try:
        with sdk.quiet():
            client = WorkspaceHandle(ref, token_credential).ml_client()
            return client.workspaces.get(
                ref.name, connection_timeout=min(3.0, timeout), read_timeout=timeout,
                retry_total=0,
            )
    except ImportError:
        raise MissingExtra(INSTALL) from None
    except ClientAuthenticationError:
        raise ConnectionFailed(NO_SIGN_IN) from None
    except ServiceRequestError as error:
        from mlmagic.base.failures import network_failure

        raise ConnectionFailed(
            f"cannot reach Azure Resource Manager ({network_failure(error) or 'no answer'}). "
            "Check the network, or the cloud in AZUREML_CURRENT_CLOUD."
        ) from None
    except HttpResponseError as error:
        raise _arm_failure(error, ref) from None
    except Exception as error:
        if type(error).__name__ != "MlException":  # azure-ai-ml's own checks (even on import)
            raise
        raise ConfigError(f"Azure ML: {str(error).strip()} Check AZUREML_CURRENT_CLOUD and "
                          "ARM_CLOUD_METADATA_URL, or unset them for the public cloud.") from None


def _arm_failure(error: Any, ref: WorkspaceRef) -> Exception:
    code = getattr(getattr(error, "error", None), "code", None) or ""
    status = getattr(error, "status_code", None)
    if code == "SubscriptionNotFound":
        return NotFound(f"no subscription '{ref.subscription}' is visible to this identity. "
                        "Check the subscription id (az account list).")
    if code == "ResourceGroupNotFound":
        return NotFound(f"no resource group '{ref.resource_group}' in subscription "
                        f"'{ref.subscription}'. Check the name in the Azure portal.")
    if status == 404:
        return NotFound(f"no workspace '{ref.name}' in resource group '{ref.resource_group}'. "
                        "Check the name in the Azure portal or in config.json.")
    if status in (401, 403):
        return ConnectionFailed(
            f"Azure refused access to the workspace '{ref.name}' ({code or status}). Check "
            "that this identity has a role on it, or sign in again."
        )
    return ConnectionFailed(f"Azure Resource Manager answered HTTP {status} ({code}) for the "
                            f"workspace '{ref.name}'. Try again, or check Azure's status page.")
