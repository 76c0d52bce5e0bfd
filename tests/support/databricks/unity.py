"""Unity Catalog's model registry, as MLflow's ``databricks-uc`` registry store reaches it
(``/api/2.0/mlflow/unity-catalog/…``), kept in memory.

As Unity Catalog does, it takes three-level names only (``catalog.schema.model``, in a catalog
and schema that exist; names are lower-cased), creates a version as PENDING_REGISTRATION, lets
its files be written (Files API, ``/Models/<catalog>/<schema>/<model>/<version>/``) only until it
is finalized, and finalizes only a version whose files hold an MLmodel. The signature that Unity
Catalog requires is checked by MLflow's client before it asks (``_validate_model_signature``).

Model version files go through databricks-sdk's Files API
(``is-databricks-sdk-models-artifact-repository-enabled`` answers ``sdk_artifacts``, true by
default); with it false, ``generate-temporary-credentials`` answers default storage, and MLflow
uses presigned URLs (``/api/2.0/fs/create-upload-url``) instead.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

from .responses import Response, error, invalid, json_response, not_found

PREFIX = r"/api/2\.0/mlflow/unity-catalog"
THREE_LEVELS = ("Model name must specify all three levels: `catalog_name.schema_name."
                "model_name`, got '{name}'.")


def _now() -> int:
    return int(time.time() * 1000)


class UnityCatalog:
    """Catalogs and schemas (``main.default`` to begin with), registered models and versions."""

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self.schemas: set[tuple[str, str]] = {("main", "default")}
        self.models: dict[str, dict] = {}
        self.sdk_artifacts = True
        self.lock = threading.Lock()

    def add_routes(self) -> None:
        route = self.emulator.route
        models, versions = PREFIX + r"/registered-models", PREFIX + r"/model-versions"
        for method, path, handler in (
            ("POST", models + "/create", self.create_model),
            ("GET", models + "/get", self.get_model),
            ("PATCH", models + "/update", self.update_model),
            ("DELETE", models + "/delete", self.delete_model),
            ("GET", models + "/search", self.search_models),
            ("POST", models + "/alias", self.set_alias),
            ("DELETE", models + "/alias", self.delete_alias),
            ("GET", models + "/alias", self.version_by_alias),
            ("POST", models + "/set-tag", self.set_model_tag),
            ("DELETE", models + "/delete-tag", self.delete_model_tag),
            ("GET", models + ":is-databricks-sdk-models-artifact-repository-enabled",
             self.sdk_enabled),
            ("POST", versions + "/create", self.create_version),
            ("POST", versions + "/finalize", self.finalize_version),
            ("GET", versions + "/get", self.get_version),
            ("PATCH", versions + "/update", self.update_version),
            ("DELETE", versions + "/delete", self.delete_version),
            ("GET", versions + "/search", self.search_versions),
            ("GET", versions + "/get-download-uri", self.download_uri),
            ("POST", versions + "/generate-temporary-credentials", self.temporary_credentials),
            ("POST", versions + "/set-tag", self.set_version_tag),
            ("DELETE", versions + "/delete-tag", self.delete_version_tag),
            ("POST", versions + "/emit-lineage", self.lineage),
        ):
            route(method, path, handler)

    def clear(self) -> None:
        self.sdk_artifacts = True

    # -- names -------------------------------------------------------------------------

    def _name(self, asked: dict) -> str | Response:
        """The full name asked for, lower-cased, or Unity Catalog's refusal."""
        name = str(asked.get("name", ""))
        parts = name.split(".")
        if len(parts) != 3 or not all(parts):
            return invalid(THREE_LEVELS.format(name=name))
        catalog, schema, _ = (p.lower() for p in parts)
        if (catalog, schema) not in self.schemas:
            if not any(c == catalog for c, _ in self.schemas):
                return error(404, "NOT_FOUND", f"Catalog '{catalog}' does not exist.")
            return error(404, "NOT_FOUND", f"Schema '{catalog}.{schema}' does not exist.")
        return name.lower()

    def _model(self, asked: dict) -> dict | Response:
        name = self._name(asked)
        if isinstance(name, Response):
            return name
        if name not in self.models:
            return not_found(f"Registered model '{name}' does not exist.")
        return self.models[name]

    def _version(self, asked: dict) -> tuple[dict, dict] | Response:
        model = self._model(asked)
        if isinstance(model, Response):
            return model
        version = model["versions"].get(str(asked.get("version", "")))
        if version is None:
            return not_found(f"Model version {model['name']}/{asked.get('version')} does not "
                             "exist.")
        return model, version

    @staticmethod
    def _asked(query, body) -> dict:
        return {**(json.loads(body) if body else {}), **query}

    # -- registered models -------------------------------------------------------------

    def _model_view(self, model: dict) -> dict:
        return {key: model[key] for key in ("name", "creation_timestamp",
                                            "last_updated_timestamp", "user_id", "description",
                                            "tags")} | {
            "aliases": [{"alias": a, "version": v} for a, v in sorted(model["aliases"].items())]}

    def create_model(self, query, body, headers, **_) -> Response:
        asked = self._asked(query, body)
        name = self._name(asked)
        if isinstance(name, Response):
            return name
        with self.lock:
            if name in self.models:
                return error(400, "RESOURCE_ALREADY_EXISTS",
                             f"Registered model '{name}' already exists.")
            self.models[name] = {
                "name": name, "creation_timestamp": _now(), "last_updated_timestamp": _now(),
                "user_id": self.emulator.user_of(headers), "description":
                asked.get("description", ""), "tags": asked.get("tags", []), "aliases": {},
                "versions": {}}
        return json_response(200, {"registered_model": self._model_view(self.models[name])})

    def get_model(self, query, body, **_) -> Response:
        model = self._model(self._asked(query, body))
        if isinstance(model, Response):
            return model
        return json_response(200, {"registered_model": self._model_view(model)})

    def update_model(self, query, body, **_) -> Response:
        asked = self._asked(query, body)
        model = self._model(asked)
        if isinstance(model, Response):
            return model
        if asked.get("new_name"):
            return error(404, "NotEmulated", "renaming a Unity Catalog model")
        if "description" in asked:
            model["description"] = asked["description"]
        model["last_updated_timestamp"] = _now()
        return json_response(200, {"registered_model": self._model_view(model)})

    def delete_model(self, query, body, **_) -> Response:
        model = self._model(self._asked(query, body))
        if isinstance(model, Response):
            return model
        self.models.pop(model["name"])
        return json_response(200, {})

    def search_models(self, **_) -> Response:
        return json_response(200, {"registered_models": [
            self._model_view(m) for _, m in sorted(self.models.items())]})

    def set_model_tag(self, query, body, **_) -> Response:
        asked = self._asked(query, body)
        model = self._model(asked)
        if isinstance(model, Response):
            return model
        model["tags"] = [t for t in model["tags"] if t["key"] != asked.get("key")] + [
            {"key": asked.get("key"), "value": asked.get("value", "")}]
        return json_response(200, {})

    def delete_model_tag(self, query, body, **_) -> Response:
        asked = self._asked(query, body)
        model = self._model(asked)
        if isinstance(model, Response):
            return model
        model["tags"] = [t for t in model["tags"] if t["key"] != asked.get("key")]
        return json_response(200, {})

    def set_alias(self, query, body, **_) -> Response:
        asked = self._asked(query, body)
        found = self._version(asked)
        if isinstance(found, Response):
            return found
        model, version = found
        alias = str(asked.get("alias", ""))
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", alias) or re.fullmatch(
                r"[vV]\d+", alias) or alias.lower() == "latest":
            return invalid(f"Invalid alias name '{alias}'.")
        model["aliases"][alias.lower()] = version["version"]
        return json_response(200, {})

    def delete_alias(self, query, body, **_) -> Response:
        asked = self._asked(query, body)
        model = self._model(asked)
        if isinstance(model, Response):
            return model
        model["aliases"].pop(str(asked.get("alias", "")).lower(), None)
        return json_response(200, {})

    def version_by_alias(self, query, body, **_) -> Response:
        asked = self._asked(query, body)
        model = self._model(asked)
        if isinstance(model, Response):
            return model
        number = model["aliases"].get(str(asked.get("alias", "")).lower())
        if number is None:
            return not_found(f"Alias '{asked.get('alias')}' does not exist on model "
                             f"'{model['name']}'.")
        return json_response(200, {"model_version": self._version_view(
            model, model["versions"][number])})

    def sdk_enabled(self, **_) -> Response:
        return json_response(200, {
            "is_databricks_sdk_models_artifact_repository_enabled": self.sdk_artifacts})

    # -- model versions ----------------------------------------------------------------

    def _version_view(self, model: dict, version: dict) -> dict:
        aliases = [{"alias": a, "version": v} for a, v in sorted(model["aliases"].items())
                   if v == version["version"]]
        return {**version, "aliases": aliases}

    def create_version(self, query, body, headers, **_) -> Response:
        asked = self._asked(query, body)
        model = self._model(asked)
        if isinstance(model, Response):
            return model
        if not asked.get("source"):
            return invalid("Missing required field: source")
        with self.lock:
            number = str(len(model["versions"]) + 1)
            catalog, schema, name = model["name"].split(".")
            version = {
                "name": model["name"], "version": number, "creation_timestamp": _now(),
                "last_updated_timestamp": _now(), "user_id": self.emulator.user_of(headers),
                "description": asked.get("description", ""), "source": asked["source"],
                "run_id": asked.get("run_id", ""), "status": "PENDING_REGISTRATION",
                "run_tracking_server_id": asked.get("run_tracking_server_id", ""),
                "storage_location": f"/Models/{catalog}/{schema}/{name}/{number}",
                "tags": asked.get("tags", []), "model_id": asked.get("model_id", "")}
            model["versions"][number] = version
        return json_response(200, {"model_version": self._version_view(model, version)})

    def finalize_version(self, query, body, **_) -> Response:
        found = self._version(self._asked(query, body))
        if isinstance(found, Response):
            return found
        model, version = found
        if version["status"] != "PENDING_REGISTRATION":
            return invalid(f"Model version {model['name']}/{version['version']} is not pending "
                           "registration.")
        files = self.emulator.storage.stored(version["storage_location"])
        if f"{version['storage_location']}/MLmodel" not in files:
            return invalid(f"Model version {model['name']}/{version['version']} has no MLmodel "
                           "file in its storage location: upload the model's files first.")
        version["status"] = "READY"
        version["last_updated_timestamp"] = _now()
        return json_response(200, {"model_version": self._version_view(model, version)})

    def get_version(self, query, body, **_) -> Response:
        found = self._version(self._asked(query, body))
        if isinstance(found, Response):
            return found
        return json_response(200, {"model_version": self._version_view(*found)})

    def update_version(self, query, body, **_) -> Response:
        asked = self._asked(query, body)
        found = self._version(asked)
        if isinstance(found, Response):
            return found
        if "description" in asked:
            found[1]["description"] = asked["description"]
        return json_response(200, {"model_version": self._version_view(*found)})

    def delete_version(self, query, body, **_) -> Response:
        found = self._version(self._asked(query, body))
        if isinstance(found, Response):
            return found
        model, version = found
        model["versions"].pop(version["version"])
        model["aliases"] = {a: v for a, v in model["aliases"].items() if v != version["version"]}
        return json_response(200, {})

    def search_versions(self, query, body, **_) -> Response:
        asked = self._asked(query, body)
        wanted = re.fullmatch(r"\s*name\s*=\s*['\"]([^'\"]+)['\"]\s*", asked.get("filter", ""))
        if wanted is None:
            return invalid(f"Unsupported filter query : `{asked.get('filter', '')}`. Please "
                           "specify your filter parameter in the format `name = 'model_name'`.")
        model = self._model({"name": wanted[1]})
        if isinstance(model, Response):
            return model
        return json_response(200, {"model_versions": [
            self._version_view(model, v) for _, v in sorted(
                model["versions"].items(), key=lambda item: -int(item[0]))]})

    def download_uri(self, query, body, **_) -> Response:
        found = self._version(self._asked(query, body))
        if isinstance(found, Response):
            return found
        return json_response(200, {"artifact_uri": found[1]["storage_location"]})

    def temporary_credentials(self, query, body, **_) -> Response:
        found = self._version(self._asked(query, body))
        if isinstance(found, Response):
            return found
        return json_response(200, {"credentials": {
            "storage_mode": "DEFAULT_STORAGE", "expiration_time": _now() + 3600 * 1000}})

    def set_version_tag(self, query, body, **_) -> Response:
        asked = self._asked(query, body)
        found = self._version(asked)
        if isinstance(found, Response):
            return found
        version = found[1]
        version["tags"] = [t for t in version["tags"] if t["key"] != asked.get("key")] + [
            {"key": asked.get("key"), "value": asked.get("value", "")}]
        return json_response(200, {})

    def delete_version_tag(self, query, body, **_) -> Response:
        asked = self._asked(query, body)
        found = self._version(asked)
        if isinstance(found, Response):
            return found
        found[1]["tags"] = [t for t in found[1]["tags"] if t["key"] != asked.get("key")]
        return json_response(200, {})

    def lineage(self, **_) -> Response:
        return json_response(200, {})

    # -- the Files API's check ---------------------------------------------------------

    def refused_write(self, location: str) -> Response | None:
        """None if the files of model version ``catalog/schema/model/version`` may be written
        (it is pending registration); else the refusal."""
        catalog, schema, model, number = location.split("/")
        found = self.models.get(f"{catalog}.{schema}.{model}".lower())
        version = found and found["versions"].get(number)
        if not version:
            return not_found(f"Model version {catalog}.{schema}.{model}/{number} does not exist.")
        if version["status"] != "PENDING_REGISTRATION":
            return error(403, "PERMISSION_DENIED", f"Model version {version['name']}/{number} "
                         "is finalized: its files can no longer be written.")
        return None
