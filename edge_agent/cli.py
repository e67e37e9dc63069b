"""``edge-agent`` (and ``python -m edge_agent``): serve a bundle, or run a batch transform.

stdlib argparse only: the device has no typer or rich. Exit codes follow the project contract:
0 ok, 1 a check failed (digest, self-test), 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

from edge_agent.errors import EdgekitError

log = logging.getLogger("edge_agent")
TOKEN_ENV = "EDGE_AGENT_TOKEN"


EXIT_CODES = (
    "Exit codes: 0 success; 1 a check failed (digest, signature, self-test); "
    "2 bad input or usage (the message says what to change)."
)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"edge-agent {version('edgekit')}"
    except PackageNotFoundError:  # a zipped artifact on a device: no package metadata
        return "edge-agent (edgekit, not installed)"


def _duration(text: str) -> float:
    """--window and other durations: the same units as `edgekit` (500ms, 60s, 2m)."""
    from edge_agent.units import parse_duration

    try:
        return float(parse_duration(text) or 0.0)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edge-agent",
        description="Serve an edgekit model bundle on the device, or run a batch transform.",
        epilog=EXIT_CODES,
    )
    p.add_argument("--version", action="version", version=_version())
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    _add_serve(sub)
    _add_batch(sub)
    return p


def _add_serve(sub: Any) -> None:
    """`edge-agent serve`: the bundle, REST and gRPC, the token, the transport and monitoring."""
    s = sub.add_parser(
        "serve",
        help="serve a bundle over REST (and Greengrass), with monitoring",
        description="Serve a bundle over REST (and Greengrass), with monitoring.",
        epilog=EXIT_CODES,
    )
    s.add_argument("--bundle", required=False, help="bundle folder (from edgekit export)")
    s.add_argument(
        "--variant", help="bundle variant to serve (default: the selection for --target)"
    )
    s.add_argument("-t", "--target", help="hardware target profile whose selection to use")
    s.add_argument("--port", type=int, help="REST port (0 = any free port, -1 = no REST)")
    s.add_argument("--host", help="REST bind address (default 127.0.0.1)")
    s.add_argument(
        "--grpc-port",
        type=int,
        help="also serve KServe v2 over gRPC on this port (0 = any free port; off by default; "
        "needs pip install 'edgekit[grpc]')",
    )
    s.add_argument(
        "--token",
        help="require this bearer token on /v2/models calls (visible in the process list: "
        f"prefer --token-file or ${TOKEN_ENV})",
    )
    s.add_argument("--token-file", help="read the bearer token from this file")
    s.add_argument("--max-batch", type=int, help="rows per request at most (default 256)")
    s.add_argument("--access-log", action="store_true", default=None, help="log every HTTP request")
    s.add_argument("--config", help="JSON configuration file (flags override it)")
    s.add_argument(
        "--verify-key",
        help="Ed25519 public key (PEM); refuse any bundle not signed by it "
        "(default: $EDGE_AGENT_VERIFY_KEY)",
    )
    s.add_argument("--mqtt", help="mqtt://HOST:PORT (loopback only) or mqtts://HOST:PORT")
    s.add_argument("--cert", help="device certificate (PEM) for mqtts")
    s.add_argument("--key", help="device private key (PEM) for mqtts")
    s.add_argument("--ca", help="CA bundle (PEM) that signed the broker's certificate")
    s.add_argument("--thing", help="IoT thing name (default: $AWS_IOT_THING_NAME or edge-device)")
    s.add_argument(
        "--outbox",
        help="SQLite outbox file (default STATE_DIR/outbox.sqlite; none without a transport)",
    )
    s.add_argument(
        "--state-dir",
        help="folder for the agent's own files (default $EDGE_AGENT_STATE_DIR, the Greengrass "
        "work folder, or ~/.local/state/edge-agent/THING)",
    )
    s.add_argument(
        "--window",
        type=_duration,
        help="monitoring window (a duration: 500ms, 60s, 2m; default 60s)",
    )
    s.add_argument("--transport", choices=["greengrass", "mqtt", "inprocess", "none"])
    s.add_argument("--component-version", help="version reported in telemetry")


def _add_batch(sub: Any) -> None:
    """`edge-agent batch`: a file or folder of inputs through the model."""
    b = sub.add_parser(
        "batch",
        help="run a file or folder of inputs through the model",
        description="Run a file or folder of inputs through the model.",
        epilog=EXIT_CODES,
    )
    b.add_argument("--bundle", required=True)
    b.add_argument(
        "--input", required=True, help="input file or folder (.npz .npy .json .jsonl .csv)"
    )
    b.add_argument("-o", "--output", required=True, help="output: .npz (file input) or folder")
    b.add_argument("--variant", help="bundle variant to run (default: the selection for --target)")
    b.add_argument("-t", "--target", help="hardware target profile whose selection to use")
    b.add_argument("--verify-key", help="Ed25519 public key (PEM); refuse an unsigned bundle")
    b.add_argument("--chunk", type=int, help="rows per inference call (default: max_batch 256)")
    b.add_argument("--json", action="store_true", help="print the summary as JSON")
    b.add_argument("--no-progress", action="store_true")


_FLAG_KEYS = {
    "bundle": "bundle",
    "variant": "variant",
    "target": "target",
    "port": "port",
    "host": "host",
    "grpc_port": "grpc_port",
    "token": "token",
    "token_file": "token_file",
    "max_batch": "max_batch",
    "access_log": "rest_access_log",
    "mqtt": "mqtt",
    "cert": "cert",
    "key": "key",
    "ca": "ca",
    "thing": "thing",
    "outbox": "outbox",
    "state_dir": "state_dir",
    "window": "window_s",
    "transport": "transport",
    "component_version": "component_version",
    "verify_key": "verify_key",
    "chunk": "max_batch",
}


def build_config(args: argparse.Namespace, env: dict[str, str] | None = None) -> Any:
    """Defaults ← --config file ← environment (thing name, verify key) ← flags."""
    import os

    from edge_agent.config import AgentConfig, load_file

    env = dict(os.environ) if env is None else env
    config = AgentConfig()
    if getattr(args, "config", None):
        config = config.updated(load_file(args.config))
    if env.get("AWS_IOT_THING_NAME"):
        config = config.updated({"thing": env["AWS_IOT_THING_NAME"]})
    if env.get("EDGE_AGENT_VERIFY_KEY"):
        config = config.updated({"verify_key": env["EDGE_AGENT_VERIFY_KEY"]})
    flags = {
        key: getattr(args, attr)
        for attr, key in _FLAG_KEYS.items()
        if getattr(args, attr, None) is not None
    }
    config = config.updated(flags)
    return config.updated({"token": resolve_token(args, config, env)})


def resolve_token(args: argparse.Namespace, config: Any, env: Any) -> str | None:
    """--token, else --token-file, else $EDGE_AGENT_TOKEN, else the config's token/token_file."""
    if getattr(args, "token", None):
        flag: str = args.token
        return flag
    if getattr(args, "token_file", None):
        return _read_token(args.token_file)
    if env.get(TOKEN_ENV):
        from_env: str = env[TOKEN_ENV].strip()
        return from_env
    if config.token:
        configured: str = config.token
        return configured
    return _read_token(config.token_file) if config.token_file else None


