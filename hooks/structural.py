"""Check a value against a structural schema, as the API server does for a CRD.

The hooks use it for what pydantic models would only duplicate: spec.template, whose schema
is Kubernetes' own PodTemplateSpec (hooks.podtemplate). It covers what that schema uses:
types, int-or-string, required, enum, unknown fields, lengths, patterns and quantities.
"""

from __future__ import annotations

import re
from functools import cache

from .quantity import QUANTITY_PATTERN, canonical_quantity

_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
}
_NAMES = {"object": "an object", "array": "a list", "string": "a string", "integer": "an integer"}


def errors(schema: dict, value, path: str, limit: int = 3) -> list[str]:
    """Up to ``limit`` reasons why ``value`` breaks ``schema``, each as ``path: reason``."""
    found: list[str] = []
    _check(schema, value, path, found, limit)
    return found


def without_nulls(value):
    """``value`` without the null fields of its objects: the API server drops those of a CR."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def _check(schema: dict, value, path: str, found: list[str], limit: int) -> None:
    if len(found) >= limit:
        return
    if schema.get("x-kubernetes-int-or-string"):
        if not _is(value, "integer") and not isinstance(value, str):
            found.append(f"{path}: must be an integer or a string")
        elif isinstance(value, str) and len(value) > schema.get("maxLength", len(value)):
            found.append(f"{path}: longer than {schema['maxLength']} characters")
        elif schema.get("pattern") == QUANTITY_PATTERN:
            try:
                canonical_quantity(value)
            except ValueError as exc:
                found.append(f"{path}: {exc}")
        return
    kind = schema.get("type")
    if kind and not _is(value, kind):
        found.append(f"{path}: must be {_NAMES.get(kind, 'a ' + kind)}")
        return
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{path}: must be one of {', '.join(map(str, schema['enum']))}")
    if isinstance(value, str):
        if len(value) > schema.get("maxLength", len(value)):
            found.append(f"{path}: longer than {schema['maxLength']} characters")
        if len(value) < schema.get("minLength", 0):
            found.append(f"{path}: must not be empty" if schema["minLength"] == 1 else f"{path}: too short")
        if "pattern" in schema and not _pattern(schema["pattern"]).search(value):
            found.append(f"{path}: must match {schema['pattern']}")
    elif isinstance(value, dict):
        properties = schema.get("properties")
        if len(value) > schema.get("maxProperties", len(value)):
            found.append(f"{path}: at most {schema['maxProperties']} entries")
        for name in schema.get("required", []):
            if name not in value:
                found.append(f"{path}.{name}: required")
        for name, item in value.items():
            if properties is not None and name in properties:
                _check(properties[name], item, f"{path}.{name}", found, limit)
            elif isinstance(schema.get("additionalProperties"), dict):
                _check(schema["additionalProperties"], item, f"{path}[{name}]", found, limit)
            elif properties is not None and not schema.get("x-kubernetes-preserve-unknown-fields"):
                found.append(f"{path}.{name}: unknown field")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        if len(value) < schema.get("minItems", 0):
            found.append(f"{path}: needs at least {schema['minItems']} items")
        if len(value) > schema.get("maxItems", len(value)):
            found.append(f"{path}: at most {schema['maxItems']} items")
        for i, item in enumerate(value):
            _check(schema["items"], item, f"{path}[{i}]", found, limit)


def _is(value, kind: str) -> bool:
    if isinstance(value, bool) and kind != "boolean":
        return False
    return isinstance(value, _TYPES.get(kind, object))


@cache
def _pattern(pattern: str) -> re.Pattern:
    return re.compile(pattern)
