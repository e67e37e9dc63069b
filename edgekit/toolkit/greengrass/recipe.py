"""The component recipe edgekit generates, in canonical key casing.

One manifest per platform, each with that platform's variant (from tune's selection for the
platform's target), its own artifacts and lifecycle. The agent runs under `Startup` and reports
RUNNING over IPC once the model is loaded and warmed up, so a deployment succeeds only when
the model actually serves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edge_agent.telemetry import COMMAND_PREFIX, DATA_PREFIX
from edgekit.toolkit.greengrass import agent_artifact, validate

RECIPE_FORMAT = "2020-01-25"
NUCLEUS = "aws.greengrass.Nucleus"
URI_PREFIX = "s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION/"  # the Development Kit's form
CATCH_ALL_KEY = "linux-all"

TIMEOUTS = {"install_network": 900, "install_offline": 300, "startup": 180, "shutdown": 15}


@dataclass
class Artifact:
    file: str  # name in artifacts/<name>/<version>/
    digest: str  # Base64 SHA-256
    unarchive: bool = True

    def recipe(self) -> dict[str, Any]:
        return {
            "Uri": URI_PREFIX + self.file,
            "Unarchive": "ZIP" if self.unarchive else "NONE",
            "Permission": {"Read": "OWNER", "Execute": "NONE"},
            "Digest": self.digest,
            "Algorithm": "SHA-256",
        }


@dataclass
class ManifestPlan:
    key: str  # configuration key, "linux-aarch64"
    platform: dict[str, str]  # the recipe Platform block
    label: str
    target: str | None
    variant: str
    provider: str
    session_options: dict[str, Any]
    model_dir: str  # unpack folder of the model archive
    artifacts: list[Artifact]
    wheel_dir: str | None = None  # unpack folder of the wheelhouse, None -> install from index
    python_version: str | None = None


@dataclass
class Settings:
    """DefaultConfiguration values, under the agent's own keys (edge_agent.config.AgentConfig)."""

    window_s: int = 60
    host: str = "127.0.0.1"
    port: int = 8080
    capture_fraction: float = 0.0  # capture off unless asked
    capture_max_bytes: int = 10 * 1024 * 1024
    capture_files: int = 5
    verify_key: str | None = None  # Ed25519 public key (PEM text) the agent checks bundles with
    # The agent's optional KServe v2 gRPC endpoint (edge-agent serve --grpc-port); None = off.
    # When set, the agent's requirements also pin grpcio and protobuf (GRPC_REQUIREMENTS).
    grpc_port: int | None = None
    thresholds: dict[str, float] = field(
        default_factory=lambda: {
            "drift_psi_threshold": 0.1,
            "drift_alpha": 0.001,
            "drift_min_samples": 100,
            "alert_m": 3,
            "alert_n": 5,
            "error_rate_threshold": 0.05,
            "data_quality_threshold": 0.05,
            "quality_drop": 0.1,
        }
    )


def _s(value: Any) -> str:
    """Numbers and booleans as strings: the nucleus may hand numbers back as floats."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def local_topics(name: str) -> dict[str, str]:
    """The component's own local pub/sub topics: requests in, responses out."""
    return {"request": f"edgekit/{name}/infer", "response": f"edgekit/{name}/infer/response"}


def access_control(name: str) -> dict[str, Any]:
    """Least privilege: this thing's own telemetry and command topics, the component's own
    local request/response topics, nothing else."""
    topics = local_topics(name)
    return {
        "aws.greengrass.ipc.mqttproxy": {
            f"{name}:mqttproxy:1": {
                "policyDescription": "Publish this device's telemetry only",
                "operations": ["aws.greengrass#PublishToIoTCore"],
                "resources": [f"{DATA_PREFIX}/{{iot:thingName}}/#"],
            },
            f"{name}:mqttproxy:2": {
                "policyDescription": "Receive commands addressed to this device only",
                "operations": ["aws.greengrass#SubscribeToIoTCore"],
                "resources": [f"{COMMAND_PREFIX}/{{iot:thingName}}/#"],
            },
        },
        "aws.greengrass.ipc.pubsub": {
            f"{name}:pubsub:1": {
                "policyDescription": "Take local inference requests on this component's topic",
                "operations": ["aws.greengrass#SubscribeToTopic"],
                "resources": [topics["request"]],
            },
            f"{name}:pubsub:2": {
                "policyDescription": "Answer on this component's own response topic",
                "operations": ["aws.greengrass#PublishToTopic"],
                "resources": [topics["response"]],
            },
        },
    }


# Configuration that belongs to one component version: the variant, target, provider and session
# options chosen per platform for the model artifacts of that version. A deployment of a new
# version must reset it: configuration updates are patches, so a device keeps the values of the
# version it runs (a variant the new artifacts may not hold) over the new version's defaults.
VERSION_CONFIG = ("/platforms",)


