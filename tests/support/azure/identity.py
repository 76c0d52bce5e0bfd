"""Microsoft Entra ID as far as the Azure SDKs need it: an App Service-style managed-identity
token endpoint, a tenant's OpenID configuration and OAuth 2.0 token endpoint for service
principals (client credentials), and the check of the bearer tokens it issued.

A token's ``aud`` claim is the resource asked for (a scope without its ``/.default``), as
Entra ID's is; the services that read a token say which audiences they take
(:meth:`Identity.refusal`).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field

from .responses import Response, json_response

TENANT = "72f988bf-0000-4000-8000-000000000e70"
IDENTITY_HEADER = "emulator-identity-header"
MANAGED_IDENTITY = "emulator-identity"


@dataclass
class Identity:
    """The tenant: its service principals and the tokens it issued (token -> expiry)."""

    authority: str  # the emulator's URL, as AZURE_AUTHORITY_HOST
    token_lifetime: float = 3600.0
    refuse_tokens: bool = False  # the managed-identity endpoint finds no identity
    tokens: dict[str, float] = field(default_factory=dict)
    principals: dict[str, str] = field(default_factory=dict)  # client id -> secret

    def add_principal(self) -> tuple[str, str]:
        """Register a new service principal; its (client id, secret)."""
        client_id, secret = str(uuid.uuid4()), secrets.token_urlsafe(30)
        self.principals[client_id] = secret
        return client_id, secret

    def issue(self, audience: str, subject: str) -> tuple[str, float]:
        """A new token for ``audience``, and when it expires."""
        expires_on = time.time() + self.token_lifetime
        token = _jwt({"aud": audience, "iss": f"{self.authority}/{TENANT}/v2.0", "tid": TENANT,
                      "oid": subject, "appid": subject, "iat": int(time.time()),
                      "exp": int(expires_on), "jti": secrets.token_urlsafe(16)})
        self.tokens[token] = expires_on
        return token, expires_on

    def refusal(self, headers, audiences: set[str]) -> tuple[str, str] | None:
        """None if the request carries a live token this tenant issued for one of
        ``audiences``; else ARM's (code, message) for it."""
        token = (headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if token not in self.tokens:
            return "InvalidAuthenticationToken", "The access token is invalid."
        if self.tokens[token] < time.time():
            return ("ExpiredAuthenticationToken",
                    "The access token expiry UTC time is earlier than current UTC time.")
        audience = claims(token)["aud"]
        if _normal(audience) not in {_normal(a) for a in audiences}:
            allowed = ",".join(f"'{a}'" for a in sorted(audiences))
            return ("InvalidAuthenticationTokenAudience",
                    f"The access token has been obtained for wrong audience or resource "
                    f"'{audience}'. It should exactly match with one of the allowed audiences "
                    f"{allowed}.")
        return None

    # -- managed identity ------------------------------------------------------------------

    def managed_identity_token(self, query, headers, body, **_) -> Response:
        """App Service's identity endpoint (IDENTITY_ENDPOINT, and azureml-core's
        MSI_ENDPOINT flavour): a token for ``resource``."""
        asked = {**dict(urllib.parse.parse_qsl(body.decode())), **query}
        if IDENTITY_HEADER not in (headers.get("X-IDENTITY-HEADER"), headers.get("Secret")) \
                and headers.get("Metadata") != "true":
            return json_response(401, {"error": {"code": "Unauthorized",
                                                 "message": "the identity header is missing"}})
        if self.refuse_tokens:
            return json_response(400, {"error": "invalid_request",
                                       "error_description": "Identity not found"})
        if not asked.get("resource"):
            return json_response(400, {"error": "invalid_request", "error_description":
                                       "Required query variable 'resource' is missing"})
        token, expires_on = self.issue(asked["resource"], MANAGED_IDENTITY)
        return json_response(200, {
            "access_token": token, "expires_on": str(int(expires_on)),
            "expires_in": str(int(self.token_lifetime)), "resource": asked["resource"],
            "token_type": "Bearer", "client_id": MANAGED_IDENTITY})

    # -- the tenant's authority (service principals) --------------------------------------

    def openid_configuration(self, tenant, **_) -> Response:
        """``/{tenant}/v2.0/.well-known/openid-configuration``, which MSAL reads when
        instance discovery is off."""
        if tenant != TENANT:
            return _aad_error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        base = f"{self.authority}/{TENANT}"
        return json_response(200, {
            "issuer": f"{base}/v2.0",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "jwks_uri": f"{self.authority}/{TENANT}/discovery/v2.0/keys",
            "token_endpoint_auth_methods_supported": ["client_secret_post",
                                                      "client_secret_basic"],
            "response_types_supported": ["code", "id_token", "token"],
            "tenant_region_scope": None,
        })

    def client_credentials_token(self, tenant, body, **_) -> Response:
        """``/{tenant}/oauth2/v2.0/token`` for the client-credentials grant: the client's
        secret is checked, and the token is for the one resource the scope names."""
        form = dict(urllib.parse.parse_qsl(body.decode()))
        refused = self._refused_client(tenant, form)
        if refused:
            return refused
        audience = _audience_of(form.get("scope", ""))
        if audience is None:
            return _aad_error(400, "invalid_scope", 1002012, (
                f"The provided value for scope {form.get('scope', '')} is not valid. Client "
                "credential flows must have a scope value with /.default suffixed to the "
                "resource identifier (application ID URI)."))
        token, _ = self.issue(audience, form["client_id"])
        lifetime = int(self.token_lifetime)
        return json_response(200, {"token_type": "Bearer", "expires_in": lifetime,
                                   "ext_expires_in": lifetime, "access_token": token})

    def _refused_client(self, tenant: str, form: dict) -> Response | None:
        if tenant != TENANT:
            return _aad_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            return _aad_error(400, "unsupported_grant_type", 70003,
                              "The app requested an unsupported grant type.")
        client_id = form.get("client_id", "")
        if client_id not in self.principals:
            return _aad_error(400, "unauthorized_client", 700016, (
                f"Application with identifier '{client_id}' was not found in the directory."))
        if not secrets.compare_digest(form.get("client_secret", ""), self.principals[client_id]):
            return _aad_error(401, "invalid_client", 7000215,
                              "Invalid client secret provided. Ensure the secret being sent in "
                              "the request is the client secret value, not the client secret ID.")
        return None


def claims(token: str) -> dict:
    """The claims of a token this tenant issued."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _audience_of(scope: str) -> str | None:
    """The one resource that a client-credentials scope names (``RESOURCE/.default``)."""
    resources = {s.removesuffix("/.default") for s in scope.split() if s.endswith("/.default")}
    if len(resources) != 1 or len(scope.split()) != 1:
        return None
    return resources.pop()


def _normal(audience: str) -> str:
    return audience.rstrip("/").lower()


def _aad_error(status: int, error: str, number: int, message: str) -> Response:
    return json_response(status, {
        "error": error, "error_description": f"AADSTS{number}: {message}",
        "error_codes": [number], "trace_id": str(uuid.uuid4()),
        "correlation_id": str(uuid.uuid4())})


def _jwt(claims: dict) -> str:
    """An unsigned token shaped like Entra ID's (azureml-core and azure-ai-ml read its tenant
    and audience from it)."""
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'typ': 'JWT', 'alg': 'none'})}.{part(claims)}.emulator"
