"""``dbutils`` as a notebook has it, for what Python code reaches through it: the notebook's
Java-side context (``notebook.entry_point.getDbutils().notebook().getContext()``, answering in
Scala ``Option`` shapes), ``secrets`` and ``widgets``."""

from __future__ import annotations

import json
import tempfile
from typing import Any

from dbruntime._context import load


class Option:
    """A Scala ``Option`` as py4j shows it."""

    def __init__(self, value: Any = None) -> None:
        self._value = value

    def isDefined(self) -> bool:  # noqa: N802 - Scala's names
        return self._value is not None

    def isEmpty(self) -> bool:  # noqa: N802
        return self._value is None

    def get(self) -> Any:
        if self._value is None:
            raise ValueError("java.util.NoSuchElementException: None.get")
        return self._value

    def getOrElse(self, default: Any) -> Any:  # noqa: N802
        return default if self._value is None else self._value


class ScalaMap:
    def __init__(self, values: dict[str, Any]) -> None:
        self._values = {k: v for k, v in values.items() if v is not None}

    def get(self, key: str) -> Option:
        return Option(self._values.get(key))

    def apply(self, key: str) -> Any:
        return self._values[key]

    def contains(self, key: str) -> bool:
        return key in self._values


class CommandContext:
    """The Java ``CommandContext`` of the command running now."""

    def __init__(self) -> None:
        self._context = load()["context"]

    def __getattr__(self, name: str):
        if name.startswith("_") or name not in self._context:
            raise AttributeError(name)
        return lambda: Option(self._context[name])

    def tags(self) -> ScalaMap:
        c = self._context
        return ScalaMap({"orgId": c["workspaceId"], "clusterId": c["clusterId"],
                         "browserHostName": c["browserHostName"], "user": c["user"],
                         "notebookId": c["notebookId"], "jobId": c["jobId"],
                         "idInJob": c["idInJob"], "jobTaskType": c["jobTaskType"]})

    def extraContext(self) -> ScalaMap:  # noqa: N802
        c = self._context
        return ScalaMap({"notebook_path": c["notebookPath"], "api_url": c["apiUrl"],
                         "api_token": c["apiToken"], "aclPathOfAclRoot": c["aclPathOfAclRoot"]})

    def toJson(self) -> str:  # noqa: N802
        return json.dumps({"tags": self.tags()._values,
                           "extraContext": self.extraContext()._values})


class _NotebookUtils:
    def getContext(self) -> CommandContext:  # noqa: N802
        return CommandContext()


class _JavaDbutils:
    def notebook(self) -> _NotebookUtils:
        return _NotebookUtils()


class _Quiet:
    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


class EntryPoint:
    """The py4j entry point of the notebook's driver."""

    def getDbutils(self) -> _JavaDbutils:  # noqa: N802
        return _JavaDbutils()

    def getNonUcApiToken(self) -> str:  # noqa: N802
        return load()["context"]["apiToken"]

    def getDriverConf(self):  # noqa: N802
        return type("DriverConf", (), {"workflowSslTrustAll": lambda self: False})()

    def getLogger(self):  # noqa: N802
        return _Quiet()

    def getJobGroupId(self):  # noqa: N802
        return load()["context"]["jobGroupId"]

    def getReplId(self) -> str:  # noqa: N802
        return load()["context"]["replId"]

    def putMlflowProperties(self, *args) -> None:  # noqa: N802
        pass

    def clearMlflowProperties(self) -> None:  # noqa: N802
        pass

    def _temp(self) -> str:
        return load().get("temp") or tempfile.gettempdir()

    getReplLocalTempDir = getUserLocalTempDir = getReplNFSTempDir = getUserNFSTempDir = _temp  # noqa: N815


class _NotebookHandler:
    def __init__(self, entry_point: EntryPoint) -> None:
        self.entry_point = entry_point

    def exit(self, value: str) -> None:
        raise SystemExit(value)


class SecretNotFound(Exception):
    pass


class _Secrets:
    def get(self, scope: str, key: str) -> str:
        found = load()["secrets"].get(scope, {})
        if key not in found:
            raise SecretNotFound(f"Secret does not exist with scope: {scope} and key: {key}")
        return found[key]

    def list(self, scope: str) -> list:
        if scope not in load()["secrets"]:
            raise SecretNotFound(f"Scope {scope} does not exist")
        return [type("SecretMetadata", (), {"key": k})() for k in load()["secrets"][scope]]

    def listScopes(self) -> list:  # noqa: N802
        return [type("SecretScope", (), {"name": s})() for s in load()["secrets"]]


class InputWidgetNotDefined(Exception):
    pass


class _Widgets:
    def __init__(self) -> None:
        self._values: dict[str, str] = {}

    def text(self, name: str, defaultValue: str = "", label: str | None = None) -> None:  # noqa: N803
        self._values.setdefault(name, defaultValue)

    dropdown = combobox = multiselect = text

    def get(self, name: str) -> str:
        if name not in self._values:
            raise InputWidgetNotDefined(f"No input widget named {name} is defined")
        return self._values[name]

    def getArgument(self, name: str, defaultValue: str | None = None) -> str | None:  # noqa: N802, N803
        return self._values.get(name, defaultValue)

    def remove(self, name: str) -> None:
        self._values.pop(name, None)

    def removeAll(self) -> None:  # noqa: N802
        self._values.clear()


class DBUtils:
    """The notebook's ``dbutils``."""

    def __init__(self) -> None:
        self.entry_point = EntryPoint()
        self.notebook = _NotebookHandler(self.entry_point)
        self.secrets = _Secrets()
        self.widgets = _Widgets()

    def help(self) -> None:
        print("dbutils (emulated): notebook, secrets, widgets")
