"""What the CLI does on AWS: plan, deploy, status, scale, delete, through CloudFormation change sets.

CloudFormation owns the endpoint's lifecycle (change sets, rollback, drift detection, deletion); this module only
prepares what it needs (packages in S3), drives it and reports. Every wait is a bounded poll with progress output.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from provisioning.deployment import SCALABLE_DIMENSION, ComponentTarget, Deployment
from provisioning.errors import ProvisioningError, explain_reason
from provisioning.lint import lint_template
from provisioning.packaging import ModelPackage
from provisioning.prices import cost_lines
from provisioning.render import build_packages, render_template, to_yaml

_NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
_CANCELLED = "cancelled"  # resources CloudFormation stopped because another one failed
_MAX_EVENTS_SHOWN = 5
_DELETE_BATCH = 1000  # S3 DeleteObjects limit
# template.yaml's parameters that hold SSM parameter names, per component
_APP_COMPONENT_PARAMETERS = {"chat": "ChatComponentName", "summarizer": "SummarizerComponentName"}


@dataclass(frozen=True)
class AwsClients:
    cloudformation: Any
    sagemaker: Any
    autoscaling: Any
    s3: Any
    ssm: Any
    sts: Any

    @classmethod
    def for_region(cls, region: str, profile: str | None = None) -> AwsClients:
        session = boto3.Session(region_name=region, profile_name=profile)
        config = Config(retries={"mode": "standard", "max_attempts": 5})
        return cls(
            *(
                session.client(name, config=config)
                for name in ("cloudformation", "sagemaker", "application-autoscaling", "s3", "ssm", "sts")
            )
        )


@dataclass(frozen=True)
class Polling:
    """How long and how often to wait; tests pass a fake sleep and clock."""

    stack_interval_s: float = 15
    stack_timeout_s: float = 3 * 3600  # a GPU endpoint with two components can take most of an hour
    change_set_interval_s: float = 3
    change_set_timeout_s: float = 600
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


@dataclass
class Provisioner:
    deployment: Deployment
    clients: AwsClients
    out: Callable[[str], None] = print
    polling: Polling = field(default_factory=Polling)
    _seen_failures: list[dict[str, Any]] = field(default_factory=list, init=False)

    @property
    def _stack_name(self) -> str:
        return self.deployment.stack_name

    # ---- commands -------------------------------------------------------------------------------------------

    def plan(self) -> int:
        packages, template, template_yaml = self._render_and_lint()
        stack = self._describe_stack()
        self._refuse_busy(stack)
        if stack and stack["StackStatus"] == "ROLLBACK_COMPLETE":
            self.out(f"{self._stack_name}: an earlier create failed and left it empty; deploy deletes it, then:")
            self._print_changes([_addition(name, resource["Type"]) for name, resource in template["Resources"].items()])
        else:
            change_set_type = _change_set_type(stack)
            change_set = self._create_change_set(template_yaml, change_set_type, "plan")
            if change_set is None:
                self.out(f"no changes: {self._stack_name} already matches the configuration")
            else:
                self._print_changes(change_set["Changes"])
                self._discard_change_set(change_set["ChangeSetName"], created_stack=change_set_type == "CREATE")
            if change_set_type == "UPDATE":  # a change set cannot show what was changed outside CloudFormation
                registered = self._registered_bounds()
                for target in self.deployment.components.values():
                    drift = _scaling_drift(target, registered.get(target.resource_id))
                    if drift:
                        self.out(drift)
        for package in packages.values():
            self.out(f"package {package.component}: {package.key(self.deployment.package_prefix)}")
        scaling = self.deployment.config.endpoint.scaling
        for line in cost_lines(
            self.deployment.config.endpoint.instance_type,
            scaling.min_instances,
            max(1, scaling.min_instances),
            scaling.max_instances,
        ):
            self.out(line)
        return 0

    def deploy(self) -> int:
        packages, _, template_yaml = self._render_and_lint()
        stack = self._describe_stack()
        self._refuse_busy(stack)
        if packages:
            self._upload_packages(packages)
        if stack and stack["StackStatus"] == "ROLLBACK_COMPLETE":
            self.out(f"{self._stack_name}: an earlier create failed and left it empty; deleting it first")
            self._delete_stack_and_wait(stack)
            stack = None
        change_set_type = _change_set_type(stack)
        change_set = self._create_change_set(template_yaml, change_set_type, "deploy")
        if change_set is None:
            self.out(f"no changes: {self._stack_name} already matches the configuration")
            return 0
        self._print_changes(change_set["Changes"])
        last_event_id = self._latest_event_id() if change_set_type == "UPDATE" else None
        self.clients.cloudformation.execute_change_set(
            ChangeSetName=change_set["ChangeSetName"], StackName=self._stack_name
        )
        self.out(f"executing {change_set['ChangeSetName']} on {self._stack_name} (GPU endpoints take 10-40 minutes)")
        final = self._wait_for_stack(last_event_id)
        if final is None:
            raise ProvisioningError(f"{self._stack_name} disappeared while deploying; run `status`")
        if final["StackStatus"] not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
            raise ProvisioningError(self._failure_summary(final, "deploy"))
        self.out(f"{self._stack_name}: {final['StackStatus']}")
        for output in final.get("Outputs", []):
            self.out(f"  {output['OutputKey']}: {output['OutputValue']}")
        self.out(f"next, the app: sam deploy --parameter-overrides {app_parameter_overrides(self.deployment)}")
        return 0

    def package(self) -> str:
        """Upload the packages and return the template that refers to them, for `sam deploy` in a pipeline."""
        packages, _, template_yaml = self._render_and_lint()
        if packages:
            self._upload_packages(packages)
        return template_yaml

    def status(self) -> int:
        stack = self._describe_stack()
        if stack is None:
            self.out(f"{self._stack_name}: not deployed in {self.deployment.region}")
            return 0
        reason = f" ({stack['StackStatusReason']})" if stack.get("StackStatusReason") else ""
        self.out(f"stack {self._stack_name}: {stack['StackStatus']}{reason}")
        self._print_endpoint_status()
        self._print_component_status()
        self._print_ssm_status()
        failures = [event for event in self._recent_events() if event["ResourceStatus"].endswith("_FAILED")]
        for event in failures[:_MAX_EVENTS_SHOWN]:
            self.out(f"  recent failure: {self._describe_event(event)}")
        return 0

    def scale(self, component: str, copies: int | None) -> int:
        """Pin a component's copy count (`copies`) or hand it back to autoscaling (`None`), through its scalable
        target: Application Auto Scaling moves the copies into the new bounds and nothing fights over them."""
        target = self.deployment.component(component)
        bounds = target.settings.autoscaling
        if copies is not None and not bounds.min_copies <= copies <= bounds.max_copies:
            raise ProvisioningError(
                f"{copies} copies is outside components.{component}.autoscaling bounds "
                f"{bounds.min_copies}..{bounds.max_copies}; change the bounds in the config and deploy"
            )
        registered = self.clients.autoscaling.describe_scalable_targets(
            ServiceNamespace="sagemaker", ResourceIds=[target.resource_id], ScalableDimension=SCALABLE_DIMENSION
        )["ScalableTargets"]
        if not registered:
            raise ProvisioningError(f"{target.component_name} has no scalable target: deploy the endpoint stack first")
        described = self.clients.sagemaker.describe_inference_component(InferenceComponentName=target.component_name)
        runtime = described.get("RuntimeConfig")
        if runtime is None:  # no copies until it is first InService: nothing for autoscaling to move yet
            raise ProvisioningError(_without_copies(described))
        low, high = (copies, copies) if copies is not None else (bounds.min_copies, bounds.max_copies)
        self.clients.autoscaling.register_scalable_target(
            ServiceNamespace="sagemaker",
            ResourceId=target.resource_id,
            ScalableDimension=SCALABLE_DIMENSION,
            MinCapacity=low,
            MaxCapacity=high,
        )
        now = f"now {runtime['CurrentCopyCount']} current / {runtime['DesiredCopyCount']} desired"
        if copies is None:
            self.out(f"{target.component_name}: autoscaling between {low} and {high} copies again ({now})")
        else:
            self.out(
                f"{target.component_name}: pinned to {copies} copies ({now}); "
                f"`scale {component} auto` hands it back to autoscaling"
            )
        return 0

    def delete(self) -> int:
        stack = self._describe_stack()
        if stack is None:
            self.out(f"{self._stack_name}: already deleted")
        else:
            self._delete_stack_and_wait(stack)
            self.out(f"{self._stack_name}: deleted")
        self._delete_packages()
        return 0

    # ---- rendering and packages -----------------------------------------------------------------------------

    def _render_and_lint(self) -> tuple[dict[str, ModelPackage], dict[str, Any], str]:
        packages = build_packages(self.deployment)
        template = render_template(self.deployment, packages)
        template_yaml = to_yaml(template)
        findings = lint_template(template_yaml, self.deployment.region)
        for finding in findings:
            self.out(f"cfn-lint: {finding}")
        errors = [finding for finding in findings if finding.is_error]
        if errors:
            raise ProvisioningError(f"the rendered template fails cfn-lint ({len(errors)} error(s), listed above)")
        return packages, template, template_yaml

    def _account_bucket(self) -> str:
        account = self.clients.sts.get_caller_identity()["Account"]
        return self.deployment.package_bucket(account)

    def _upload_packages(self, packages: dict[str, ModelPackage]) -> None:
        bucket = self._account_bucket()
        self._ensure_bucket(bucket)
        for package in packages.values():
            key = package.key(self.deployment.package_prefix)
            if self._object_exists(bucket, key):
                self.out(f"package {package.component}: s3://{bucket}/{key} (unchanged)")
                continue
            self.clients.s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=package.archive,
                ContentType="application/gzip",
                ChecksumAlgorithm="SHA256",
                Metadata={"sha256": package.sha256},
            )
            self.out(f"package {package.component}: uploaded s3://{bucket}/{key}")

    def _ensure_bucket(self, bucket: str) -> None:
        try:
            self.clients.s3.head_bucket(Bucket=bucket)
            return
        except ClientError as error:
            if _error_code(error) not in ("404", "NoSuchBucket", "NotFound"):
                raise
        location = {} if self.deployment.region == "us-east-1" else {"LocationConstraint": self.deployment.region}
        self.clients.s3.create_bucket(Bucket=bucket, **({"CreateBucketConfiguration": location} if location else {}))
        self.clients.s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        self.out(f"created bucket s3://{bucket} for model packages")

    def _object_exists(self, bucket: str, key: str) -> bool:
        try:
            self.clients.s3.head_object(Bucket=bucket, Key=key)
            return True
        except ClientError as error:
            if _error_code(error) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def _delete_packages(self) -> None:
        bucket = self._account_bucket()
        prefix = self.deployment.package_prefix
        deleted = 0
        try:
            while True:  # each pass deletes what it lists, so the listing shrinks to nothing
                listing = self.clients.s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=_DELETE_BATCH)
                keys = [{"Key": item["Key"]} for item in listing.get("Contents", [])]
                if not keys:
                    break
                self.clients.s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
                deleted += len(keys)
        except ClientError as error:
            if _error_code(error) != "NoSuchBucket":
                raise
        self.out(f"packages: deleted {deleted} object(s) under s3://{bucket}/{prefix} (the bucket stays)")

    # ---- change sets ----------------------------------------------------------------------------------------

    def _create_change_set(self, template_yaml: str, change_set_type: str, purpose: str) -> dict[str, Any] | None:
        """The change set, described; None when the stack already matches the template."""
        cloudformation = self.clients.cloudformation
        name = f"{purpose}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
        cloudformation.create_change_set(
            StackName=self._stack_name,
            ChangeSetName=name,
            ChangeSetType=change_set_type,
            TemplateBody=template_yaml,
            Capabilities=["CAPABILITY_IAM"],
            Tags=[
                {"Key": "project", "Value": self.deployment.config.endpoint.name},
                {"Key": "stage", "Value": self.deployment.stage},
            ],
            Description=f"python -m provisioning {purpose}",
        )
        deadline = self.polling.clock() + self.polling.change_set_timeout_s
        while True:
            described = cloudformation.describe_change_set(ChangeSetName=name, StackName=self._stack_name)
            if described["Status"] == "CREATE_COMPLETE":
                return described
            if described["Status"] == "FAILED":
                reason = described.get("StatusReason", "")
                self._discard_change_set(name, created_stack=change_set_type == "CREATE")
                if any(marker in reason for marker in _NO_CHANGES):
                    return None
                raise ProvisioningError(f"change set failed: {explain_reason(reason, self.deployment.region)}")
            if self.polling.clock() > deadline:
                raise ProvisioningError(
                    f"change set {name} still {described['Status']}; see the CloudFormation console"
                )
            self.polling.sleep(self.polling.change_set_interval_s)

    def _discard_change_set(self, name: str, *, created_stack: bool) -> None:
        self.clients.cloudformation.delete_change_set(ChangeSetName=name, StackName=self._stack_name)
        if created_stack:  # a CREATE change set leaves an empty REVIEW_IN_PROGRESS stack behind
            self.clients.cloudformation.delete_stack(StackName=self._stack_name)

    def _print_changes(self, changes: list[dict[str, Any]]) -> None:
        self.out(f"{len(changes)} change(s) to {self._stack_name}:")
        for change in changes:
            resource = change["ResourceChange"]
            replacement = resource.get("Replacement")
            note = (
                " (replaces it)"
                if replacement == "True"
                else " (may replace it)"
                if replacement == "Conditional"
                else ""
            )
            self.out(f"  {resource['Action']:<6} {resource['LogicalResourceId']} {resource['ResourceType']}{note}")

    # ---- stack state ----------------------------------------------------------------------------------------

    def _describe_stack(self) -> dict[str, Any] | None:
        try:
            return self.clients.cloudformation.describe_stacks(StackName=self._stack_name)["Stacks"][0]
        except ClientError as error:
            if _error_code(error) == "ValidationError" and "does not exist" in str(error):
                return None
            raise

    def _refuse_busy(self, stack: dict[str, Any] | None) -> None:
        if stack and stack["StackStatus"].endswith("_IN_PROGRESS") and stack["StackStatus"] != "REVIEW_IN_PROGRESS":
            raise ProvisioningError(
                f"{self._stack_name} is busy ({stack['StackStatus']}); wait until it settles (`status`), then retry"
            )

    def _recent_events(self) -> list[dict[str, Any]]:
        return self.clients.cloudformation.describe_stack_events(StackName=self._stack_name)["StackEvents"]

    def _latest_event_id(self) -> str | None:
        events = self._recent_events()
        return events[0]["EventId"] if events else None

    def _wait_for_stack(self, last_event_id: str | None) -> dict[str, Any] | None:
        """Poll until the stack settles, printing each new event; the final description, or None once it is gone."""
        deadline = self.polling.clock() + self.polling.stack_timeout_s
        self._seen_failures = []
        while True:
            stack = self._describe_stack()
            if stack is None:
                return None
            new_events = []
            for event in self._recent_events():  # newest first
                if event["EventId"] == last_event_id:
                    break
                new_events.append(event)
            if new_events:
                last_event_id = new_events[0]["EventId"]
            for event in reversed(new_events):
                self.out(f"  {self._describe_event(event)}")
                if event["ResourceStatus"].endswith("_FAILED"):
                    self._seen_failures.append(event)
            if not stack["StackStatus"].endswith("_IN_PROGRESS"):
                return stack
            if self.polling.clock() > deadline:
                raise ProvisioningError(f"{self._stack_name} still {stack['StackStatus']}; keep watching with `status`")
            self.polling.sleep(self.polling.stack_interval_s)

    def _delete_stack_and_wait(self, stack: dict[str, Any]) -> None:
        last_event_id = self._latest_event_id()
        if stack["StackStatus"] != "DELETE_IN_PROGRESS":  # a delete already running is simply waited for
            self.clients.cloudformation.delete_stack(StackName=self._stack_name)
        final = self._wait_for_stack(last_event_id)
        if final is not None and final["StackStatus"] != "DELETE_COMPLETE":
            raise ProvisioningError(self._failure_summary(final, "delete") + "; fix that, then re-run delete")

    def _failure_summary(self, stack: dict[str, Any], what: str) -> str:
        causes = [event for event in self._seen_failures if _CANCELLED not in event.get("ResourceStatusReason", "")]
        if causes:
            first = causes[0]
            reason = explain_reason(first.get("ResourceStatusReason", "no reason given"), self.deployment.region)
            resource = f"{first['LogicalResourceId']} ({first['ResourceType']})"
            return f"{what} failed ({stack['StackStatus']}): {resource}: {reason}"
        reason = stack.get("StackStatusReason", "no reason given")
        return f"{what} failed ({stack['StackStatus']}): {explain_reason(reason, self.deployment.region)}"

    @staticmethod
    def _describe_event(event: dict[str, Any]) -> str:
        reason = f": {event['ResourceStatusReason']}" if event.get("ResourceStatusReason") else ""
        return f"{event['LogicalResourceId']} ({event['ResourceType']}) {event['ResourceStatus']}{reason}"

    # ---- status parts ---------------------------------------------------------------------------------------

    def _print_endpoint_status(self) -> None:
        try:
            endpoint = self.clients.sagemaker.describe_endpoint(EndpointName=self.deployment.endpoint_name)
        except ClientError as error:
            if _error_code(error) not in ("ValidationException", "ValidationError"):
                raise
            self.out(f"endpoint {self.deployment.endpoint_name}: not found")
            return
        failure = f" ({endpoint['FailureReason']})" if endpoint.get("FailureReason") else ""
        self.out(f"endpoint {self.deployment.endpoint_name}: {endpoint['EndpointStatus']}{failure}")
        for variant in endpoint.get("ProductionVariants", []):
            self.out(
                f"  variant {variant['VariantName']}: {variant.get('CurrentInstanceCount', 0)} instance(s) now, "
                f"{variant.get('DesiredInstanceCount', 0)} desired"
            )

    def _registered_bounds(self) -> dict[str, tuple[int, int]]:
        """Each component's copy-count bounds as Application Auto Scaling has them, by resource id."""
        return {
            registered["ResourceId"]: (registered["MinCapacity"], registered["MaxCapacity"])
            for registered in self.clients.autoscaling.describe_scalable_targets(
                ServiceNamespace="sagemaker",
                ResourceIds=[target.resource_id for target in self.deployment.components.values()],
                ScalableDimension=SCALABLE_DIMENSION,
            )["ScalableTargets"]
        }

    def _print_component_status(self) -> None:
        bounds = self._registered_bounds()
        for target in self.deployment.components.values():
            try:
                component = self.clients.sagemaker.describe_inference_component(
                    InferenceComponentName=target.component_name
                )
            except ClientError as error:
                if _error_code(error) not in ("ValidationException", "ValidationError"):
                    raise
                self.out(f"component {target.component_name}: not found")
                continue
            runtime = component.get("RuntimeConfig", {})
            low, high = bounds.get(target.resource_id, ("?", "?"))
            failure = f" ({component['FailureReason']})" if component.get("FailureReason") else ""
            self.out(
                f"component {target.component_name}: {component.get('InferenceComponentStatus', '?')}{failure}, "
                f"copies {runtime.get('CurrentCopyCount', '?')} current / {runtime.get('DesiredCopyCount', '?')} "
                f"desired, autoscaling {low}..{high}"
            )
            drift = _scaling_drift(target, bounds.get(target.resource_id))
            if drift:
                self.out(f"  {drift}")

    def _print_ssm_status(self) -> None:
        expected = {self.deployment.endpoint_ssm_parameter: self.deployment.endpoint_name} | {
            target.ssm_parameter: target.component_name for target in self.deployment.components.values()
        }
        found = {
            parameter["Name"]: parameter["Value"]
            for parameter in self.clients.ssm.get_parameters(Names=list(expected))["Parameters"]
        }
        for name, value in expected.items():
            state = "ok" if found.get(name) == value else f"MISSING or stale ({found.get(name)!r})"
            self.out(f"ssm {name} = {value}: {state}")


