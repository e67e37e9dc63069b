"""The agent's configuration: one dataclass filled from defaults, a JSON file, flags and, under
Greengrass, the component configuration (applied live on SubscribeToConfigurationUpdate).

Keys are snake_case in every source; Greengrass configuration may use the same names or
camelCase (``windowSeconds``), both are accepted, so a recipe author does not have to guess.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.errors import BadInputError

# Settings that can change while serving (others need a restart).
MIN_WINDOW_S = 0.1  # the shortest monitoring window (tests run 0.2 s ones)
MAX_WINDOW_S = 7 * 24 * 3600.0  # a week: the timer's limits are far above

LIVE_KEYS = {
    "window_s",
    "drift_min_samples",
    "drift_alpha",
    "drift_psi_threshold",
    "alert_m",
    "alert_n",
    "latency_budget_ms",
    "error_rate_threshold",
    "data_quality_threshold",
    "quality_drop",
    "alert_hook",
    "variant",
    "capture_fraction",
    "reject_nan",
    "reject_inf",
}


@dataclass
class AgentConfig:
    bundle: str | None = None
    variant: str | None = None
    target: str | None = None
    thing: str = "edge-device"
    component_version: str = "0.0.0"
    # serving
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    token_file: str | None = None  # read the token from this file (keeps it off the process list)
    # Ed25519 public key (PEM file path or PEM text): when set, every bundle loaded (at start
    # and on swap) must carry a valid signature by it (edge_agent.signing)
    verify_key: str | None = None
    max_batch: int = 256
    max_elements: int = 4_000_000
    max_request_bytes: int = 32 * 1024 * 1024
    reject_nan: bool = False  # NaN is a missing value for tabular models with imputers
    reject_inf: bool = True
    # the REST server (edge_agent/serving/options.py says what each does)
    rest_max_inflight_bytes: int = 64 * 1024 * 1024
    rest_workers: int = 0  # 0 = the cores, at most 4
    rest_max_connections: int = 256
    rest_backlog: int = 1024
    rest_keepalive_s: float = 5.0
    rest_request_timeout_s: float = 30.0
    rest_shutdown_timeout_s: float = 5.0
    rest_access_log: bool = False
    # the KServe v2 gRPC endpoint (edge_agent/serving/grpc_server.py; needs the grpc extra):
    # None = off, 0 = any free port; same host, token and caps as REST
    grpc_port: int | None = None
    # monitoring
    window_s: float = 60.0
    drift_min_samples: int = 100
    drift_alpha: float = 0.001
    drift_psi_threshold: float = 0.1
    feedback_keep: int = 100_000  # predictions kept for joining labels
    # 0 (the default): drift bins and data quality read every row, so their counts are exact.
    # N: they read a uniform random sample of at most N rows per window (every row while fewer
    # came), which caps the monitor's work on very busy windows; requests, errors, latency and
    # predictions kept for labels still count every request. See Monitor / docs/edge-agent.md.
    monitor_sample_rows: int = 0
    # alerts: a rule fires when it holds in alert_m of the last alert_n windows
    alert_m: int = 3
    alert_n: int = 5
    latency_budget_ms: float | None = None
    error_rate_threshold: float = 0.05
    data_quality_threshold: float = 0.05
    quality_drop: float = 0.1  # accuracy/F1 below baseline by this much, or RMSE above by ratio
    alert_hook: dict[str, Any] | None = None  # {"command": [...]} or {"topic": "..."}
    # capture (off by default)
    capture_dir: str | None = None
    capture_fraction: float = 0.0
    capture_max_bytes: int = 10 * 1024 * 1024
    capture_files: int = 5
    # telemetry
    mqtt: str | None = None
    cert: str | None = None
    key: str | None = None
    ca: str | None = None
    transport: str | None = None  # greengrass | mqtt | inprocess | none; None = choose
    # The agent's own files (the outbox): --state-dir, else $EDGE_AGENT_STATE_DIR, else under
    # Greengrass the component's work folder (where the nucleus starts it), else
    # $XDG_STATE_HOME/edge-agent/{thing} (~/.local/state/edge-agent/{thing}). See state_dir().
    state_dir: str | None = None
    # The outbox file; default {state_dir}/outbox.sqlite, and none at all (in memory) when no
    # telemetry transport is configured (transport "none").
    outbox: str | None = None
    outbox_max_messages: int = 10_000
    outbox_max_bytes: int = 64 * 1024 * 1024
    publish_timeout_s: float = 10.0
    # MQTT 5 PUBACK 0x10 (no matching subscribers) = not delivered yet: keep the message in the
    # outbox and retry (see edge_agent/telemetry/transports/mqtt.py for why); retry delays double from
    # undelivered_retry_s up to undelivered_retry_max_s.
    mqtt_retry_no_subscribers: bool = True
    undelivered_retry_s: float = 1.0
    undelivered_retry_max_s: float = 10.0
    greengrass_local_topic: str | None = None  # default edgekit/{thing}/infer
    extra: dict[str, Any] = field(default_factory=dict)

    def updated(self, changes: dict[str, Any], *, live_only: bool = False) -> AgentConfig:
        """A copy with ``changes`` applied (keys normalized and type-checked)."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        values = dataclasses.asdict(self)
        for raw_key, value in changes.items():
            key = _snake(raw_key)
            if key not in fields or key == "extra":
                values["extra"][raw_key] = value
                continue
            if live_only and key not in LIVE_KEYS:
                continue
            values[key] = _coerce(raw_key, value, fields[key].type)
        config = AgentConfig(**values)
        config.check()
        return config

    def check(self) -> None:
        if not MIN_WINDOW_S <= self.window_s <= MAX_WINDOW_S:
            # a nanosecond window closed windows (and sent metrics) in a busy loop; a 1e308 one
            # overflowed the timer and ended the window thread: no telemetry ever again
            raise BadInputError(
                f"window_s must be within {MIN_WINDOW_S:g}..{MAX_WINDOW_S:g} s "
                f"(got {self.window_s:g})"
            )
        if not 1 <= self.alert_m <= self.alert_n:
            raise BadInputError(
                f"alerts need 1 <= alert_m <= alert_n (got {self.alert_m} of {self.alert_n})"
            )
        if self.monitor_sample_rows and self.monitor_sample_rows < self.drift_min_samples:
            raise BadInputError(
                f"monitor_sample_rows ({self.monitor_sample_rows}) must be 0 (every row) or at "
                f"least drift_min_samples ({self.drift_min_samples}), or no window could judge "
                "drift"
            )
        if not 0 <= self.capture_fraction <= 1:
            raise BadInputError("capture_fraction must be within 0..1")
        if self.max_batch < 1 or self.max_elements < 1 or self.max_request_bytes < 1:
            raise BadInputError("request caps must be positive")
        if self.rest_max_inflight_bytes < self.max_request_bytes:
            raise BadInputError(
                f"rest_max_inflight_bytes ({self.rest_max_inflight_bytes}) must be at least "
                f"max_request_bytes ({self.max_request_bytes})"
            )
        if (
            min(self.rest_max_connections, self.rest_backlog) < 1
            or min(self.rest_keepalive_s, self.rest_request_timeout_s, self.rest_shutdown_timeout_s)
            <= 0
        ):
            raise BadInputError("the rest_* limits and timeouts must be positive")
        if not 0 < self.undelivered_retry_s <= self.undelivered_retry_max_s:
            raise BadInputError(
                "undelivered retries need 0 < undelivered_retry_s <= undelivered_retry_max_s "
                f"(got {self.undelivered_retry_s} and {self.undelivered_retry_max_s})"
            )


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower().replace("-", "_")


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    # Greengrass configuration often carries numbers as strings; accept them.
    text = str(annotation)
    if value is None:
        return None
    try:
        if text.startswith("bool"):
            return _bool(key, value)
        if text.startswith("int"):
            return int(value)
        if text.startswith("float"):
            number = float(value)
            if not math.isfinite(number):  # NaN passes every `<=` check, then misbehaves
                raise ValueError(number)
            return number
    except (TypeError, ValueError, OverflowError) as exc:
        raise BadInputError(f"configuration {key}={value!r} is not a valid {text}") from exc
    return value


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off", "")


