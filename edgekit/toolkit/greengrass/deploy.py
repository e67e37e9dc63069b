"""`edgekit deploy` and `edgekit deploy status`: Greengrass deployments to a thing or a thing
group, with configuration MERGE/RESET, rollback on failure and an IoT Jobs rollout for canaries.

The preflight before a deployment asks the service what it would take to succeed: every
component version exists and is DEPLOYABLE, and every core device in the target has a platform
one of the recipe's manifests matches (otherwise the nucleus fails the deployment there).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.errors import BadInputError, CheckFailedError
from edgekit.toolkit.greengrass.aws import AwsError, Call, Clients, describe_version
from edgekit.toolkit.greengrass.names import check_component_name, check_component_version
from edgekit.toolkit.greengrass.recipe import VERSION_CONFIG
from edgekit.toolkit.greengrass.validate import get_ci

NUCLEUS = "aws.greengrass.Nucleus"
TARGET_ARN = re.compile(r"^arn:[^:]*:iot:[^:]*:[0-9]+:(thing|thinggroup)/(.+)$")
FAILURE_POLICIES = ("ROLLBACK", "DO_NOTHING")
UPDATE_ACTIONS = ("NOTIFY_COMPONENTS", "SKIP_NOTIFY_COMPONENTS")
ABORT_TYPES = ("FAILED", "REJECTED", "TIMED_OUT", "ALL")
BAD_EXECUTION = ("FAILED", "TIMED_OUT", "REJECTED", "CANCELED")
BAD_COMPONENT = ("BROKEN", "ERRORED")


@dataclass
class Rollout:
    """IoT Jobs rollout: start at `base_rate` devices a minute, multiply by `increment` each time
    `after_succeeded` more devices succeed, cap at `max_per_minute`; cancel when more than
    `abort_percent` of at least `abort_min_executed` executed devices fail."""

    base_rate: int | None = None
    increment: float = 2.0
    after_succeeded: int = 5
    max_per_minute: int | None = None
    abort_percent: float | None = None
    abort_min_executed: int = 10
    abort_on: str = "ALL"
    timeout_minutes: int | None = None

    def job_configuration(self) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        rollout: dict[str, Any] = {}
        if self.base_rate is not None:
            rollout["exponentialRate"] = {
                "baseRatePerMinute": self.base_rate,
                "incrementFactor": self.increment,
                "rateIncreaseCriteria": {"numberOfSucceededThings": self.after_succeeded},
            }
        if self.max_per_minute is not None:
            rollout["maximumPerMinute"] = self.max_per_minute
        if rollout:
            out["jobExecutionsRolloutConfig"] = rollout
        if self.abort_percent is not None:
            out["abortConfig"] = {
                "criteriaList": [
                    {
                        "failureType": self.abort_on,
                        "action": "CANCEL",
                        "thresholdPercentage": self.abort_percent,
                        "minNumberOfExecutedThings": self.abort_min_executed,
                    }
                ]
            }
        if self.timeout_minutes is not None:
            out["timeoutConfig"] = {"inProgressTimeoutInMinutes": self.timeout_minutes}
        return out or None

    def check(self) -> None:
        if self.base_rate is not None and not 1 <= self.base_rate <= 1000:
            raise BadInputError("`rollout_rate` must be 1..1000 devices per minute")
        if not 1 <= self.increment <= 5:
            raise BadInputError("`rollout_increment` must be between 1 and 5")
        if self.max_per_minute is not None and not 1 <= self.max_per_minute <= 1000:
            raise BadInputError("`rollout_max` must be 1..1000 devices per minute")
        if self.abort_percent is not None and not 0 < self.abort_percent <= 100:
            raise BadInputError("`abort_percent` must be within (0, 100]")
        if self.abort_min_executed < 1 or self.after_succeeded < 1:
            raise BadInputError("`abort_min` and `rollout_after` must be at least 1")
        if self.abort_on not in ABORT_TYPES:
            raise BadInputError(f"`abort_on` must be one of {', '.join(ABORT_TYPES)}")


@dataclass
class DeployRequest:
    components: dict[str, str]  # name -> version
    target_arn: str | None = None
    thing: str | None = None
    thing_group: str | None = None
    merge: dict[str, dict[str, Any]] = field(default_factory=dict)
    reset: dict[str, list[str]] = field(default_factory=dict)
    failure_policy: str = "ROLLBACK"
    update_action: str = "NOTIFY_COMPONENTS"
    update_timeout_s: int = 60
    validation_timeout_s: int | None = None
    rollout: Rollout = field(default_factory=Rollout)
    name: str | None = None
    nucleus_version: str | None = None
    parent_target_arn: str | None = None
    package_report: Path | None = None  # <name>-<version>.edgekit.json from `edgekit package`
    dry_run: bool = False
    force: bool = False


def parse_components(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        name, sep, version = item.partition("=")
        if not sep:
            raise BadInputError(f"`components` {item!r} is not NAME=VERSION")
        out[check_component_name(name.strip())] = check_component_version(version.strip())
    if not out:
        raise BadInputError("no `components` NAME=VERSION given")
    return out


def parse_merges(values: list[str]) -> dict[str, dict[str, Any]]:
    """`NAME={"window_s": "30"}` or `NAME=@file.json` -> {NAME: object}."""
    out: dict[str, dict[str, Any]] = {}
    for item in values:
        name, sep, text = item.partition("=")
        if not sep:
            raise BadInputError(f"`merge` {item!r} is not NAME=JSON or NAME=@FILE")
        if text.startswith("@"):
            path = Path(text[1:])
            if not path.is_file():
                raise BadInputError(f"`merge` {name}: {path} does not exist")
            text = path.read_text("utf-8")
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadInputError(f"`merge` {name}: not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise BadInputError(f"`merge` {name}: the configuration to merge must be a JSON object")
        out.setdefault(name, {}).update(value)
    return out


def parse_resets(values: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in values:
        name, sep, pointer = item.partition("=")
        if not sep or not (pointer == "" or pointer.startswith("/")):
            raise BadInputError(
                f"`reset` {item!r} is not NAME=/json/pointer", hint="use NAME= to reset everything"
            )
        out.setdefault(name, []).append(pointer)
    return out


INTERPOLATION_NUCLEUS = (2, 6, 0)


def check_nucleus_version(version: str) -> str:
    """interpolateComponentConfiguration exists from nucleus 2.6.0 on."""
    check_component_version(version)
    release = tuple(int(x) for x in re.split(r"[-+]", version)[0].split("."))
    if release < INTERPOLATION_NUCLEUS:
        raise BadInputError(
            f"--nucleus-version {version}: interpolateComponentConfiguration (for "
            "{iot:thingName} in accessControl) needs nucleus 2.6.0 or later",
            hint="give the nucleus version your devices run, 2.6.0 or later",
        )
    return version


def _numbers(node: Any, pointer: str = "") -> list[str]:
    if isinstance(node, bool):
        return []
    if isinstance(node, (int, float)):
        return [pointer or "/"]
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _numbers(v, f"{pointer}/{k}")]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _numbers(v, f"{pointer}/{i}")]
    return []


def merge_findings(request: DeployRequest) -> list[DeployFinding]:
    """Numbers merged into a component's configuration may reach it as floats (the nucleus's
    config store), so {configuration:/port} in a script would read 8080.0."""
    found = []
    for name, merge in request.merge.items():
        pointers = [] if name == NUCLEUS else _numbers(merge)
        if pointers:
            found.append(
                DeployFinding(
                    "warning",
                    name,
                    f"--merge sets numbers at {', '.join(pointers)}: they may reach the component "
                    'as floats (8080 -> 8080.0); give them as strings, e.g. "8080"',
                )
            )
    return found


def check_target_arn(arn: str) -> tuple[str, str]:
    m = TARGET_ARN.match(arn)
    if not m:
        raise BadInputError(
            f"--target-arn {arn!r} is not a thing or thing group ARN",
            hint="arn:aws:iot:REGION:ACCOUNT:thing/NAME or ...:thinggroup/NAME",
        )
    return m.group(1), m.group(2)


def deployment_params(request: DeployRequest, target_arn: str) -> dict[str, Any]:
    """The exact CreateDeployment request."""
    if request.failure_policy not in FAILURE_POLICIES:
        raise BadInputError(f"`failure_policy` must be one of {', '.join(FAILURE_POLICIES)}")
    if request.update_action not in UPDATE_ACTIONS:
        raise BadInputError(f"`update_policy` must be one of {', '.join(UPDATE_ACTIONS)}")
    request.rollout.check()
    for name in {*request.merge, *request.reset}:
        if name not in request.components and name != NUCLEUS:
            raise BadInputError(f"`merge`/`reset` name {name}, which is not a `components`")
    components: dict[str, Any] = {}
    for name, version in request.components.items():
        spec: dict[str, Any] = {"componentVersion": version}
        update: dict[str, Any] = {}
        if name in request.merge:
            update["merge"] = json.dumps(request.merge[name], sort_keys=True)
        if name in request.reset:
            update["reset"] = request.reset[name]
        if update:
            spec["configurationUpdate"] = update
        components[name] = spec
    if request.nucleus_version:
        # {iot:thingName} in accessControl is interpolated only with this nucleus setting.
        merge = {"interpolateComponentConfiguration": True, **request.merge.get(NUCLEUS, {})}
        components[NUCLEUS] = {
            "componentVersion": check_nucleus_version(request.nucleus_version),
            "configurationUpdate": {"merge": json.dumps(merge, sort_keys=True)},
        }
    policies: dict[str, Any] = {
        "failureHandlingPolicy": request.failure_policy,
        "componentUpdatePolicy": {
            "action": request.update_action,
            "timeoutInSeconds": request.update_timeout_s,
        },
    }
    if request.validation_timeout_s is not None:
        policies["configurationValidationPolicy"] = {
            "timeoutInSeconds": request.validation_timeout_s
        }
    params: dict[str, Any] = {
        "targetArn": target_arn,
        "deploymentName": request.name
        or ", ".join(f"{n}={v}" for n, v in request.components.items())[:256],
        "components": components,
        "deploymentPolicies": policies,
    }
    job = request.rollout.job_configuration()
    if job:
        params["iotJobConfiguration"] = job
    if request.parent_target_arn:
        params["parentTargetArn"] = request.parent_target_arn
    return params


def resolve_target(request: DeployRequest, clients: Clients) -> str:
    given = [x for x in (request.target_arn, request.thing, request.thing_group) if x]
    if len(given) != 1:
        raise BadInputError("give exactly one of `target_arn`, `thing`, `thing_group`")
    if request.target_arn:
        check_target_arn(request.target_arn)
        return request.target_arn
    try:
        if request.thing_group:
            found = clients.call("iot", "describe_thing_group", thingGroupName=request.thing_group)
            return found["thingGroupArn"]
        found = clients.call("iot", "describe_thing", thingName=request.thing)
        return found["thingArn"]
    except AwsError as exc:
        if exc.not_found:
            what = "thing group" if request.thing_group else "thing"
            raise BadInputError(
                f"{what} {request.thing_group or request.thing!r} does not exist in this "
                "account and region",
                hint="check the name and `region`",
            ) from exc
        raise


# -- preflight against the service ---------------------------------------------------------------


def _platform_matches(platform: dict[str, Any], os_name: str | None, arch: str | None) -> bool:
    for key, want in (("os", os_name), ("architecture", arch)):
        value = get_ci(platform, key)[1]
        if value in (None, "*"):
            continue
        if isinstance(value, str) and value.startswith("/") and value.endswith("/"):
            if not re.fullmatch(value[1:-1], want or ""):
                return False
        elif value != want:
            return False
    return True


def core_devices(clients: Clients, target_arn: str) -> list[dict[str, Any]]:
    kind, name = check_target_arn(target_arn)
    if kind == "thing":
        try:
            return [clients.call("greengrassv2", "get_core_device", coreDeviceThingName=name)]
        except AwsError as exc:
            if exc.not_found:
                return []
            raise
    return clients.pages(
        "greengrassv2", "list_core_devices", "coreDevices", thingGroupArn=target_arn
    )


@dataclass(frozen=True)
class DeployFinding:
    severity: str
    subject: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"severity": self.severity, "subject": self.subject, "message": self.message}


def read_recipes(
    request: DeployRequest, clients: Clients
) -> tuple[dict[str, dict[str, Any]], list[DeployFinding]]:
    """The recipes of the deployable component versions, and a finding for each that is not."""
    findings: list[DeployFinding] = []
    recipes: dict[str, dict[str, Any]] = {}
    for name, version in request.components.items():
        _, arn, described = describe_version(clients, name, version)
        if described is None:
            findings.append(
                DeployFinding(
                    "error", f"{name}={version}", "no such component version: publish it first"
                )
            )
            continue
        state = (described.get("status") or {}).get("componentState")
        if state != "DEPLOYABLE":
            findings.append(
                DeployFinding(
                    "error", f"{name}={version}", f"component version is {state}, not DEPLOYABLE"
                )
            )
            continue
        got = clients.call("greengrassv2", "get_component", arn=arn, recipeOutputFormat="JSON")
        raw = got["recipe"]
        recipes[name] = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    return recipes, findings


def version_resets(recipes: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Per edgekit component, the configuration that belongs to its version and must be reset.

    Configuration updates are patches: without the reset a device keeps the variant the old
    version chose, which the new version's artifacts may not hold (BROKEN, then rollback)."""
    out: dict[str, list[str]] = {}
    for name, recipe in recipes.items():
        config = get_ci(get_ci(recipe, "ComponentConfiguration")[1] or {}, "DefaultConfiguration")
        defaults = config[1] if isinstance(config[1], dict) else {}
        pointers = [p for p in VERSION_CONFIG if get_ci(defaults, p.strip("/"))[1] is not None]
        if pointers:
            out[name] = pointers
    return out


