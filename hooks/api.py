"""The shape of Metacontroller's hook requests (hook version v2), checked at the edge.

Only the envelope is typed: the parent's identity and the maps of children. The spec
is validated by the hooks themselves, because an invalid spec must still get a 200
that keeps every child (a 4xx here is for requests that are not Metacontroller's).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# {"Kind.group/version": {"namespace/name": object}}
ObjectMap = dict[str, dict[str, dict[str, Any]] | None]


class ObjectMeta(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1)
    namespace: str = ""
    uid: str = ""
    generation: int = 0


class Parent(BaseModel):
    model_config = ConfigDict(extra="allow")

    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: Any = None
    status: Any = None


class SyncRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    controller: dict[str, Any] = {}
    parent: Parent
    children: ObjectMap = {}
    related: ObjectMap = {}
    finalizing: bool = False


class CustomizeRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    controller: dict[str, Any] = {}
    parent: Parent
