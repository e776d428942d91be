"""Validate request bodies against the official OpenSearch API specification.

The specification (OpenAPI 3.1 YAML, ``tests/data/opensearch/spec``) is loaded into a
``referencing`` registry, one resource per file, so ``$ref``s across files resolve; each
operation's request body schema is then checked with jsonschema (draft 2020-12, which
OpenAPI 3.1 schemas are).

Strict mode: the specification leaves most objects open (no ``additionalProperties``), so a
misspelt key (``"sortt"``, ``"filtre"``) would pass. :func:`strict` adds
``unevaluatedProperties: false`` to every object schema that lists ``properties`` and says
nothing about extra keys, so unknown keys fail too. That is stricter than the
specification, never looser.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC = Path(__file__).resolve().parents[2] / "data" / "opensearch" / "spec"
BASE = "file:///spec/"

BODIES = {
    "bulk": ("namespaces/_core.yaml", "bulk", "application/x-ndjson"),
    "search": ("namespaces/_core.yaml", "search", "application/json"),
    "delete_by_query": ("namespaces/_core.yaml", "delete_by_query", "application/json"),
    "indices.put_index_template": (
        "namespaces/indices.yaml",
        "indices.put_index_template",
        "application/json",
    ),
    "indices.create": ("namespaces/indices.yaml", "indices.create", "application/json"),
    "indices.update_aliases": (
        "namespaces/indices.yaml",
        "indices.update_aliases",
        "application/json",
    ),
}


ALWAYS_CLOSED = frozenset({"_common.yaml#SortOptions"})
"""``SortCombinations`` is a ``oneOf`` of ``FieldWithOrder`` (``{"field": {"order": ...}}``)
and ``SortOptions`` (``_score``/``_geo_distance``/``_script``), which the specification
leaves open, so every field sort matches both and fails ``oneOf``. Closing ``SortOptions``
(as OpenSearch treats it) makes the field sort match exactly one."""


def _allof_members(documents: dict[str, Any]) -> set[str]:
    """``<file name>#<schema name>`` of every schema used as an ``allOf``/``oneOf``/``anyOf``
    member: a member may see only part of the object, so it must stay open (the schema
    combining them is closed, and ``unevaluatedProperties`` sees through the members)."""
    members: set[str] = set()

    def walk(node: Any, file: str) -> None:
        if isinstance(node, dict):
            parts = [*node.get("allOf", []), *node.get("oneOf", []), *node.get("anyOf", [])]
            for member in parts:
                ref = member.get("$ref") if isinstance(member, dict) else None
                if ref:
                    target, _, pointer = ref.partition("#")
                    name = Path(target).name if target else file
                    members.add(f"{name}#{pointer.rsplit('/', 1)[-1]}")
            for value in node.values():
                walk(value, file)
        elif isinstance(node, list):
            for value in node:
                walk(value, file)

    for file, doc in documents.items():
        walk(doc, file)
    return members


def strict(
    node: Any, *, open_: bool = False, members: frozenset[str] = frozenset(), file: str = ""
) -> Any:
    """Close every object schema that lists ``properties`` (or combines parts with ``allOf``)
    and is silent on extra keys, except members of ``allOf``/``oneOf``/``anyOf``."""
    if isinstance(node, list):
        return [strict(v, members=members, file=file) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("allOf", "oneOf", "anyOf") and isinstance(value, list):
            out[key] = [strict(v, open_=True, members=members, file=file) for v in value]
        elif key == "schemas" and isinstance(value, dict):
            out[key] = {
                name: strict(v, open_=f"{file}#{name}" in members, members=members, file=file)
                for name, v in value.items()
            }
        else:
            out[key] = strict(value, members=members, file=file)
    if (
        not open_
        and ("properties" in out or "allOf" in out)
        and not {"additionalProperties", "patternProperties", "unevaluatedProperties"} & out.keys()
    ):
        out["unevaluatedProperties"] = False
    return out


@functools.cache
def registry() -> Registry[Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    documents = {
        path.relative_to(SPEC).as_posix(): yaml.load(path.read_text(encoding="utf-8"), loader)
        for path in sorted(SPEC.rglob("*.yaml"))
    }
    members = frozenset(_allof_members({Path(k).name: v for k, v in documents.items()}))
    members -= ALWAYS_CLOSED
    resources = [
        (
            BASE + rel,
            Resource(strict(doc, members=members, file=Path(rel).name), specification=DRAFT202012),
        )
        for rel, doc in documents.items()
    ]
    return Registry().with_resources(resources)  # type: ignore[no-any-return]


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


@functools.cache
def validator(operation: str) -> jsonschema.protocols.Validator:
    file, name, media = BODIES[operation]
    ref = f"{BASE}{file}#/" + _pointer(
        "components", "requestBodies", name, "content", media, "schema"
    )
    return jsonschema.Draft202012Validator({"$ref": ref}, registry=registry())


def errors(operation: str, body: Any) -> list[str]:
    """Every violation of ``body`` against the operation's request body schema."""
    found = validator(operation).iter_errors(body)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in found]


def schema_errors(file: str, schema: str, value: Any) -> list[str]:
    """Violations of ``value`` against ``components/schemas/<schema>`` of ``file``."""
    ref = f"{BASE}schemas/{file}#/components/schemas/{schema}"
    found = jsonschema.Draft202012Validator({"$ref": ref}, registry=registry()).iter_errors(value)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in found]