def with_version_resets(request: DeployRequest, recipes: dict[str, dict[str, Any]]) -> None:
    for name, pointers in version_resets(recipes).items():
        have = request.reset.setdefault(name, [])
        have.extend(p for p in pointers if p not in have)


def preflight(
    request: DeployRequest,
    target_arn: str,
    clients: Clients,
    recipes: dict[str, dict[str, Any]],
) -> list[DeployFinding]:
    findings: list[DeployFinding] = []
    for name, recipe in recipes.items():
        config = get_ci(get_ci(recipe, "ComponentConfiguration")[1] or {}, "DefaultConfiguration")
        if "{iot:thingName}" in json.dumps(config[1] or {}) and not request.nucleus_version:
            findings.append(
                DeployFinding(
                    "warning",
                    name,
                    "accessControl uses {iot:thingName}: the nucleus needs "
                    "interpolateComponentConfiguration=true (pass --nucleus-version to set it in "
                    "this deployment)",
                )
            )
    devices = core_devices(clients, target_arn)
    if not devices:
        findings.append(
            DeployFinding("warning", target_arn, "no Greengrass core device in the target yet")
        )
    packaged = _packaged_findings(request.package_report)
    for device in devices:
        thing = device.get("coreDeviceThingName", "?")
        os_name, arch = device.get("platform"), device.get("architecture")
        for f in packaged.get(f"{os_name}/{arch}", []):
            findings.append(
                DeployFinding(
                    f["severity"], thing, f"compatibility ({f['target']}): {f['message']}"
                )
            )
        for name, recipe in recipes.items():
            manifests = get_ci(recipe, "Manifests")[1] or []
            if not any(
                _platform_matches(get_ci(m, "Platform")[1] or {}, os_name, arch) for m in manifests
            ):
                findings.append(
                    DeployFinding(
                        "error",
                        thing,
                        f"{name} has no manifest for {os_name}/{arch}: the deployment would fail "
                        "on this device (package with --platform for it)",
                    )
                )
    return findings