def _bool(key: str, value: Any) -> bool:
    """true/false, 1/0, yes/no, on/off (any case) and JSON booleans; anything else is refused,
    so a typo such as "ture" cannot silently turn a setting off."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise BadInputError(
        f"configuration {key}={value!r} is not a boolean",
        hint="use true or false (yes/no, on/off and 1/0 are accepted too)",
    )


def state_dir(config: AgentConfig, env: Mapping[str, str] | None = None) -> Path:
    """Where the agent keeps its own files; never the current folder outside Greengrass."""
    env = os.environ if env is None else env
    if config.state_dir:
        return Path(config.state_dir).expanduser().absolute()
    if env.get("EDGE_AGENT_STATE_DIR"):
        return Path(env["EDGE_AGENT_STATE_DIR"]).expanduser().absolute()
    if env.get("SVCUID") and env.get("AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT"):
        return Path.cwd()  # the nucleus runs a component in its own work folder ({work:path})
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base).expanduser().absolute() / "edge-agent" / config.thing


def outbox_path(
    config: AgentConfig, transport: str, env: Mapping[str, str] | None = None
) -> Path | None:
    """The outbox file for this configuration, or None (in memory) without a transport."""
    if config.outbox:
        return Path(config.outbox).expanduser().absolute()
    if transport == "none":
        return None
    return state_dir(config, env) / "outbox.sqlite"


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON configuration file (an object of settings)."""
    p = Path(path)
    if not p.is_file():
        raise BadInputError(
            f"config file {p} does not exist", hint="pass an existing `config` FILE"
        )
    try:
        data = json.loads(p.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise BadInputError(f"config file {p} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadInputError(f"config file {p} must hold a JSON object")
    return data
