"""Strict schema validation of rendered objects: built-in kinds and the CRD kinds the charts render.

Built-in kinds go through kubernetes-validate with strict=True (unknown fields fail); custom resources go
through the openAPIV3Schema of their CRD, read from the upstream chart tarball at test time and made strict
the way the API server's strict field validation is. A kind with no schema at all is an error instead of
passing silently (kubernetes-validate alone would only warn).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jsonschema
import kubernetes_validate
from chart_render import CRD_SCHEMA_SKIPPED, CRD_SOURCES, KUBE_VERSION, crd_schema

OBJECT_META_FIELDS = {"name", "namespace", "labels", "annotations"}


@cache
def _crd_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    schema = crd_schema(api_version, kind)
    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return validator_class(schema)


def _object_meta_errors(doc: dict[str, Any]) -> list[str]:
    meta = doc.get("metadata") or {}
    errors = [f"metadata.{key} is not expected in a chart" for key in set(meta) - OBJECT_META_FIELDS]
    for field in ("labels", "annotations"):
        errors += [
            f"metadata.{field}.{k} is not a string"
            for k, v in (meta.get(field) or {}).items()
            if not isinstance(v, str)
        ]
    return errors


def validation_errors(doc: dict[str, Any]) -> list[str]:
    """Return readable schema errors of one object ([] when valid)."""
    key = (doc.get("apiVersion", ""), doc.get("kind", ""))
    where = f"{key[1]} {doc.get('metadata', {}).get('name')}"
    if key in CRD_SCHEMA_SKIPPED:
        return []
    if key in CRD_SOURCES:
        found = [
            f"{where}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in _crd_validator(*key).iter_errors(doc)
        ]
        return found + [f"{where}: {e}" for e in _object_meta_errors(doc)]
    try:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = "/".join(map(str, error.path))
        return [f"{where}: {path}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [
            f"{where}: no schema for {key[0]} {key[1]} at Kubernetes {KUBE_VERSION}: add a CRD source or a skip reason"
        ]
    return []
