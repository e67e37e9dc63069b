"""What an alert does: actions in a registry (log, run a command, publish to a topic) and the
router that sends each alert to the actions of the routes it matches.

This is the seam where fleet monitoring meets re-training: route ``rule: drift`` to a
``command`` (start a training job) or a ``topic`` (tell a pipeline). A new kind of action is a
class with ``run(alert) -> detail`` registered with ``@action("kind")``; nothing else changes.
Actions run on their own thread so a slow command never holds up ingestion.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import queue
import shlex
import subprocess
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edge_agent.errors import BadInputError

log = logging.getLogger("edgekit.fleet.alerts")

Publish = Callable[
    [str, bytes], None
]  # (topic, payload): the collector's MQTT client, or a test bus


class ActionError(Exception):
    """The action ran and failed; the message is stored with the alert."""


@dataclass
class ActionContext:
    publish: Publish | None = None


ACTIONS: dict[str, type[Action]] = {}


def action(kind: str) -> Callable[[type[Action]], type[Action]]:
    def deco(cls: type[Action]) -> type[Action]:
        cls.kind = kind
        ACTIONS[kind] = cls
        return cls

    return deco


class _Fields(dict):
    """str.format_map source: alert fields, missing ones render empty."""

    def __missing__(self, key: str) -> str:
        return ""


def fill(template: str, alert: Mapping[str, Any]) -> str:
    """``{thing}``, ``{rule}``, ``{subject}``, ``{severity}``, ``{id}``... from the alert."""
    values = _Fields({k: "" if v is None else v for k, v in alert.items()})
    return template.format_map(values)


class Action:
    kind = "base"

    def __init__(self, spec: Mapping[str, Any], ctx: ActionContext) -> None:
        self.spec = dict(spec)
        self.ctx = ctx

    def run(self, alert: Mapping[str, Any]) -> str:
        raise NotImplementedError

    def describe(self) -> str:
        return self.kind


@action("log")
class LogAction(Action):
    """Write the alert to the ``edgekit.fleet.alerts`` logger (level by severity)."""

    LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.ERROR}

    def run(self, alert: Mapping[str, Any]) -> str:
        line = (
            f"[{alert.get('severity')}] {alert.get('rule')} on {alert.get('thing') or 'fleet'}"
            f": {alert.get('message')}"
        )
        log.log(self.LEVELS.get(str(alert.get("severity")), logging.WARNING), line)
        return line


@action("command")
class CommandAction(Action):
    """Run a program (no shell): arguments may hold ``{thing}``-style fields; the alert goes as
    JSON on stdin and in ``EDGEKIT_ALERT``. Fails on a non-zero exit or after ``timeout_s``."""

    def __init__(self, spec: Mapping[str, Any], ctx: ActionContext) -> None:
        super().__init__(spec, ctx)
        command = spec.get("command")
        if isinstance(command, str):
            command = shlex.split(command)
        if not command or not all(isinstance(a, str) for a in command):
            raise BadInputError(
                f"command action needs `command` (a list of strings or one string), got {command!r}"
            )
        self.command: list[str] = command
        self.timeout_s = float(spec.get("timeout_s", 60))

    def run(self, alert: Mapping[str, Any]) -> str:
        args = [fill(a, alert) for a in self.command]
        payload = json.dumps(dict(alert), default=str)
        try:
            done = subprocess.run(
                args,
                input=payload.encode(),
                capture_output=True,
                timeout=self.timeout_s,
                env={**os.environ, "EDGEKIT_ALERT": payload},
                cwd=self.spec.get("cwd"),
                check=False,
            )
        except FileNotFoundError:
            raise ActionError(f"command not found: {args[0]}") from None
        except subprocess.TimeoutExpired:
            raise ActionError(f"{shlex.join(args)} timed out after {self.timeout_s:g}s") from None
        tail = (done.stderr or done.stdout or b"").decode(errors="replace").strip()[-500:]
        if done.returncode != 0:
            raise ActionError(f"{shlex.join(args)} exited {done.returncode}: {tail}")
        return f"{shlex.join(args)} exited 0" + (f": {tail}" if tail else "")

    def describe(self) -> str:
        return f"command {shlex.join(self.command)}"


@action("topic")
class TopicAction(Action):
    """Publish the alert as JSON to an MQTT topic (``{rule}``/``{thing}`` may be in the topic)."""

    def __init__(self, spec: Mapping[str, Any], ctx: ActionContext) -> None:
        super().__init__(spec, ctx)
        topic = spec.get("topic")
        if not isinstance(topic, str) or not topic or any(c in topic for c in "+#"):
            raise BadInputError(f"topic action needs `topic` without wildcards, got {topic!r}")
        self.topic = topic

    def run(self, alert: Mapping[str, Any]) -> str:
        if self.ctx.publish is None:
            raise ActionError(
                "no MQTT connection to publish on: topic actions need `edgekit fleet collect "
                "--broker` (or an in-process publisher)"
            )
        topic = fill(self.topic, alert)
        self.ctx.publish(topic, json.dumps(dict(alert), default=str).encode())
        return f"published to {topic}"

    def describe(self) -> str:
        return f"topic {self.topic}"


# Modules that register more action kinds when imported (kept lazy: the pipeline's loads the
# workstation toolchain, which a collector that never triggers pipelines does not need).
ACTION_MODULES = {"pipeline": "edgekit.toolkit.pipeline.trigger"}


def make_action(spec: Mapping[str, Any], ctx: ActionContext) -> Action:
    kind = spec.get("kind")
    if kind not in ACTIONS and kind in ACTION_MODULES:
        import importlib

        importlib.import_module(ACTION_MODULES[kind])
    if kind not in ACTIONS:
        raise BadInputError(
            f"unknown alert action kind {kind!r}",
            hint=f"one of {', '.join(sorted(set(ACTIONS) | set(ACTION_MODULES)))}",
        )
    return ACTIONS[kind](spec, ctx)


MATCH_FIELDS = ("rule", "severity", "source", "thing", "subject", "state")


@dataclass
class Route:
    """Alerts whose fields match every glob in ``match`` go to ``actions``."""

    match: dict[str, str]
    actions: list[Action]

    def matches(self, alert: Mapping[str, Any]) -> bool:
        return all(
            fnmatch.fnmatchcase(str(alert.get(k) or ""), str(pattern))
            for k, pattern in self.match.items()
        )


def parse_routes(specs: Iterable[Mapping[str, Any]], ctx: ActionContext) -> list[Route]:
    routes = []
    for i, spec in enumerate(specs):
        match = dict(spec.get("match") or {})
        unknown = sorted(set(match) - set(MATCH_FIELDS))
        if unknown:
            raise BadInputError(
                f"route {i}: cannot match on {unknown}", hint=f"match on {', '.join(MATCH_FIELDS)}"
            )
        actions = [make_action(a, ctx) for a in spec.get("actions") or []]
        if not actions:
            raise BadInputError(f"route {i} has no actions")
        match.setdefault("state", "firing")
        routes.append(Route({k: str(v) for k, v in match.items()}, actions))
    return routes


@dataclass
class AlertRouter:
    """Runs the matching routes' actions for each alert on a worker thread; records results."""

    routes: list[Route]
    record: Callable[[int, str, bool, str], None] | None = None  # store.add_action_result
    results: list[dict[str, Any]] = field(default_factory=list)
    _queue: queue.Queue = field(default_factory=queue.Queue)
    _thread: threading.Thread | None = None

    def dispatch(self, alerts: Iterable[Mapping[str, Any]]) -> None:
        for alert in alerts:
            if any(r.matches(alert) for r in self.routes):
                self._queue.put(dict(alert))
                self._ensure_thread()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="fleet-actions", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            alert = self._queue.get()
            try:
                if alert is None:
                    return
                self.run_now(alert)
            finally:
                self._queue.task_done()

    def run_now(self, alert: Mapping[str, Any]) -> list[dict[str, Any]]:
        out = []
        for route in self.routes:
            if not route.matches(alert):
                continue
            for act in route.actions:
                try:
                    ok, detail = True, act.run(alert)
                except ActionError as exc:
                    ok, detail = False, str(exc)
                except Exception as exc:  # an action bug must not stop the next ones
                    ok, detail = False, f"{type(exc).__name__}: {exc}"
                    log.exception("alert action %s failed", act.describe())
                res = {
                    "alert_id": alert.get("id"),
                    "action": act.describe(),
                    "ok": ok,
                    "detail": detail,
                }
                out.append(res)
                self.results.append(res)
                if self.record and alert.get("id") is not None:
                    self.record(int(alert["id"]), act.describe(), ok, detail)
        return out

    def drain(self) -> None:
        """Wait until every dispatched alert's actions have run."""
        self._queue.join()
