"""What publish and deploy share: boto3 clients from the standard chain, AWS errors turned into
messages that name the problem and the fix, and a record of every call for --dry-run.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from edge_agent.errors import BadInputError, CheckFailedError, EdgekitError

DENIED = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "Forbidden",
    "403",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "UnrecognizedClientException",
}
NOT_FOUND = {"ResourceNotFoundException", "NoSuchBucket", "404", "NotFound"}


class AwsError(CheckFailedError):
    """AWS answered, and the answer was a failure (exit 1); `code` is AWS's error code."""

    def __init__(self, message: str, hint: str | None = None, code: str = "") -> None:
        super().__init__(message, hint)
        self.code = code

    @property
    def not_found(self) -> bool:
        return self.code in NOT_FOUND


@dataclass(frozen=True)
class Call:
    service: str
    operation: str
    params: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"service": self.service, "operation": self.operation, "params": self.params}

    def text(self) -> str:
        return f"{self.service}.{self.operation}({json.dumps(self.params, indent=2, default=str)})"


@dataclass
class Clients:
    """boto3 clients made on first use from one session (credentials and region from the standard
    chain); tests pass their own (moto, botocore Stubber)."""

    region: str | None = None
    profile: str | None = None
    made: dict[str, Any] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    account_id: str | None = None

    def session(self):
        import boto3

        try:
            return boto3.Session(region_name=self.region, profile_name=self.profile)
        except Exception as exc:  # botocore.exceptions.ProfileNotFound and friends
            raise BadInputError(f"cannot make an AWS session: {exc}") from exc

    def resolved_region(self) -> str | None:
        if self.region:
            return self.region
        return self.session().region_name

    def client(self, service: str):
        if service not in self.made:
            session = self.session()
            if session.region_name is None:
                raise BadInputError(
                    "no AWS region configured",
                    hint="pass `region`, or set AWS_REGION / a profile's region",
                )
            try:
                credentials = session.get_credentials()
            except Exception as exc:  # a broken provider in the chain (bad env, bad profile)
                raise BadInputError(f"cannot read AWS credentials: {exc}") from exc
            if credentials is None:
                raise BadInputError(
                    "no AWS credentials found",
                    hint="set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run "
                    "`aws configure` (the standard boto3 chain is used)",
                )
            self.made[service] = session.client(service)
        return self.made[service]

    def account(self) -> str:
        """The caller's account id (asked once)."""
        if self.account_id is None:
            self.account_id = str(self.call("sts", "get_caller_identity")["Account"])
        return self.account_id

    def call(self, service: str, operation: str, **params: Any) -> Any:
        """Run one API call (snake_case operation name) with its errors translated."""
        self.calls.append(Call(service, _pascal(operation), params))
        client = self.client(service)
        with translate(service, _pascal(operation), params):
            return getattr(client, operation)(**params)

    def pages(self, service: str, operation: str, key: str, **params: Any) -> list[Any]:
        self.calls.append(Call(service, _pascal(operation), params))
        client = self.client(service)
        found: list[Any] = []
        with translate(service, _pascal(operation), params):
            for page in client.get_paginator(operation).paginate(**params):
                found.extend(page.get(key, []))
        return found


def _pascal(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def translate(service: str, operation: str, params: dict[str, Any]) -> Iterator[None]:
    """botocore exceptions -> EdgekitError naming the call, the resource and what to do."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    resource = _resource(params)
    try:
        yield
    except EdgekitError:
        raise
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise BadInputError(
            f"no usable AWS credentials for {service}:{operation}: {exc}",
            hint="set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run `aws configure`",
        ) from exc
    except NoRegionError as exc:
        raise BadInputError("no AWS region configured", hint="pass `region`") from exc
    except EndpointConnectionError as exc:
        raise AwsError(
            f"cannot reach the AWS {service} endpoint: {exc}",
            hint="check the network and the region",
        ) from exc
    except ClientError as exc:
        code = error_code(exc)
        message = exc.response.get("Error", {}).get("Message") or str(exc)
        if code in DENIED:
            raise BadInputError(
                f"access denied: {service}:{operation} on {resource} ({code}: {message})",
                hint=f"grant the calling identity {_permission(service, operation)} on {resource}",
            ) from exc
        if service == "s3" and code in ("NoSuchBucket", "404", "NotFound") and "Key" not in params:
            raise BadInputError(
                f"S3 bucket {params.get('Bucket')!r} does not exist (or is in another account)",
                hint=f"create it first: aws s3 mb s3://{params.get('Bucket')}",
            ) from exc
        raise AwsError(
            f"{service}:{operation} on {resource} failed: {code}: {message}", code=code
        ) from exc


def _resource(params: dict[str, Any]) -> str:
    for key in ("arn", "targetArn", "Bucket", "thingGroupName", "thingName", "coreDeviceThingName"):
        if key in params:
            value = params[key]
            return (
                f"s3://{value}/{params['Key']}"
                if key == "Bucket" and "Key" in params
                else str(value)
            )
    return "(account)"


def _permission(service: str, operation: str) -> str:
    prefix = {"greengrassv2": "greengrass", "sts": "sts", "s3": "s3", "iot": "iot"}.get(
        service, service
    )
    op = {"HeadBucket": "ListBucket", "PutObject": "PutObject"}.get(operation, operation)
    return f"{prefix}:{op}"


def component_arn(region: str, account: str, name: str, version: str) -> str:
    return f"arn:aws:greengrass:{region}:{account}:components:{name}:versions:{version}"


def describe_version(
    clients: Clients, name: str, version: str
) -> tuple[str, str, dict[str, Any] | None]:
    """(region, arn, DescribeComponent's answer or None when that version does not exist) for
    a component version in the caller's account."""
    region = clients.client("greengrassv2").meta.region_name
    arn = component_arn(region, clients.account(), name, version)
    try:
        return region, arn, clients.call("greengrassv2", "describe_component", arn=arn)
    except AwsError as exc:
        if not exc.not_found:
            raise
        return region, arn, None
