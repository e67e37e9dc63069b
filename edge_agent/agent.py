"""The edge agent: load and serve a bundle, watch it per window, send telemetry that loses nothing.

Start-up order matters: configuration (Greengrass component configuration when under a nucleus)
→ model verified, warmed up, self-tested → REST and local pub/sub → ``hello`` → UpdateState
RUNNING. Telemetry goes through the durable outbox and a publisher thread; the inference path
never waits for the network.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import signal
import subprocess
import threading
import time
from typing import TYPE_CHECKING, Any, cast

from edge_agent import hardware, telemetry
from edge_agent.config import AgentConfig, outbox_path
from edge_agent.errors import EdgekitError
from edge_agent.monitoring.alerts import AlertEngine
from edge_agent.serving import model as model_mod
from edge_agent.serving.engine import Active, Engine, ModelError
from edge_agent.serving.validation import RequestError
from edge_agent.signals import StopFlag
from edge_agent.telemetry import transports as transport_registry
from edge_agent.telemetry.outbox import Outbox, Publisher
from edge_agent.telemetry.transports.base import Transport

if TYPE_CHECKING:
    from edge_agent.telemetry.transports.greengrass import GreengrassTransport

log = logging.getLogger("edge_agent")
# How long a stop waits for the broker to take what is still queued (Greengrass allows 15 s).
FLUSH_TIMEOUT_S = 3.0
SIGNAL_POLL_S = 0.1  # how soon run() notices a stop signal

COMMAND_HANDLERS: dict[str, str] = {
    "bench": "_cmd_bench",
    "feedback": "_cmd_feedback",
    "swap": "_cmd_swap",
    "config": "_cmd_config",
}


def rest_options(cfg: AgentConfig) -> Any:
    from edge_agent.serving.options import RestOptions

    return RestOptions(
        max_request_bytes=cfg.max_request_bytes,
        max_inflight_bytes=cfg.rest_max_inflight_bytes,
        workers=cfg.rest_workers,
        max_connections=cfg.rest_max_connections,
        backlog=cfg.rest_backlog,
        keepalive_s=cfg.rest_keepalive_s,
        request_timeout_s=cfg.rest_request_timeout_s,
        shutdown_timeout_s=cfg.rest_shutdown_timeout_s,
        access_log=cfg.rest_access_log,
    )


def grpc_server(engine: Engine, cfg: AgentConfig) -> Any:
    """The optional gRPC endpoint; imports grpcio only now (a clear error without it)."""
    from edge_agent.serving.grpc_server import GrpcServer

    opts = rest_options(cfg)
    assert cfg.grpc_port is not None, "called only when a gRPC port is configured"
    return GrpcServer(
        engine,
        cfg.host,
        cfg.grpc_port,
        cfg.token,
        cfg.max_request_bytes,
        opts.worker_count(),
        opts.shutdown_timeout_s,
        opts.max_connections,
    )


class Agent:
    def __init__(self, config: AgentConfig, transport: Transport | None = None) -> None:
        config.check()
        self.config = config
        self._transport = transport
        self.transport: Transport | None = None
        self.engine: Engine | None = None
        self.rest: Any = None
        self.grpc: Any = None
        self.outbox: Outbox | None = None
        self.publisher: Publisher | None = None
        self.alerts = AlertEngine(config)
        self.started_at = time.time()
        self.ready_s: float | None = None
        self._stop = threading.Event()
        self._signalled = StopFlag()  # SIGTERM/SIGINT, once handle_signals installed it
        self._stopped = threading.Event()
        self._window_lock = threading.Lock()
        self._window_thread: threading.Thread | None = None
        self._swaps: list[dict[str, Any]] = []
        self._commands = threading.Semaphore(1)
        self.greengrass = False

    # -- what start() sets (None before it, and where a start failed part way) ----------------
    @property
    def _engine(self) -> Engine:
        assert self.engine is not None, "the agent is not started"
        return self.engine

    @property
    def _outbox(self) -> Outbox:
        assert self.outbox is not None, "the agent is not started"
        return self.outbox

    @property
    def _live_transport(self) -> Transport:
        assert self.transport is not None, "the agent is not started"
        return self.transport

    @property
    def _publisher(self) -> Publisher:
        assert self.publisher is not None, "the agent is not started"
        return self.publisher

    @property
    def _greengrass(self) -> GreengrassTransport:
        """The transport under a nucleus (``self.greengrass``): only it has local pub/sub,
        the component configuration and UpdateState."""
        return cast("GreengrassTransport", self._live_transport)

    # -- start-up -----------------------------------------------------------------------------
    def start(self) -> Agent:
        t0 = time.perf_counter()
        cfg = self.config
        name = transport_registry.choose(cfg)
        self.greengrass = name == "greengrass"
        self.transport = self._transport or transport_registry.create(name, cfg)
        if self.greengrass:
            self._load_greengrass_config()
            cfg = self.config
        if not cfg.bundle:
            raise EdgekitError(
                "no bundle given", hint="pass `bundle` DIR (or set bundle in `config`)"
            )
        loaded = model_mod.load(cfg.bundle, cfg.variant, cfg.target, verify_key=cfg.verify_key)
        if loaded.bundle.signed_by:
            log.info("bundle signature verified (key %s)", loaded.bundle.signed_by)
        self.engine = Engine(cfg, loaded)
        self.engine.on_swap = self._on_swap
        if cfg.port is not None and cfg.port >= 0:
            from edge_agent.serving.rest import RestServer

            # bound now, served later: a port in use fails before anything is written
            self.rest = RestServer(
                self.engine,
                cfg.host,
                cfg.port,
                cfg.token,
                cfg.max_request_bytes,
                rest_options(cfg),
            )
        if cfg.grpc_port is not None and cfg.grpc_port >= 0:
            self.grpc = grpc_server(self.engine, cfg)
        self.outbox = Outbox(
            outbox_path(cfg, self.transport.name),
            max_messages=cfg.outbox_max_messages,
            max_bytes=cfg.outbox_max_bytes,
        )
        self.transport.start()
        self.publisher = Publisher(
            self.outbox,
            self.transport,
            timeout_s=cfg.publish_timeout_s,
            on_error=self._publish_error,
            undelivered_retry_s=cfg.undelivered_retry_s,
            undelivered_retry_max_s=cfg.undelivered_retry_max_s,
        )
        self.publisher.start()
        if self.rest:
            self.rest.start()
        if self.grpc:
            self.grpc.start()
        self.transport.subscribe(f"{telemetry.COMMAND_PREFIX}/{cfg.thing}/+", self._on_command)
        if self.greengrass:
            self._start_greengrass_local()
        self.ready_s = time.perf_counter() - t0
        hello = self._hello_body()
        hello["outbox"] = self.outbox.report()
        if self._enqueue("hello", (self.started_at, time.time()), hello):
            self.outbox.reported(hello["outbox"])
        if self.greengrass:
            self._update_state("RUNNING")
        self._window_thread = threading.Thread(
            target=self._window_loop, name="edge-agent-window", daemon=True
        )
        self._window_thread.start()
        log.info("ready in %.3fs serving %s/%s", self.ready_s, loaded.name, loaded.variant)
        return self

    def _hello_body(self) -> dict[str, Any]:
        model = self._engine.model
        bundle = model.bundle
        import onnxruntime

        return {
            "hardware": hardware.probe(),
            "bundle": {
                "name": bundle.manifest["name"],
                "task": bundle.task,
                "variants": {
                    n: {"sha256": v["sha256"], "bytes": v["bytes"], "precision": v.get("precision")}
                    for n, v in bundle.variants.items()
                },
                "selected": model.variant,
                "target": model.choice.target,
                "reason": model.choice.reason,
                "session_options": model.choice.session_options,
                "self_test": model.self_test,
            },
            "agent": {
                "pid": os.getpid(),
                "started_at": self.started_at,
                "transport": self.transport.name if self.transport else None,
                "window_s": self.config.window_s,
                "python": platform.python_version(),
                "onnxruntime": onnxruntime.__version__,
                "endpoints": {
                    "rest": self.rest.url if self.rest else None,
                    "grpc": self.grpc.url if self.grpc else None,
                },
            },
            "ready_s": self.ready_s,
        }

    # -- telemetry ------------------------------------------------------------------------------
    def _enqueue(
        self,
        message_type: str,
        window: tuple[float, float],
        body: dict[str, Any],
        model: dict[str, Any] | None = None,
    ) -> list[int]:
        cfg = self.config
        message = telemetry.make_message(
            message_type,
            thing=cfg.thing,
            component_version=cfg.component_version,
            model=model or self._engine.model.describe(),
            window=window,
            body=body,
        )
        try:
            return self._outbox.enqueue(telemetry.data_topic(cfg.thing, message_type), message)
        except Exception:  # a telemetry fault must never reach the caller (serving goes on)
            log.exception("a %s message could not be queued", message_type)
            return []

    def _publish_error(self, exc: Exception) -> None:
        log.debug("publish failed, kept in the outbox: %s", exc)

    def close_window(self, active: Active | None = None) -> dict[str, Any]:
        """Close the current window: metrics message, then any alerts it triggers."""
        with self._window_lock:
            active = active or self._engine.active
            start, end, body = active.monitor.close_window()
            body["outbox"] = self._outbox.report()
            body["swaps"], self._swaps = self._swaps, []
            model = active.model.describe()
            if self._enqueue("metrics", (start, end), body, model):
                self._outbox.reported(body["outbox"])
            fired = self.alerts.evaluate(body, end)
            if fired:
                self._enqueue("alerts", (start, end), {"alerts": fired}, model)
                self._run_hooks(fired)
            return body

    def _window_loop(self) -> None:
        while not self._stop.wait(self.config.window_s):
            try:
                self.close_window()
            except Exception:
                log.exception("closing the window failed")

    def _run_hooks(self, alerts: list[dict[str, Any]]) -> None:
        hook = self.config.alert_hook or {}
        firing = [a for a in alerts if a["state"] == "firing"]
        if not firing:
            return
        if hook.get("command"):
            cmd = hook["command"]
            args = cmd if isinstance(cmd, list) else [cmd]
            try:
                subprocess.Popen(
                    [*args, json.dumps({"thing": self.config.thing, "alerts": firing})],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            except OSError as exc:
                log.error("alert hook command %s failed: %s", args, exc)
        # A hook topic is acted on by the fleet side: it is carried in every alert's payload.

    # -- model swap ----------------------------------------------------------------------------
    def swap(self, bundle: str | None = None, variant: str | None = None) -> dict[str, Any]:
        try:
            result = self._engine.swap(bundle, variant)
        except EdgekitError as exc:
            alert = self.alerts.immediate(
                "swap_failed", f"model swap refused, still serving the old model: {exc.message}"
            )
            now = time.time()
            self._enqueue("alerts", (now, now), {"alerts": [alert]})
            self._swaps.append({"ok": False, "error": exc.message, "at": now})
            raise
        self._swaps.append({"ok": True, "at": time.time(), **result})
        return result

    def _on_swap(self, old: Active, new: Active) -> None:
        # the old model's window is closed and sent with the old digest
        try:
            self.close_window(old)
        finally:
            old.monitor.stop()

    # -- commands -------------------------------------------------------------------------------
    def _on_command(self, topic: str, payload: bytes) -> None:
        parsed = telemetry.parse_topic(topic)
        if not parsed or parsed[0] != "cmd":
            return
        handler = COMMAND_HANDLERS.get(parsed[2])
        if handler is None:
            return
        try:
            body = json.loads(payload or b"{}")
        except ValueError:
            log.error("command on %s is not JSON; ignored", topic)
            return
        # never on the transport's thread: commands may take long (bench) or call IPC
        threading.Thread(target=self._run_command, args=(handler, body), daemon=True).start()

    def _run_command(self, handler: str, body: Any) -> None:
        with self._commands:
            try:
                getattr(self, handler)(body if isinstance(body, dict) else {})
            except Exception:
                log.exception("command %s failed", handler)

    def _cmd_feedback(self, body: dict[str, Any]) -> None:
        try:
            self._engine.feedback(body)
        except RequestError as exc:
            log.error("feedback command refused: %s", exc.message)

    def _cmd_swap(self, body: dict[str, Any]) -> None:
        try:
            self.swap(body.get("bundle"), body.get("variant"))
        except EdgekitError as exc:
            log.error("swap command failed: %s", exc)

    def _cmd_config(self, body: dict[str, Any]) -> None:
        # The alert hook's command runs on the device: the deployment's configuration, the
        # config file and the flags may set it, never a message on the command topic, which
        # anyone allowed to publish there could send (a command there was code execution).
        hook = [k for k in body if str(k).replace("_", "").lower() == "alerthook"]
        if hook:
            log.error("config command: %s refused; set the alert hook in the deployment", hook)
            body = {k: v for k, v in body.items() if k not in hook}
        self.apply_config(body)

    def _cmd_bench(self, body: dict[str, Any]) -> None:
        self._enqueue_bench(body)

    def _enqueue_bench(self, body: dict[str, Any]) -> dict[str, Any]:
        from edge_agent.benchmark.command import run_bench

        start = time.time()
        model = self._engine.model
        result = run_bench(model.bundle, body, model.choice.session_options)
        self._enqueue("bench", (start, time.time()), result)
        return result

    # -- configuration ------------------------------------------------------------------------
    def apply_config(self, changes: dict[str, Any]) -> AgentConfig:
        """Apply live settings (window, thresholds, variant); others wait for a restart."""
        old = self.config
        new = old.updated(changes, live_only=True)
        self.config = new
        self.alerts.config = new
        self._engine.apply_config(new)
        if new.variant and new.variant != self._engine.model.variant:
            try:
                self.swap(None, new.variant)
            except EdgekitError:
                self.config = new.updated({"variant": self._engine.model.variant})
        return self.config

    # -- Greengrass ----------------------------------------------------------------------------
    def _load_greengrass_config(self) -> None:
        try:
            values = self._greengrass.get_configuration()
        except Exception as exc:
            log.warning("GetConfiguration failed, using defaults and flags: %s", exc)
            return
        self.config = self.config.updated(values)
        self.alerts.config = self.config

    def _on_configuration_update(self, key_path: list[str]) -> None:
        try:
            values = self._greengrass.get_configuration()
            self.apply_config(values)
            log.info("configuration update %s applied", key_path)
        except Exception:
            log.exception("applying the configuration update failed")

    def _start_greengrass_local(self) -> None:
        gg = self._greengrass
        topic = self.config.greengrass_local_topic or f"edgekit/{self.config.thing}/infer"
        gg.subscribe_local(topic, self._on_local_request)
        gg.subscribe_configuration(
            lambda kp: threading.Thread(
                target=self._on_configuration_update, args=(kp,), daemon=True
            ).start()
        )

    def _on_local_request(self, topic: str, message: Any) -> None:
        """Local pub/sub request/response: a v2 request in, the v2 response (or error) out."""
        reply = f"{topic}/response"
        if isinstance(message, dict) and isinstance(message.get("reply_topic"), str):
            reply = message["reply_topic"]
        request_id = message.get("id") if isinstance(message, dict) else None
        try:
            if isinstance(message, dict) and "feedback" in message:
                response: dict[str, Any] = self._engine.feedback(message["feedback"])
            else:
                response = self._engine.infer_json(message)
            status = 200
        except RequestError as exc:
            response, status = {"error": exc.message}, 400
        except ModelError as exc:
            response, status = {"error": str(exc)}, 500
        response.update(status=status, request_id=request_id)
        try:
            self._greengrass.publish_local(reply, response)
        except Exception as exc:
            log.error("could not publish the local response on %s: %s", reply, exc)

    def _update_state(self, state: str) -> None:
        try:
            self._greengrass.update_state(state)
        except Exception as exc:
            log.error("UpdateState %s failed: %s", state, exc)

    # -- running and stopping --------------------------------------------------------------------
    def handle_signals(self) -> None:
        """SIGTERM/SIGINT ask for a clean stop. Installed before start-up by the CLI, so a
        signal that comes right after (or during) start-up is not the default, abrupt death.
        The handler sets a plain flag and takes no lock (edge_agent.signals says why)."""
        self._signalled.install((signal.SIGTERM, signal.SIGINT))

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT, then finish the window, flush, exit 0."""
        self.handle_signals()
        while not (self._signalled or self._stop.is_set()):
            time.sleep(SIGNAL_POLL_S)  # a signal cuts the sleep short; is_set() takes no lock
        self.stop()
        return 0

    def stop(self, flush_timeout: float = FLUSH_TIMEOUT_S) -> None:
        """Finish the window, send what can be sent within ``flush_timeout``, close.

        Idle with nothing to send this takes well under a second; with a broker that is down
        it waits at most ``flush_timeout`` (3 s, well inside Greengrass's 15 s shutdown
        timeout) and what was not sent stays in the outbox for the next start."""
        if self._stopped.is_set():
            return
        self._stop.set()
        if self.grpc:
            self.grpc.stop()
        if self.rest:
            self.rest.stop()
        if self._window_thread:
            self._window_thread.join(5)
        if self.engine:
            self.engine.ready = False
            if self.outbox:  # a start that failed before the outbox has no window to send
                try:
                    self.close_window()
                except Exception:
                    log.exception("closing the last window failed")
            self.engine.close()
        if self.publisher:
            self._flush(flush_timeout)
        if self.transport:
            try:
                self.transport.close()
            except Exception as exc:
                log.debug("closing the transport: %s", exc)
        if self.outbox:
            self.outbox.close()
        self._stopped.set()

    def _flush(self, timeout: float) -> None:
        if self.transport is None or self.transport.name == "none":
            self._publisher.stop(join_timeout=1.0)  # nothing can be sent: nothing to wait for
            return
        if self._publisher.flush(timeout):
            return
        pending = self._outbox.stats()["pending"]
        if not pending:
            return
        if self._outbox.durable:
            log.warning(
                "%d message(s) stay in the outbox %s for the next start",
                pending,
                self._outbox.path,
            )
        else:
            log.warning("%d message(s) could not be sent (the outbox was in memory)", pending)
