"""A stand-in for the Databricks runtime's ``dbruntime`` package, copied onto a kernel's
``PYTHONPATH`` by tests/support/databricks/notebook.py (this folder is its source)."""

from __future__ import annotations


class UserNamespaceInitializer:
    """What databricks-sdk's ``databricks.sdk.runtime`` asks for the notebook's globals."""

    _instance = None

    @classmethod
    def getOrCreate(cls):  # noqa: N802 - the runtime's name
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def get_namespace_globals(self) -> dict:
        import IPython

        shell = IPython.get_ipython()
        return shell.user_ns if shell is not None else {}