def default_configuration(name: str, plans: list[ManifestPlan], s: Settings) -> dict[str, Any]:
    topics = local_topics(name)
    return {
        "window_s": _s(s.window_s),
        "host": s.host,
        "port": _s(s.port),
        **{k: _s(v) for k, v in s.thresholds.items()},
        "capture_fraction": _s(s.capture_fraction),
        "capture_max_bytes": _s(s.capture_max_bytes),
        "capture_files": _s(s.capture_files),
        "greengrass_local_topic": topics["request"],
        "greengrass_local_response_topic": topics["response"],
        "topics": {
            "telemetry": f"{DATA_PREFIX}/{{thing}}/<hello|metrics|alerts|bench>",
            "commands": f"{COMMAND_PREFIX}/{{thing}}/<bench|feedback|swap|config>",
        },
        "platforms": {
            p.key: {
                "target": p.target or "",
                "variant": p.variant,
                "provider": p.provider,
                "session_options": {k: _s(v) for k, v in p.session_options.items()},
            }
            for p in plans
        },
        "accessControl": access_control(name),
        **({"verify_key": s.verify_key} if s.verify_key else {}),
        **({"grpc_port": _s(s.grpc_port)} if s.grpc_port is not None else {}),
    }


def install_step(plan: ManifestPlan, version: str, marker: str) -> dict[str, Any]:
    venv = "{work:path}/venv"
    requirements = f"{{artifacts:decompressedPath}}/{agent_artifact.AGENT_DIR}/requirements.txt"
    pip = f"{venv}/bin/python -m pip install --disable-pip-version-check --no-input"
    lines = ["set -e"]
    if plan.wheel_dir:
        want = tuple(int(x) for x in (plan.python_version or "3.11").split("."))
        lines.append(
            f"if ! python3 -c 'import sys; sys.exit(sys.version_info[:2] != {want})'; then "
            f"echo 'edgekit: the bundled wheels are for Python {plan.python_version}' >&2; "
            "exit 1; fi"
        )
        pip += f" --no-index --find-links {{artifacts:decompressedPath}}/{plan.wheel_dir}"
    lines += [
        f"rm -rf {venv}",
        f"python3 -m venv {venv}",
        f"{pip} -r {requirements}",
        f"touch {venv}/{marker}",
    ]
    timeout = TIMEOUTS["install_offline" if plan.wheel_dir else "install_network"]
    return {
        "Script": "\n".join(lines),
        "Skipif": f"exists {venv}/{marker}",
        "Timeout": timeout,
    }


def startup_step(plan: ManifestPlan, version: str, grpc: bool = False) -> dict[str, Any]:
    cfg = f"{{configuration:/platforms/{plan.key}"
    args = [
        "{work:path}/venv/bin/python3 -m edge_agent serve",
        f"--bundle {{artifacts:decompressedPath}}/{plan.model_dir}",
        f"--variant {cfg}/variant}}",
    ]
    if plan.target:
        args.append(f"--target {cfg}/target}}")
    args += [
        "--thing {iot:thingName}",
        f"--component-version {version}",
        "--host {configuration:/host}",
        "--port {configuration:/port}",
    ]
    if grpc:
        args.append("--grpc-port {configuration:/grpc_port}")
    # exec keeps the shell's pid, so Shutdown can signal the agent itself.
    script = "echo $$ > {work:path}/agent.pid\nexec " + " ".join(args)
    return {"Script": script, "Timeout": TIMEOUTS["startup"]}


def shutdown_step() -> dict[str, Any]:
    pid = "{work:path}/agent.pid"
    script = f'if [ -f {pid} ]; then kill -TERM "$(cat {pid})" 2>/dev/null || true; rm -f {pid}; fi'
    return {"Script": script, "Timeout": TIMEOUTS["shutdown"]}


def manifest(
    plan: ManifestPlan, name: str, version: str, marker: str, grpc: bool = False
) -> dict[str, Any]:
    return {
        "Name": plan.label,
        "Platform": plan.platform,
        "Lifecycle": {
            "Setenv": {
                "PYTHONPATH": f"{{artifacts:decompressedPath}}/{agent_artifact.AGENT_DIR}",
                "PYTHONUNBUFFERED": "1",
                "EDGEKIT_COMPONENT_NAME": name,
                "EDGEKIT_COMPONENT_VERSION": version,
            },
            "Install": install_step(plan, version, marker),
            "Startup": startup_step(plan, version, grpc),
            "Shutdown": shutdown_step(),
        },
        "Artifacts": [a.recipe() for a in plan.artifacts],
    }


def build_recipe(
    *,
    name: str,
    version: str,
    description: str,
    publisher: str,
    plans: list[ManifestPlan],
    settings: Settings,
    install_marker: str,
) -> dict[str, Any]:
    recipe: dict[str, Any] = {
        "RecipeFormatVersion": RECIPE_FORMAT,
        "ComponentName": name,
        "ComponentVersion": version,
        "ComponentDescription": description,
        "ComponentPublisher": publisher,
        "ComponentConfiguration": {
            "DefaultConfiguration": default_configuration(name, plans, settings)
        },
        "ComponentDependencies": {},
        "Manifests": [
            manifest(p, name, version, install_marker, settings.grpc_port is not None)
            for p in plans
        ],
    }
    minimum = validate.minimum_nucleus(recipe)
    major = minimum.split(".")[0]
    recipe["ComponentDependencies"] = {
        NUCLEUS: {
            "VersionRequirement": f">={minimum} <{int(major) + 1}.0.0",
            "DependencyType": "SOFT",
        }
    }
    return recipe