def _packaged_findings(report: Path | None) -> dict[str, list[dict[str, Any]]]:
    """The compatibility preflight `edgekit package` recorded, by platform ("linux/aarch64")."""
    if report is None:
        return {}
    path = Path(report)
    if not path.is_file():
        raise BadInputError(f"`package_report` {path} does not exist")
    try:
        data = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise BadInputError(f"`package_report` {path} is not JSON: {exc}") from exc
    return {p["platform"]: p.get("findings", []) for p in data.get("platforms", [])}


def packaged_recipes(request: DeployRequest) -> dict[str, dict[str, Any]]:
    """The recipe `edgekit package` wrote, for a dry run that reads nothing from AWS."""
    if request.package_report is None:
        return {}
    path = Path(request.package_report)
    try:
        report = json.loads(path.read_text("utf-8"))
        recipe = json.loads(Path(report["recipe"]).read_text("utf-8"))
    except (OSError, KeyError, TypeError, json.JSONDecodeError):
        return {}  # the preflight names what is wrong with the report
    name = report.get("component")
    return {name: recipe} if name in request.components else {}


def deploy(request: DeployRequest, clients: Clients) -> dict[str, Any]:
    if request.dry_run:
        with_version_resets(request, packaged_recipes(request))
        target = request.target_arn
        calls: list[Call] = []
        if not target:
            if request.thing_group:
                calls.append(
                    Call("iot", "DescribeThingGroup", {"thingGroupName": request.thing_group})
                )
                target = f"arn:aws:iot:<region>:<account-id>:thinggroup/{request.thing_group}"
            elif request.thing:
                calls.append(Call("iot", "DescribeThing", {"thingName": request.thing}))
                target = f"arn:aws:iot:<region>:<account-id>:thing/{request.thing}"
            else:
                raise BadInputError("give one of `target_arn`, `thing`, `thing_group`")
            params = deployment_params(request, target)
        else:
            check_target_arn(target)
            params = deployment_params(request, target)
        calls.append(Call("greengrassv2", "CreateDeployment", params))
        return {
            "ok": True,
            "dry_run": True,
            "calls": [c.to_dict() for c in calls],
            "findings": [f.to_dict() for f in merge_findings(request)],
        }

    target = resolve_target(request, clients)
    deployment_params(request, target)  # bad input fails before any call
    recipes, unreadable = read_recipes(request, clients)
    with_version_resets(request, recipes)
    params = deployment_params(request, target)
    findings = merge_findings(request) + unreadable + preflight(request, target, clients, recipes)
    errors = [f for f in findings if f.severity == "error"]
    if errors and not request.force:
        raise CheckFailedError(
            "deployment preflight failed:\n"
            + "\n".join(f"  {f.subject}: {f.message}" for f in errors),
            hint="fix the component or the target, or pass `force` to deploy anyway",
            details={"findings": [f.to_dict() for f in findings]},
        )
    created = clients.call("greengrassv2", "create_deployment", **params)
    return {
        "ok": True,
        "dry_run": False,
        "target_arn": target,
        "deployment_id": created.get("deploymentId"),
        "iot_job_id": created.get("iotJobId"),
        "iot_job_arn": created.get("iotJobArn"),
        "findings": [f.to_dict() for f in findings],
        "request": params,
    }


