"""publish and deploy: request shapes checked by botocore's Stubber against the real greengrassv2
service model (moto has no greengrassv2), moto for S3, STS and IoT thing groups."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber
from botocore.validate import validate_parameters
from moto import mock_aws
from typer.testing import CliRunner

from edge_agent.errors import BadInputError, CheckFailedError
from edgekit.toolkit.cli import app
from edgekit.toolkit.greengrass.aws import Clients, component_arn
from edgekit.toolkit.greengrass.deploy import DeployRequest, Rollout, deploy, status, status_failed
from edgekit.toolkit.greengrass.publish import PublishRequest, publish
from tests.toolkit.greengrass.gg_helpers import NAME, VERSION

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account
BUCKET = "edgekit-artifacts"
ARN = component_arn(REGION, ACCOUNT, NAME, VERSION)
NOW = datetime(2026, 11, 27, tzinfo=timezone.utc)
runner = CliRunner()


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with mock_aws():
        yield


@pytest.fixture
def build_dir(packaged, tmp_path) -> Path:
    dest = tmp_path / "greengrass-build"
    shutil.copytree(Path(packaged.recipe_path).parent.parent, dest)
    return dest


def stubbed_clients() -> tuple[Clients, Stubber]:
    clients = Clients(region=REGION)
    gg = boto3.client("greengrassv2", region_name=REGION)
    clients.made["greengrassv2"] = gg
    return clients, Stubber(gg)


def not_found(stub: Stubber, arn: str = ARN) -> None:
    stub.add_client_error(
        "describe_component",
        service_error_code="ResourceNotFoundException",
        service_message="not found",
        http_status_code=404,
        expected_params={"arn": arn},
    )


def created(stub: Stubber) -> None:
    stub.add_response(
        "create_component_version",
        {
            "arn": ARN,
            "componentName": NAME,
            "componentVersion": VERSION,
            "creationTimestamp": NOW,
            "status": {"componentState": "REQUESTED"},
        },
        {"inlineRecipe": ANY},
    )


def described(state: str) -> dict:
    return {
        "arn": ARN,
        "componentName": NAME,
        "componentVersion": VERSION,
        "status": {"componentState": state},
    }


def test_publish_uploads_rewrites_and_waits(aws_env, build_dir):
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    clients, stub = stubbed_clients()
    not_found(stub)
    created(stub)
    stub.add_response("describe_component", described("INITIATED"), {"arn": ARN})
    stub.add_response("describe_component", described("DEPLOYABLE"), {"arn": ARN})
    with stub:
        result = publish(PublishRequest(build_dir, BUCKET, poll_s=0), clients)
        stub.assert_no_pending_responses()
    assert result["arn"] == ARN and result["state"] == "DEPLOYABLE"
    artifacts = build_dir / "artifacts" / NAME / VERSION
    for file in ("agent.zip", "model-fp32.zip"):
        body = s3.get_object(Bucket=BUCKET, Key=f"{NAME}/{VERSION}/{file}")["Body"].read()
        assert body == (artifacts / file).read_bytes()
    sent = next(c for c in clients.calls if c.operation == "CreateComponentVersion")
    recipe = json.loads(sent.params["inlineRecipe"])
    uris = {a["Uri"] for m in recipe["Manifests"] for a in m["Artifacts"]}
    assert uris == {f"s3://{BUCKET}/{NAME}/{VERSION}/{f}" for f in ("agent.zip", "model-fp32.zip")}
    local = json.loads((build_dir / "recipes" / f"{NAME}-{VERSION}.json").read_text())
    assert [a["Digest"] for m in recipe["Manifests"] for a in m["Artifacts"]] == [
        a["Digest"] for m in local["Manifests"] for a in m["Artifacts"]
    ]
    assert (build_dir / f"{NAME}-{VERSION}.published.json").is_file()


def test_publish_refuses_an_existing_version(aws_env, build_dir):
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    clients, stub = stubbed_clients()
    stub.add_response("describe_component", described("DEPLOYABLE"), {"arn": ARN})
    with stub, pytest.raises(BadInputError, match="already exists"):
        publish(PublishRequest(build_dir, BUCKET, poll_s=0), clients)
    listed = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=BUCKET)
    assert listed.get("KeyCount", 0) == 0


def test_publish_missing_bucket_and_access_denied(aws_env, build_dir):
    clients, stub = stubbed_clients()
    not_found(stub)
    with stub, pytest.raises(BadInputError, match=f"bucket '{BUCKET}' does not exist"):
        publish(PublishRequest(build_dir, BUCKET, poll_s=0), clients)
    clients, stub = stubbed_clients()
    stub.add_client_error(
        "describe_component",
        service_error_code="AccessDeniedException",
        service_message="User is not authorized",
        http_status_code=403,
    )
    with stub, pytest.raises(BadInputError, match="access denied") as info:
        publish(PublishRequest(build_dir, BUCKET, poll_s=0), clients)
    assert "greengrass:DescribeComponent" in info.value.hint


def test_publish_reports_a_failed_component(aws_env, build_dir):
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    clients, stub = stubbed_clients()
    not_found(stub)
    created(stub)
    failed = described("FAILED")
    failed["status"].update(message="artifact unreadable", errors={"agent.zip": "403"})
    stub.add_response("describe_component", failed, {"arn": ARN})
    with stub, pytest.raises(CheckFailedError, match="artifact unreadable"):
        publish(PublishRequest(build_dir, BUCKET, poll_s=0), clients)


def test_missing_credentials_is_a_clear_error(monkeypatch, tmp_path, build_dir):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    res = runner.invoke(app, ["publish", str(build_dir), "--bucket", BUCKET, "--region", REGION])
    assert res.exit_code == 2, res.output
    assert "no AWS credentials" in res.output


def test_publish_dry_run_prints_the_calls_without_aws(monkeypatch, build_dir):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    res = runner.invoke(
        app,
        ["publish", str(build_dir), "--bucket", BUCKET, "--region", REGION, "--dry-run", "--json"],
    )
    assert res.exit_code == 0, res.output
    calls = json.loads(res.stdout)["calls"]
    ops = [f"{c['service']}.{c['operation']}" for c in calls]
    assert ops == [
        "sts.GetCallerIdentity",
        "greengrassv2.DescribeComponent",
        "s3.HeadBucket",
        "s3.PutObject",
        "s3.PutObject",
        "greengrassv2.CreateComponentVersion",
        "greengrassv2.DescribeComponent",
    ]
    keys = [c["params"]["Key"] for c in calls if c["operation"] == "PutObject"]
    assert keys == [f"{NAME}/{VERSION}/agent.zip", f"{NAME}/{VERSION}/model-fp32.zip"]
    recipe = calls[5]["params"]["inlineRecipe"]
    assert (
        recipe["Manifests"][0]["Artifacts"][0]["Uri"] == f"s3://{BUCKET}/{NAME}/{VERSION}/agent.zip"
    )
    assert not (build_dir / f"{NAME}-{VERSION}.published.json").exists()


def recipe_bytes(build_dir: Path) -> bytes:
    return (build_dir / "recipes" / f"{NAME}-{VERSION}.json").read_bytes()


def deploy_request(group_arn: str, **kw) -> DeployRequest:
    return DeployRequest(
        components={NAME: VERSION},
        target_arn=group_arn,
        merge={NAME: {"window_s": "30"}},
        reset={NAME: ["/drift_psi_threshold"]},
        rollout=Rollout(
            base_rate=2,
            increment=1.5,
            after_succeeded=3,
            max_per_minute=20,
            abort_percent=10.0,
            abort_min_executed=5,
            timeout_minutes=30,
        ),
        name="canary",
        **kw,
    )


def stub_preflight(stub: Stubber, group_arn: str, build_dir: Path, arch: str = "aarch64") -> None:
    stub.add_response("describe_component", described("DEPLOYABLE"), {"arn": ARN})
    stub.add_response(
        "get_component",
        {"recipeOutputFormat": "JSON", "recipe": recipe_bytes(build_dir)},
        {"arn": ARN, "recipeOutputFormat": "JSON"},
    )
    stub.add_response(
        "list_core_devices",
        {
            "coreDevices": [
                {
                    "coreDeviceThingName": "pi-1",
                    "status": "HEALTHY",
                    "platform": "linux",
                    "architecture": arch,
                },
                {
                    "coreDeviceThingName": "gw-1",
                    "status": "HEALTHY",
                    "platform": "linux",
                    "architecture": "amd64",
                },
            ]
        },
        {"thingGroupArn": group_arn},
    )


def test_deploy_to_a_thing_group_with_rollout(aws_env, build_dir):
    iot = boto3.client("iot", region_name=REGION)
    iot.create_thing_group(thingGroupName="canary")
    group_arn = iot.describe_thing_group(thingGroupName="canary")["thingGroupArn"]
    clients, stub = stubbed_clients()
    stub_preflight(stub, group_arn, build_dir)
    expected = {
        "targetArn": group_arn,
        "deploymentName": "canary",
        "components": {
            NAME: {
                "componentVersion": VERSION,
                "configurationUpdate": {
                    "merge": '{"window_s": "30"}',
                    # the user's reset, then the version's own choice per platform (read from
                    # the recipe: an edgekit component)
                    "reset": ["/drift_psi_threshold", "/platforms"],
                },
            },
            "aws.greengrass.Nucleus": {
                "componentVersion": "2.14.0",
                "configurationUpdate": {"merge": '{"interpolateComponentConfiguration": true}'},
            },
        },
        "deploymentPolicies": {
            "failureHandlingPolicy": "ROLLBACK",
            "componentUpdatePolicy": {"action": "NOTIFY_COMPONENTS", "timeoutInSeconds": 60},
        },
        "iotJobConfiguration": {
            "jobExecutionsRolloutConfig": {
                "exponentialRate": {
                    "baseRatePerMinute": 2,
                    "incrementFactor": 1.5,
                    "rateIncreaseCriteria": {"numberOfSucceededThings": 3},
                },
                "maximumPerMinute": 20,
            },
            "abortConfig": {
                "criteriaList": [
                    {
                        "failureType": "ALL",
                        "action": "CANCEL",
                        "thresholdPercentage": 10.0,
                        "minNumberOfExecutedThings": 5,
                    }
                ]
            },
            "timeoutConfig": {"inProgressTimeoutInMinutes": 30},
        },
    }
    stub.add_response("create_deployment", {"deploymentId": "d-1", "iotJobId": "job-1"}, expected)
    request = deploy_request(None, nucleus_version="2.14.0")
    request.target_arn, request.thing_group = None, "canary"
    with stub:
        result = deploy(request, clients)
        stub.assert_no_pending_responses()
    assert result["deployment_id"] == "d-1" and result["target_arn"] == group_arn
    assert not [f for f in result["findings"] if f["severity"] == "error"]


def test_deploy_preflight_blocks_a_platform_without_manifest(aws_env, build_dir):
    iot = boto3.client("iot", region_name=REGION)
    group_arn = iot.create_thing_group(thingGroupName="armv7")["thingGroupArn"]
    clients, stub = stubbed_clients()
    stub_preflight(stub, group_arn, build_dir, arch="arm")
    with stub, pytest.raises(CheckFailedError, match="no manifest for linux/arm"):
        deploy(deploy_request(group_arn), clients)
    with pytest.raises(BadInputError, match="does not exist"):
        deploy(
            DeployRequest(components={NAME: VERSION}, thing_group="nope"), Clients(region=REGION)
        )


def test_deploy_dry_run_matches_the_service_model():
    request = deploy_request("arn:aws:iot:us-east-1:123456789012:thinggroup/canary", dry_run=True)
    request.failure_policy = "DO_NOTHING"
    result = deploy(request, Clients(region=REGION))
    (call,) = result["calls"]
    assert call["operation"] == "CreateDeployment"
    model = boto3.session.Session().get_available_services()
    assert "greengrassv2" in model
    import botocore.session

    shape = (
        botocore.session.get_session()
        .get_service_model("greengrassv2")
        .operation_model("CreateDeployment")
        .input_shape
    )
    validate_parameters(call["params"], shape)  # raises ParamValidationError on a bad shape
    assert call["params"]["deploymentPolicies"]["failureHandlingPolicy"] == "DO_NOTHING"


def test_a_new_version_resets_its_platform_choice(packaged, tmp_path):
    """Without the reset a device keeps v1's variant, which v2's artifacts may not hold."""
    arn = "arn:aws:iot:us-east-1:123456789012:thinggroup/canary"
    plain = deploy(DeployRequest(components={NAME: VERSION}, target_arn=arn, dry_run=True), None)
    (call,) = plain["calls"]
    assert "configurationUpdate" not in call["params"]["components"][NAME]  # nothing to read

    request = DeployRequest(
        components={NAME: VERSION},
        target_arn=arn,
        dry_run=True,
        package_report=packaged.report_path,
    )
    (call,) = deploy(request, None)["calls"]
    assert call["params"]["components"][NAME]["configurationUpdate"] == {"reset": ["/platforms"]}

    other = DeployRequest(
        components={"com.example.Other": "1.0.0"},
        target_arn=arn,
        dry_run=True,
        package_report=packaged.report_path,  # a report for another component changes nothing
    )
    (call,) = deploy(other, None)["calls"]
    assert "configurationUpdate" not in call["params"]["components"]["com.example.Other"]


def test_deploy_cli_dry_run_and_bad_arn():
    res = runner.invoke(
        app,
        [
            "deploy",
            "--target-arn",
            "arn:aws:iot:us-east-1:123456789012:thing/pi-1",
            "--component",
            f"{NAME}={VERSION}",
            "--merge",
            f'{NAME}={{"port": "9090"}}',
            "--dry-run",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    params = json.loads(res.stdout)["calls"][0]["params"]
    assert params["deploymentPolicies"]["failureHandlingPolicy"] == "ROLLBACK"
    assert json.loads(params["components"][NAME]["configurationUpdate"]["merge"]) == {
        "port": "9090"
    }
    res = runner.invoke(
        app,
        [
            "deploy",
            "--target-arn",
            "arn:aws:iot:x:1:job/j",
            "--component",
            f"{NAME}={VERSION}",
            "--dry-run",
        ],
    )
    assert res.exit_code == 2 and "not a thing or thing group ARN" in res.output


DRY = ["--target-arn", "arn:aws:iot:us-east-1:123456789012:thing/pi-1", "--dry-run", "--json"]


def test_deploy_nucleus_version_and_numbers_in_merge():
    args = ["deploy", *DRY, "--component", f"{NAME}={VERSION}"]
    res = runner.invoke(app, [*args, "--nucleus-version", "2.5.9"])
    assert res.exit_code == 2 and "needs nucleus 2.6.0" in res.output
    res = runner.invoke(
        app, [*args, "--nucleus-version", "2.12.1", "--merge", f'{NAME}={{"port": 9090}}']
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    nucleus = data["calls"][0]["params"]["components"]["aws.greengrass.Nucleus"]
    assert json.loads(nucleus["configurationUpdate"]["merge"]) == {
        "interpolateComponentConfiguration": True
    }
    (warning,) = data["findings"]
    assert warning["severity"] == "warning" and "/port" in warning["message"]


@pytest.mark.parametrize("bucket", ["s3://b", "ab", "Upper-Case", "a..b", "192.168.1.1", "x/y"])
def test_publish_refuses_a_bad_bucket_name(build_dir, bucket):
    res = runner.invoke(app, ["publish", str(build_dir), "--bucket", bucket, "--dry-run"])
    assert res.exit_code == 2 and "is not a valid S3 bucket name" in res.output


def test_publish_refuses_a_bucket_in_another_region(aws_env, build_dir):
    boto3.client("s3", region_name="eu-west-1").create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    clients, stub = stubbed_clients()
    not_found(stub)
    with stub, pytest.raises(BadInputError, match="is in eu-west-1, but Greengrass"):
        publish(PublishRequest(build_dir, BUCKET, poll_s=0), clients)
    listed = boto3.client("s3", region_name="eu-west-1").list_objects_v2(Bucket=BUCKET)
    assert listed.get("KeyCount", 0) == 0  # refused before any upload


def test_status_lists_each_device(aws_env):
    group = "arn:aws:iot:us-east-1:123456789012:thinggroup/canary"
    clients, stub = stubbed_clients()
    stub.add_response(
        "list_core_devices",
        {
            "coreDevices": [
                {
                    "coreDeviceThingName": "pi-1",
                    "status": "HEALTHY",
                    "platform": "linux",
                    "architecture": "aarch64",
                },
                {
                    "coreDeviceThingName": "pi-2",
                    "status": "UNHEALTHY",
                    "platform": "linux",
                    "architecture": "aarch64",
                },
            ]
        },
        {"thingGroupArn": group},
    )
    for thing, execution, state in (("pi-1", "SUCCEEDED", "RUNNING"), ("pi-2", "FAILED", "BROKEN")):
        stub.add_response(
            "list_effective_deployments",
            {
                "effectiveDeployments": [
                    {
                        "deploymentId": "d-1",
                        "deploymentName": "canary",
                        "targetArn": group,
                        "coreDeviceExecutionStatus": execution,
                        "reason": "" if execution == "SUCCEEDED" else "COMPONENT_BROKEN",
                        "creationTimestamp": NOW,
                        "modifiedTimestamp": NOW,
                    }
                ]
            },
            {"coreDeviceThingName": thing},
        )
        stub.add_response(
            "list_installed_components",
            {
                "installedComponents": [
                    {"componentName": NAME, "componentVersion": VERSION, "lifecycleState": state}
                ]
            },
            {"coreDeviceThingName": thing, "topologyFilter": "ROOT"},
        )
    with stub:
        rows = status(clients, group, NAME)
    assert [(r["thing"], r["execution"], r["components"][0]["state"]) for r in rows] == [
        ("pi-1", "SUCCEEDED", "RUNNING"),
        ("pi-2", "FAILED", "BROKEN"),
    ]
    assert status_failed(rows) and not status_failed(rows[:1])