def app_parameter_overrides(deployment: Deployment) -> str:
    """`sam deploy` overrides that point the app at this stage's SSM parameters (its defaults name the dev stage)."""
    overrides = [f"Stage={deployment.stage}", f"EndpointName={deployment.endpoint_ssm_parameter}"]
    for key, parameter in _APP_COMPONENT_PARAMETERS.items():
        if key in deployment.components:
            overrides.append(f"{parameter}={deployment.components[key].ssm_parameter}")
    return " ".join(overrides)


def _change_set_type(stack: dict[str, Any] | None) -> str:
    """CREATE for a new stack, and for the empty one a CREATE change set leaves until it is executed or deleted."""
    return "CREATE" if stack is None or stack["StackStatus"] == "REVIEW_IN_PROGRESS" else "UPDATE"


def _scaling_drift(target: ComponentTarget, registered: tuple[int, int] | None) -> str | None:
    """`scale` registers bounds with Application Auto Scaling directly: no change set shows them, and a deploy that
    leaves the scalable target's properties alone keeps them."""
    configured = target.settings.autoscaling
    if registered is None or registered == (configured.min_copies, configured.max_copies):
        return None
    low, high = registered
    what = f"is pinned to {low} copies by `scale`" if low == high else f"autoscales within {low}..{high}, set"
    return (
        f"drift: {target.component_name} {what} outside CloudFormation (config: "
        f"{configured.min_copies}..{configured.max_copies}); `scale {target.key} auto` restores the config's bounds"
    )


def _without_copies(component: dict[str, Any]) -> str:
    """Why `scale` has nothing to scale: the component is still being created, or its creation failed."""
    name = component["InferenceComponentName"]
    status = component.get("InferenceComponentStatus", "not ready")
    if status == "Failed":
        reason = f" ({component['FailureReason']})" if component.get("FailureReason") else ""
        return f"component {name} is Failed{reason}: it has no copies to scale; fix the cause (`status`) and deploy"
    return f"component {name} is {status}: it has no copies yet; try again when it is InService (`status`)"


def _addition(logical_id: str, resource_type: str) -> dict[str, Any]:
    return {"ResourceChange": {"Action": "Add", "LogicalResourceId": logical_id, "ResourceType": resource_type}}


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
