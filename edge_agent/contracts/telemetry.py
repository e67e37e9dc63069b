"""The telemetry message envelope (dt/edgekit/{thing}/{type}); edge_agent/telemetry.py builds
it (`envelope`) and checks it (`envelope_problems`), the fleet collector reads it."""

from __future__ import annotations

from typing import Any, TypedDict

from edge_agent.contracts.registry import register


class ModelRef(TypedDict, total=False):
    name: str
    variant: str
    sha256: str


class Window(TypedDict):
    start: float
    end: float


class Part(TypedDict):
    index: int
    count: int


class TelemetryMessage(TypedDict):
    schema_version: int
    type: str  # hello | metrics | alerts | bench
    thing: str
    component_version: str
    model: ModelRef
    seq: int
    window: Window
    created_at: float
    part: Part
    body: dict[str, Any]


register("telemetry message", TelemetryMessage, "telemetry")
