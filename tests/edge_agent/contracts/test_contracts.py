"""Each contract has one typed record and one JSON Schema, and the two say the same thing:
the record's fields are the schema's properties, its required fields the schema's required
ones. A schema file without a typed record (or a record without a schema) fails here."""

from __future__ import annotations

import typing
from importlib import resources

import pytest

from edge_agent.contracts import CONTRACTS, evaluation
from edge_agent.schemas import validation_errors

SCHEMA_FILES = sorted(
    p.name.removesuffix(".schema.json")
    for p in resources.files("edge_agent.schemas").iterdir()
    if p.name.endswith(".schema.json")
)


def test_every_schema_has_a_typed_record() -> None:
    typed = {c.schema for c in CONTRACTS.values()}
    assert SCHEMA_FILES, "no schema files found"
    assert set(SCHEMA_FILES) <= typed, (
        f"schemas without a typed record: {set(SCHEMA_FILES) - typed}"
    )


def test_the_four_records_of_the_redesign_are_contracts() -> None:
    assert {"bench record", "evaluation", "tune decision", "telemetry message"} <= set(CONTRACTS)


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_record_and_schema_agree(name: str) -> None:
    contract = CONTRACTS[name]
    assert contract.schema in SCHEMA_FILES, f"{name}: no schema file {contract.schema}"
    schema = contract.schema_doc()
    record = contract.record
    fields = set(typing.get_type_hints(record))
    props = set(schema["properties"])
    assert props <= fields, f"{name}: schema properties without a typed field: {props - fields}"
    if schema.get("additionalProperties") is False:
        assert fields <= props, f"{name}: typed fields the schema refuses: {fields - props}"
    required = set(schema.get("required", []))
    assert required == set(record.__required_keys__), (  # type: ignore[attr-defined]
        f"{name}: required differ: schema {sorted(required)}, "
        f"record {sorted(record.__required_keys__)}"  # type: ignore[attr-defined]
    )


def _result(**gate: object) -> dict[str, object]:
    return {
        "variant": "int8",
        "precision": "int8",
        "bytes": 10,
        "read_from": "label",
        "metrics": {"accuracy": 0.9},
        "vs_fp32": {"label_agreement": 0.99},
        "gate": {"metric": "accuracy", "passed": True, **gate},
    }


def test_the_evaluation_writer_writes_what_its_schema_accepts() -> None:
    rec = evaluation.evaluation_record(
        "2026-01-01T00:00:00Z", {"rows": 5}, _result(value=0.9, fp32=0.91, drop=0.01)
    )
    assert validation_errors(dict(rec), "evaluation") == []
    assert validation_errors({**rec, "surprise": 1}, "evaluation")  # the schema is closed
    assert validation_errors({**rec, "gate": {"metric": "accuracy"}}, "evaluation")


def test_the_evaluation_reader() -> None:
    assert evaluation.read_evaluation({}) is None
    assert evaluation.read_evaluation({"evaluation": None}) is None
    rec = evaluation.evaluation_record("t", {}, _result(value=0.9, drop=0.01))
    read = evaluation.read_evaluation({"evaluation": rec})
    assert read is not None
    assert evaluation.gate_figures(read) == ("accuracy", 0.9, 0.01)
    ref = evaluation.evaluation_record("t", {}, _result(reference=True))
    assert evaluation.gate_figures(ref) == ("accuracy", 0.9, 0.0)  # value from its metrics