MAX_TOKEN_BYTES = 64 * 1024


def _read_token(path: str) -> str:
    from edge_agent.errors import BadInputError

    try:
        with open(path, "rb") as fh:  # bounded: `--token-file /dev/zero` read until MemoryError
            raw = fh.read(MAX_TOKEN_BYTES + 1)
        if len(raw) > MAX_TOKEN_BYTES:
            raise BadInputError(
                f"the token file {path} holds more than {MAX_TOKEN_BYTES:,} bytes; "
                "put only the bearer token in it"
            )
        token = raw.decode("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(
            f"cannot read the token file {path}: {getattr(exc, 'strerror', None) or exc}; "
            "pass a readable --token-file"
        ) from None
    if not token:
        raise BadInputError(f"the token file {path} is empty; put the bearer token in it")
    return token


def _serve(args: argparse.Namespace) -> int:
    from edge_agent.agent import Agent

    config = build_config(args)
    agent = Agent(config)
    agent.handle_signals()
    try:
        agent.start()
    except BaseException:
        agent.stop(flush_timeout=1.0)
        raise
    assert agent.engine is not None and agent.transport is not None  # set by start()
    rest = agent.rest.url if agent.rest else "off"
    grpc = agent.grpc.url if agent.grpc else "off"
    print(
        f"edge-agent ready in {agent.ready_s:.3f}s: {agent.engine.model.name}/"
        f"{agent.engine.model.variant} rest={rest} grpc={grpc} transport={agent.transport.name}",
        file=sys.stderr,
        flush=True,
    )
    return agent.run()


def _batch(args: argparse.Namespace) -> int:
    from edge_agent.serving import batch
    from edge_agent.serving import model as model_mod
    from edge_agent.serving.engine import Engine

    config = build_config(args)
    loaded = model_mod.load(args.bundle, args.variant, args.target, verify_key=config.verify_key)
    engine = Engine(config, loaded)
    try:
        summary = batch.transform(
            engine,
            Path(args.input),
            Path(args.output),
            show_progress=not args.no_progress,
            protect=[Path(args.bundle)],
        )
        _start, _end, metrics = engine.active.monitor.close_window()
    finally:
        engine.close()
    summary["data_quality"] = metrics["data_quality"]["counts"]
    summary["drift"] = {
        name: entry["status"] for name, entry in metrics["drift"]["features"].items()
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        drifted = [n for n, s in summary["drift"].items() if s == "drift"]
        print(
            f"{summary['rows']} rows from {len(summary['files'])} file(s) → {_written(summary)}; "
            f"drift: {', '.join(drifted) or 'none'}"
        )
    return 0


def _written(summary: dict[str, Any]) -> str:
    """Where the outputs went: the one file (`-o preds` writes preds.npz), else the folder."""
    files = summary["files"]
    if len(files) == 1:
        return str(files[0]["output"])
    return str(Path(files[0]["output"]).parent) if files else "nothing"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return _serve(args) if args.command == "serve" else _batch(args)
    except EdgekitError as exc:
        print(f"error: {to_flags(str(exc), _flags(args.command))}", file=sys.stderr)
        return exc.exit_code


_BACKTICKED = re.compile(r"`([a-z_][a-z0-9_]*)`")


def _flags(command: str) -> dict[str, str]:
    """{setting: its long flag} for one subcommand, read from the parser (cannot drift)."""
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)).choices[
        command
    ]
    return {
        a.dest: longs[0]
        for a in sub._actions
        if (longs := [o for o in a.option_strings if o.startswith("--")])
    }


def to_flags(text: str, flags: dict[str, str]) -> str:
    """The agent's errors name settings in backticks (`variant`), as the Greengrass
    configuration and the Python API know them; on the command line they are flags."""
    return _BACKTICKED.sub(lambda m: flags.get(m.group(1), m.group(0)), text)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
