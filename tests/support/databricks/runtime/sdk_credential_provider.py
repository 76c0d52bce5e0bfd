"""The runtime's credential provider for databricks-sdk's ``runtime`` auth: the workspace's
API URL and, at every request, the notebook's current token."""

from __future__ import annotations

from dbruntime.databricks_repl_context import get_context


def init_runtime_native_auth():
    """(host, a function giving the request's headers)."""
    context = get_context()
    if not context.apiUrl:
        return None, None

    def inner() -> dict[str, str]:
        return {"Authorization": f"Bearer {get_context().apiToken}"}

    return context.apiUrl, inner