def status(clients: Clients, target_arn: str, component: str | None = None) -> list[dict[str, Any]]:
    """Per core device: health, the latest deployment to this target and its execution status,
    and the lifecycle state of `component` (or of every root component)."""
    rows = []
    for device in core_devices(clients, target_arn):
        thing = device["coreDeviceThingName"]
        deployments = clients.pages(
            "greengrassv2",
            "list_effective_deployments",
            "effectiveDeployments",
            coreDeviceThingName=thing,
        )
        mine = [d for d in deployments if d.get("targetArn") == target_arn] or deployments
        latest = max(mine, key=lambda d: d.get("modifiedTimestamp") or 0, default=None)
        installed = clients.pages(
            "greengrassv2",
            "list_installed_components",
            "installedComponents",
            coreDeviceThingName=thing,
            topologyFilter="ROOT",
        )
        comps = [c for c in installed if component is None or c.get("componentName") == component]
        rows.append(
            {
                "thing": thing,
                "health": device.get("status"),
                "platform": f"{device.get('platform')}/{device.get('architecture')}",
                "deployment": (latest or {}).get("deploymentName"),
                "deployment_id": (latest or {}).get("deploymentId"),
                "execution": (latest or {}).get("coreDeviceExecutionStatus"),
                "reason": (latest or {}).get("reason"),
                "components": [
                    {
                        "name": c.get("componentName"),
                        "version": c.get("componentVersion"),
                        "state": c.get("lifecycleState"),
                        "details": c.get("lifecycleStateDetails"),
                    }
                    for c in comps
                ],
            }
        )
    return rows


def status_failed(rows: list[dict[str, Any]]) -> bool:
    return any(
        r["execution"] in BAD_EXECUTION
        or r["health"] == "UNHEALTHY"
        or any(c["state"] in BAD_COMPONENT for c in r["components"])
        for r in rows
    )
