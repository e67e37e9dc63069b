"""The list of contracts: each names its typed record and the JSON Schema that describes it.

tests/edge_agent/contracts/test_contracts.py checks every entry (the record's fields are the schema's
properties, the required ones alike) and fails when a schema file has no entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge_agent.schemas import load_schema


@dataclass(frozen=True)
class Contract:
    name: str
    record: type  # a TypedDict
    schema: str  # file stem in edge_agent/schemas
    pointer: str = ""  # JSON pointer to the record's part of the schema ("/$defs/selection")

    def schema_doc(self) -> dict[str, Any]:
        doc: Any = load_schema(self.schema)
        for part in filter(None, self.pointer.split("/")):
            doc = doc[part]
        assert isinstance(doc, dict)
        return doc


CONTRACTS: dict[str, Contract] = {}


def register(name: str, record: type, schema: str, pointer: str = "") -> type:
    CONTRACTS[name] = Contract(name, record, schema, pointer)
    return record
