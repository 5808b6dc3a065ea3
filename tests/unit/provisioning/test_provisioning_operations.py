"""The CLI's AWS call sequences, with botocore Stubber (which checks every request against the service model)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from provisioning import operations
from provisioning.cli import main
from provisioning.lint import lint_template
from provisioning.operations import AwsClients, Polling
from provisioning.permissions import CLI_CALLS

REGION = "us-east-1"
ACCOUNT = "123456789012"
STACK = "genai-chatbot-endpoint-dev"
STACK_ID = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK}/1"
BUCKET = f"genai-chatbot-packages-{ACCOUNT}-{REGION}"
NOW = datetime(2026, 11, 25, tzinfo=UTC)
CHAT = "genai-chatbot-dev-chat"
SUMMARIZER = "genai-chatbot-dev-summarizer"
RESOURCE_IDS = [f"inference-component/{CHAT}", f"inference-component/{SUMMARIZER}"]
CONFIGURED_BOUNDS = {RESOURCE_IDS[0]: (1, 3), RESOURCE_IDS[1]: (1, 2)}  # endpoint.yaml's autoscaling bounds
NO_CHANGES = "The submitted information didn't contain changes. Submit different information to create a change set."
QUOTA_REASON = (
    "Resource handler returned message: \"The account-level service limit 'ml.g5.12xlarge for endpoint usage' is "
    "0 Instances, with current utilization of 0 Instances and a request delta of 1 Instances. Please use AWS "
    'Service Quotas to request an increase for this quota."'
)


class FakeTime:
    """Sleep advances the clock instead of waiting."""

    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


class StubbedAws:
    def __init__(self):
        session = boto3.Session(aws_access_key_id="x", aws_secret_access_key="y", region_name=REGION)
        self.clients = AwsClients(
            *(
                session.client(name)
                for name in ("cloudformation", "sagemaker", "application-autoscaling", "s3", "ssm", "sts")
            )
        )
        self.cf, self.sm, self.aas, self.s3, self.ssm, self.sts = (
            Stubber(client) for client in vars(self.clients).values()
        )
        for stubber in self.stubbers:
            stubber.activate()
        self.calls: set[tuple[str, str]] = set()  # (service, operation) of every request the CLI made
        for client in vars(self.clients).values():
            client.meta.events.register("before-parameter-build", self._record)

    def _record(self, model, **_) -> None:
        self.calls.add((model.service_model.service_name, model.name))

    @property
    def stubbers(self) -> list[Stubber]:
        return [self.cf, self.sm, self.aas, self.s3, self.ssm, self.sts]

    def assert_done(self) -> None:
        for stubber in self.stubbers:
            stubber.assert_no_pending_responses()

    # ---- CloudFormation ----

    def stack_missing(self) -> None:
        self.cf.add_client_error(
            "describe_stacks",
            service_error_code="ValidationError",
            service_message=f"Stack with id {STACK} does not exist",
            http_status_code=400,
            expected_params={"StackName": STACK},
        )

    def stack(self, status: str, outputs: dict[str, str] | None = None, reason: str | None = None) -> None:
        stack: dict[str, Any] = {"StackName": STACK, "StackId": STACK_ID, "CreationTime": NOW, "StackStatus": status}
        if outputs:
            stack["Outputs"] = [{"OutputKey": key, "OutputValue": value} for key, value in outputs.items()]
        if reason:
            stack["StackStatusReason"] = reason
        self.cf.add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": STACK})

    def events(self, *events: dict[str, Any]) -> None:
        """Events newest first, as DescribeStackEvents returns them."""
        self.cf.add_response("describe_stack_events", {"StackEvents": list(events)}, {"StackName": STACK})

    def change_set(self, change_set_type: str, status: str, changes=(), reason: str | None = None) -> None:
        self.cf.add_response(
            "create_change_set",
            {"Id": f"{STACK_ID}/changeset", "StackId": STACK_ID},
            {
                "StackName": STACK,
                "ChangeSetName": ANY,
                "ChangeSetType": change_set_type,
                "TemplateBody": ANY,
                "Capabilities": ["CAPABILITY_IAM"],
                "Tags": [{"Key": "project", "Value": "genai-chatbot"}, {"Key": "stage", "Value": "dev"}],
                "Description": ANY,
            },
        )
        described: dict[str, Any] = {
            "ChangeSetName": "cs",
            "StackName": STACK,
            "Status": status,
            "Changes": list(changes),
        }
        if reason:
            described["StatusReason"] = reason
        self.cf.add_response("describe_change_set", described, {"ChangeSetName": ANY, "StackName": STACK})

    def discard_change_set(self, *, with_stack: bool) -> None:
        self.cf.add_response("delete_change_set", {}, {"ChangeSetName": ANY, "StackName": STACK})
        if with_stack:
            self.cf.add_response("delete_stack", {}, {"StackName": STACK})

    def execute(self) -> None:
        self.cf.add_response("execute_change_set", {}, {"ChangeSetName": "cs", "StackName": STACK})

    # ---- S3 / STS ----

    def account(self) -> None:
        self.sts.add_response(
            "get_caller_identity", {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/dev", "UserId": "AID"}, {}
        )

    def bucket_exists(self, exists: bool) -> None:
        if exists:
            self.s3.add_response("head_bucket", {}, {"Bucket": BUCKET})
            return
        self.s3.add_client_error("head_bucket", service_error_code="404", http_status_code=404)
        self.s3.add_response("create_bucket", {"Location": f"/{BUCKET}"}, {"Bucket": BUCKET})
        self.s3.add_response("put_public_access_block", {}, {"Bucket": BUCKET, "PublicAccessBlockConfiguration": ANY})

    def package_exists(self, exists: bool) -> None:
        if exists:
            self.s3.add_response("head_object", {"ContentLength": 1}, {"Bucket": BUCKET, "Key": ANY})
            return
        self.s3.add_client_error("head_object", service_error_code="404", http_status_code=404)
        self.s3.add_response(
            "put_object",
            {"ETag": '"etag"'},
            {
                "Bucket": BUCKET,
                "Key": ANY,
                "Body": ANY,
                "ContentType": "application/gzip",
                "ChecksumAlgorithm": "SHA256",
                "Metadata": ANY,
            },
        )

    # ---- SageMaker / autoscaling / SSM ----

    def endpoint(self) -> None:
        self.sm.add_response(
            "describe_endpoint",
            {
                "EndpointName": "genai-chatbot-dev",
                "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/genai-chatbot-dev",
                "EndpointStatus": "InService",
                "CreationTime": NOW,
                "LastModifiedTime": NOW,
                "ProductionVariants": [
                    {"VariantName": "AllTraffic", "CurrentInstanceCount": 1, "DesiredInstanceCount": 2}
                ],
            },
            {"EndpointName": "genai-chatbot-dev"},
        )

    def ssm_parameters(self, found: dict[str, str]) -> None:
        self.ssm.add_response(
            "get_parameters",
            {"Parameters": [{"Name": name, "Type": "String", "Value": value} for name, value in found.items()]},
            {
                "Names": [
                    "/genai-chatbot/dev/endpoint-name",
                    "/genai-chatbot/dev/components/chat",
                    "/genai-chatbot/dev/components/summarizer",
                ]
            },
        )

    def component(
        self, name: str, current: int | None, desired: int | None, status: str = "InService", reason: str = ""
    ) -> None:
        """A DescribeInferenceComponent answer; without copy counts it has no RuntimeConfig, as before InService."""
        described: dict[str, Any] = {
            "InferenceComponentName": name,
            "InferenceComponentArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:inference-component/{name}",
            "EndpointName": "genai-chatbot-dev",
            "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/genai-chatbot-dev",
            "CreationTime": NOW,
            "LastModifiedTime": NOW,
            "InferenceComponentStatus": status,
        }
        if current is not None and desired is not None:
            described["RuntimeConfig"] = {"CurrentCopyCount": current, "DesiredCopyCount": desired}
        if reason:
            described["FailureReason"] = reason
        self.sm.add_response("describe_inference_component", described, {"InferenceComponentName": name})

    def scalable_targets(self, resource_ids: list[str], bounds: dict[str, tuple[int, int]]) -> None:
        self.aas.add_response(
            "describe_scalable_targets",
            {
                "ScalableTargets": [
                    {
                        "ServiceNamespace": "sagemaker",
                        "ResourceId": resource_id,
                        "ScalableDimension": "sagemaker:inference-component:DesiredCopyCount",
                        "MinCapacity": low,
                        "MaxCapacity": high,
                        "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/autoscaling",
                        "CreationTime": NOW,
                    }
                    for resource_id, (low, high) in bounds.items()
                ]
            },
            {
                "ServiceNamespace": "sagemaker",
                "ResourceIds": resource_ids,
                "ScalableDimension": "sagemaker:inference-component:DesiredCopyCount",
            },
        )


def event(event_id: str, logical_id: str, resource_type: str, status: str, reason: str | None = None) -> dict:
    record = {
        "StackId": STACK_ID,
        "EventId": event_id,
        "StackName": STACK,
        "LogicalResourceId": logical_id,
        "ResourceType": resource_type,
        "Timestamp": NOW,
        "ResourceStatus": status,
    }
    if reason:
        record["ResourceStatusReason"] = reason
    return record


def change(action: str, logical_id: str, resource_type: str, replacement: str | None = None) -> dict:
    resource = {"Action": action, "LogicalResourceId": logical_id, "ResourceType": resource_type}
    if replacement:
        resource["Replacement"] = replacement
    return {"Type": "Resource", "ResourceChange": resource}


@functools.cache
def _lint_once(template_yaml: str, region: str):
    return lint_template(template_yaml, region)


@pytest.fixture(autouse=True)
def lint_each_template_once(monkeypatch):
    """The real cfn-lint, remembered per template: every test here renders the same one, and linting takes ~1 s."""
    monkeypatch.setattr(operations, "lint_template", _lint_once)


@pytest.fixture
def aws() -> StubbedAws:
    return StubbedAws()


@pytest.fixture(autouse=True)
def every_call_is_in_the_policy(aws):
    """The policy `permissions` prints covers every AWS call the CLI made in the test (see permissions.CLI_CALLS)."""
    yield
    assert aws.calls - CLI_CALLS.keys() == set(), "add these calls and their IAM actions to permissions.CLI_CALLS"


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def run(aws, fake_time):
    """Run the CLI against the stubbed clients; returns (exit code, printed lines)."""

    def invoke(*args: str) -> tuple[int, list[str]]:
        lines: list[str] = []
        polling = Polling(sleep=fake_time.sleep, clock=fake_time.clock, stack_timeout_s=3600)
        code = main(
            [*args, "--stage", "dev", "--region", REGION], lambda region, profile: aws.clients, lines.append, polling
        )
        return code, lines

    return invoke


def test_fresh_deploy_uploads_creates_and_waits(aws, run, fake_time):
    # Given no stack and no bucket yet
    aws.stack_missing()
    aws.account()
    aws.bucket_exists(False)
    aws.package_exists(False)
    aws.change_set("CREATE", "CREATE_COMPLETE", [change("Add", "Endpoint", "AWS::SageMaker::Endpoint")])
    aws.execute()
    aws.stack("CREATE_IN_PROGRESS")
    aws.events(event("e1", "Endpoint", "AWS::SageMaker::Endpoint", "CREATE_IN_PROGRESS"))
    aws.stack("CREATE_COMPLETE", outputs={"EndpointName": "genai-chatbot-dev"})
    aws.events(
        event("e2", STACK, "AWS::CloudFormation::Stack", "CREATE_COMPLETE"),
        event("e1", "Endpoint", "AWS::SageMaker::Endpoint", "CREATE_IN_PROGRESS"),
    )
    # When deploy runs
    code, lines = run("deploy")
    # Then it uploads the package, executes the change set, shows each event once and reports the outputs
    assert code == 0
    aws.assert_done()
    text = "\n".join(lines)
    assert f"created bucket s3://{BUCKET}" in text
    assert f"uploaded s3://{BUCKET}/endpoint-packages/dev/chat-" in text
    assert "Add    Endpoint AWS::SageMaker::Endpoint" in text
    assert sum("Endpoint (AWS::SageMaker::Endpoint) CREATE_IN_PROGRESS" in line for line in lines) == 1
    assert f"{STACK}: CREATE_COMPLETE" in text
    assert "EndpointName: genai-chatbot-dev" in text
    assert lines[-1] == (
        "next, the app: sam deploy --parameter-overrides Stage=dev EndpointName=/genai-chatbot/dev/endpoint-name "
        "ChatComponentName=/genai-chatbot/dev/components/chat "
        "SummarizerComponentName=/genai-chatbot/dev/components/summarizer"
    )
    assert fake_time.sleeps == [15]


def test_rerun_with_same_config_changes_nothing(aws, run):
    # Given a deployed stack and its package already in S3
    aws.stack("CREATE_COMPLETE")
    aws.account()
    aws.bucket_exists(True)
    aws.package_exists(True)
    aws.change_set("UPDATE", "FAILED", reason=NO_CHANGES)
    aws.discard_change_set(with_stack=False)
    # When deploy runs again
    code, lines = run("deploy")
    # Then nothing is uploaded or executed and it says so
    assert code == 0
    aws.assert_done()
    assert f"no changes: {STACK} already matches the configuration" in lines
    assert not any("uploaded" in line for line in lines)


def test_update_shows_replacements_and_only_new_events(aws, run):
    # Given a deployed stack whose config changed
    old = event("e0", STACK, "AWS::CloudFormation::Stack", "CREATE_COMPLETE")
    aws.stack("CREATE_COMPLETE")
    aws.account()
    aws.bucket_exists(True)
    aws.package_exists(False)
    aws.change_set(
        "UPDATE",
        "CREATE_COMPLETE",
        [
            change("Modify", "ChatModel", "AWS::SageMaker::Model", "True"),
            change("Modify", "ChatInferenceComponent", "AWS::SageMaker::InferenceComponent", "False"),
        ],
    )
    aws.events(old)
    aws.execute()
    aws.stack("UPDATE_COMPLETE")
    aws.events(event("e1", "ChatInferenceComponent", "AWS::SageMaker::InferenceComponent", "UPDATE_COMPLETE"), old)
    # When deploy runs
    code, lines = run("deploy")
    # Then the plan marks the replaced model, and only events after the update started are shown
    assert code == 0
    aws.assert_done()
    assert "  Modify ChatModel AWS::SageMaker::Model (replaces it)" in lines
    assert "  Modify ChatInferenceComponent AWS::SageMaker::InferenceComponent" in lines
    assert any("ChatInferenceComponent (AWS::SageMaker::InferenceComponent) UPDATE_COMPLETE" in line for line in lines)
    assert not any("CREATE_COMPLETE" in line for line in lines)


def test_failed_change_set_is_discarded_with_its_reason(aws, run, capsys):
    # Given a change set that CloudFormation rejects
    aws.stack("UPDATE_COMPLETE")
    aws.account()
    aws.bucket_exists(True)
    aws.package_exists(True)
    aws.change_set("UPDATE", "FAILED", reason="Parameter validation failed: EndpointName too long")
    aws.discard_change_set(with_stack=False)
    # When deploy runs
    code, _ = run("deploy")
    # Then it exits 1 with the reason on one line, and the change set is gone
    assert code == 1
    aws.assert_done()
    assert capsys.readouterr().err == "error: change set failed: Parameter validation failed: EndpointName too long\n"


def test_failed_create_rolls_back_and_names_the_quota(aws, run, capsys):
    # Given a fresh create in which the endpoint hits the instance quota
    aws.stack_missing()
    aws.account()
    aws.bucket_exists(True)
    aws.package_exists(True)
    aws.change_set("CREATE", "CREATE_COMPLETE", [change("Add", "Endpoint", "AWS::SageMaker::Endpoint")])
    aws.execute()
    aws.stack("ROLLBACK_COMPLETE", reason="The following resource(s) failed to create: [Endpoint].")
    aws.events(
        event("e3", STACK, "AWS::CloudFormation::Stack", "ROLLBACK_COMPLETE"),
        event("e2", "ChatModel", "AWS::SageMaker::Model", "CREATE_FAILED", "Resource creation cancelled"),
        event("e1", "Endpoint", "AWS::SageMaker::Endpoint", "CREATE_FAILED", QUOTA_REASON),
    )
    # When deploy runs
    code, _ = run("deploy")
    # Then the error line names the failed resource and the quota to raise (not the cancelled one)
    assert code == 1
    aws.assert_done()
    error = capsys.readouterr().err
    assert error.startswith("error: deploy failed (ROLLBACK_COMPLETE): Endpoint (AWS::SageMaker::Endpoint): quota: ")
    assert "raise the SageMaker quota 'ml.g5.12xlarge for endpoint usage' in us-east-1" in error
    assert error.count("\n") == 1


def test_deploy_after_a_failed_create_replaces_the_empty_stack(aws, run):
    # Given a stack left in ROLLBACK_COMPLETE by an earlier failed create
    aws.stack("ROLLBACK_COMPLETE")
    aws.account()
    aws.bucket_exists(True)
    aws.package_exists(True)
    aws.events(event("e0", STACK, "AWS::CloudFormation::Stack", "ROLLBACK_COMPLETE"))
    aws.cf.add_response("delete_stack", {}, {"StackName": STACK})
    aws.stack_missing()
    aws.change_set("CREATE", "CREATE_COMPLETE", [change("Add", "Endpoint", "AWS::SageMaker::Endpoint")])
    aws.execute()
    aws.stack("CREATE_COMPLETE")
    aws.events(event("e1", STACK, "AWS::CloudFormation::Stack", "CREATE_COMPLETE"))
    # When deploy runs
    code, lines = run("deploy")
    # Then it deletes the empty stack first, then creates it anew
    assert code == 0
    aws.assert_done()
    assert any("deleting it first" in line for line in lines)


def test_busy_stack_is_left_alone(aws, run, capsys):
    # Given a stack that is being updated by someone else
    aws.stack("UPDATE_IN_PROGRESS")
    # When deploy runs
    code, _ = run("deploy")
    # Then it stops before uploading or changing anything
    assert code == 1
    aws.assert_done()
    assert "is busy (UPDATE_IN_PROGRESS)" in capsys.readouterr().err


def test_access_denied_names_the_missing_permission(aws, run, capsys):
    # Given a caller that may not create change sets
    aws.stack("CREATE_COMPLETE")
    aws.account()
    aws.bucket_exists(True)
    aws.package_exists(True)
    aws.cf.add_client_error(
        "create_change_set",
        service_error_code="AccessDenied",
        service_message=(
            f"User: arn:aws:iam::{ACCOUNT}:user/dev is not authorized to perform: cloudformation:CreateChangeSet "
            f"on resource: {STACK_ID} because no identity-based policy allows the cloudformation:CreateChangeSet action"
        ),
        http_status_code=403,
    )
    # When deploy runs
    code, _ = run("deploy")
    # Then one line says which principal lacks which action on what
    assert code == 1
    assert capsys.readouterr().err == (
        f"error: permission: arn:aws:iam::{ACCOUNT}:user/dev lacks cloudformation:CreateChangeSet on {STACK_ID}; "
        "add that action to its IAM policy\n"
    )


def test_plan_of_a_new_stack_lists_changes_and_cost_and_leaves_nothing(aws, run):
    # Given no stack
    aws.stack_missing()
    aws.change_set(
        "CREATE",
        "CREATE_COMPLETE",
        [change("Add", "Endpoint", "AWS::SageMaker::Endpoint"), change("Add", "ChatModel", "AWS::SageMaker::Model")],
    )
    aws.discard_change_set(with_stack=True)
    # When plan runs
    code, lines = run("plan")
    # Then it lists the changes and costs, and deletes the change set and the empty stack it made
    assert code == 0
    aws.assert_done()
    text = "\n".join(lines)
    assert "2 change(s) to genai-chatbot-endpoint-dev:" in text
    assert "  Add    ChatModel AWS::SageMaker::Model" in lines
    assert "ml.g5.12xlarge $7.090/h per instance" in text
    assert "  at most    2 instance(s): $14.18/h, $10,351/month" in lines


def test_plan_after_a_failed_create_lists_everything_without_a_change_set(aws, run):
    # Given a stack left empty by a failed create (a change set cannot be made on it)
    aws.stack("ROLLBACK_COMPLETE")
    # When plan runs
    code, lines = run("plan")
    # Then it lists every resource of the template as an addition, and calls nothing else
    assert code == 0
    aws.assert_done()
    assert any("deploy deletes it, then:" in line for line in lines)
    assert "  Add    ChatInferenceComponent AWS::SageMaker::InferenceComponent" in lines
    assert "  Add    SummarizerComponentParameter AWS::SSM::Parameter" in lines


def test_plan_of_an_unchanged_stack(aws, run):
    # Given a deployed stack that matches the config, autoscaling bounds included
    aws.stack("UPDATE_COMPLETE")
    aws.change_set("UPDATE", "FAILED", reason=NO_CHANGES)
    aws.discard_change_set(with_stack=False)
    aws.scalable_targets(RESOURCE_IDS, CONFIGURED_BOUNDS)
    # When plan runs
    code, lines = run("plan")
    # Then it reports no changes and no drift, and still prints the running cost
    assert code == 0
    aws.assert_done()
    assert f"no changes: {STACK} already matches the configuration" in lines
    assert not any("drift" in line for line in lines)
    assert "  idle floor 1 instance(s): $7.09/h, $5,176/month" in lines


def test_plan_shows_a_pin_that_the_change_set_cannot_see(aws, run):
    # Given a stack that matches the config, but chat pinned to 2 copies by `scale`
    aws.stack("UPDATE_COMPLETE")
    aws.change_set("UPDATE", "FAILED", reason=NO_CHANGES)
    aws.discard_change_set(with_stack=False)
    aws.scalable_targets(RESOURCE_IDS, {RESOURCE_IDS[0]: (2, 2), RESOURCE_IDS[1]: (1, 2)})
    # When plan runs
    code, lines = run("plan")
    # Then "no changes" is followed by the pin, which deploying would leave in place
    assert code == 0
    aws.assert_done()
    assert [line for line in lines if "drift" in line] == [
        f"drift: {CHAT} is pinned to 2 copies by `scale` outside CloudFormation (config: 1..3); "
        "`scale chat auto` restores the config's bounds"
    ]


def test_status_reports_stack_endpoint_components_and_ssm(aws, run):
    # Given a deployed stack with a component scaling up and a stale SSM parameter
    aws.stack("UPDATE_COMPLETE")
    aws.endpoint()
    aws.scalable_targets(RESOURCE_IDS, CONFIGURED_BOUNDS)
    aws.component(CHAT, current=1, desired=2, status="Updating")
    aws.component(SUMMARIZER, current=1, desired=1)
    aws.ssm_parameters(
        {"/genai-chatbot/dev/endpoint-name": "genai-chatbot-dev", "/genai-chatbot/dev/components/chat": CHAT}
    )
    aws.events(event("e1", "ChatInferenceComponent", "AWS::SageMaker::InferenceComponent", "UPDATE_FAILED", "boom"))
    # When status runs
    code, lines = run("status")
    # Then each part's state is one line
    assert code == 0
    aws.assert_done()
    assert f"stack {STACK}: UPDATE_COMPLETE" in lines
    assert "endpoint genai-chatbot-dev: InService" in lines
    assert "  variant AllTraffic: 1 instance(s) now, 2 desired" in lines
    assert f"component {CHAT}: Updating, copies 1 current / 2 desired, autoscaling 1..3" in lines
    assert "ssm /genai-chatbot/dev/components/chat = genai-chatbot-dev-chat: ok" in lines
    assert any(line.startswith("ssm /genai-chatbot/dev/components/summarizer") and "MISSING" in line for line in lines)
    assert "  recent failure: ChatInferenceComponent (AWS::SageMaker::InferenceComponent) UPDATE_FAILED: boom" in lines
    assert not any("drift" in line for line in lines)


def test_status_shows_bounds_registered_outside_cloudformation(aws, run):
    # Given chat pinned to 2 copies by `scale`, and the summarizer's bounds changed outside CloudFormation too
    aws.stack("UPDATE_COMPLETE")
    aws.endpoint()
    aws.scalable_targets(RESOURCE_IDS, {RESOURCE_IDS[0]: (2, 2), RESOURCE_IDS[1]: (1, 4)})
    aws.component(CHAT, current=2, desired=2)
    aws.component(SUMMARIZER, current=1, desired=1)
    aws.ssm_parameters({})
    aws.events()
    # When status runs
    code, lines = run("status")
    # Then each component's line is followed by its drift from the config, and how to undo it
    assert code == 0
    aws.assert_done()
    chat = lines.index(f"component {CHAT}: InService, copies 2 current / 2 desired, autoscaling 2..2")
    assert lines[chat + 1] == (
        f"  drift: {CHAT} is pinned to 2 copies by `scale` outside CloudFormation (config: 1..3); "
        "`scale chat auto` restores the config's bounds"
    )
    summarizer = lines.index(f"component {SUMMARIZER}: InService, copies 1 current / 1 desired, autoscaling 1..4")
    assert lines[summarizer + 1] == (
        f"  drift: {SUMMARIZER} autoscales within 1..4, set outside CloudFormation (config: 1..2); "
        "`scale summarizer auto` restores the config's bounds"
    )


def test_status_of_an_undeployed_stage(aws, run):
    # Given no stack
    aws.stack_missing()
    # When status runs
    code, lines = run("status")
    # Then it says so and asks nothing else
    assert code == 0
    aws.assert_done()
    assert lines == [f"{STACK}: not deployed in {REGION}"]


def test_scale_pins_copies_through_the_scalable_target(aws, run):
    # Given the chat component registered with autoscaling 1..3
    resource_id = f"inference-component/{CHAT}"
    aws.scalable_targets([resource_id], {resource_id: (1, 3)})
    aws.aas.add_response(
        "register_scalable_target",
        {},
        {
            "ServiceNamespace": "sagemaker",
            "ResourceId": resource_id,
            "ScalableDimension": "sagemaker:inference-component:DesiredCopyCount",
            "MinCapacity": 2,
            "MaxCapacity": 2,
        },
    )
    aws.component(CHAT, current=1, desired=2)
    # When scale sets 2 copies
    code, lines = run("scale", "chat", "2")
    # Then min and max are pinned to 2 (autoscaling moves the copies) and the state is shown
    assert code == 0
    aws.assert_done()
    assert lines == [
        f"{CHAT}: pinned to 2 copies (now 1 current / 2 desired); `scale chat auto` hands it back to autoscaling"
    ]


def test_scale_auto_restores_the_configured_bounds(aws, run):
    # Given a pinned chat component
    resource_id = f"inference-component/{CHAT}"
    aws.scalable_targets([resource_id], {resource_id: (2, 2)})
    aws.aas.add_response(
        "register_scalable_target",
        {},
        {
            "ServiceNamespace": "sagemaker",
            "ResourceId": resource_id,
            "ScalableDimension": "sagemaker:inference-component:DesiredCopyCount",
            "MinCapacity": 1,
            "MaxCapacity": 3,
        },
    )
    aws.component(CHAT, current=2, desired=2)
    # When scale hands it back
    code, lines = run("scale", "chat", "auto")
    # Then the bounds from the config are registered again
    assert code == 0
    aws.assert_done()
    assert lines == [f"{CHAT}: autoscaling between 1 and 3 copies again (now 2 current / 2 desired)"]


@pytest.mark.parametrize(
    ("status", "reason", "message"),
    [
        ("Creating", "", f"component {CHAT} is Creating: it has no copies yet; try again when it is InService"),
        (
            "Failed",
            "CUDA out of memory",
            f"component {CHAT} is Failed (CUDA out of memory): it has no copies to scale; fix the cause",
        ),
    ],
)
def test_scale_of_a_component_without_copies_says_why(aws, run, capsys, status, reason, message):
    # Given a chat component that has a scalable target but no RuntimeConfig yet
    aws.scalable_targets([RESOURCE_IDS[0]], {RESOURCE_IDS[0]: (1, 3)})
    aws.component(CHAT, current=None, desired=None, status=status, reason=reason)
    # When scale asks for 2 copies
    code, _ = run("scale", "chat", "2")
    # Then it exits 1 with the component's state, and registers no bounds
    assert code == 1
    aws.assert_done()
    assert message in capsys.readouterr().err
    assert ("application-autoscaling", "RegisterScalableTarget") not in aws.calls


@pytest.mark.parametrize(
    ("component", "copies", "message"),
    [
        ("chat", "4", "4 copies is outside components.chat.autoscaling bounds 1..3"),
        ("chat", "two", "copies must be a whole number or `auto`, got 'two'"),
    ],
)
def test_scale_outside_bounds_makes_no_call(aws, run, capsys, component, copies, message):
    # Given the default bounds
    # When scale asks for something the config does not allow
    code, _ = run("scale", component, copies)
    # Then it fails with the reason and no AWS request was made (the stubs would reject any)
    assert code == 1
    aws.assert_done()
    assert message in capsys.readouterr().err


def test_scale_unknown_component_is_a_config_error(aws, run, capsys):
    # When scale names a component the config lacks
    code, _ = run("scale", "translator", "1")
    # Then the error lists the known ones
    assert code == 2
    assert "components.translator: no such component; known: chat, summarizer" in capsys.readouterr().err


def test_delete_removes_stack_and_packages_then_is_idempotent(aws, run):
    # Given a deployed stack and one package in S3
    aws.stack("UPDATE_COMPLETE")
    aws.events(event("e0", STACK, "AWS::CloudFormation::Stack", "UPDATE_COMPLETE"))
    aws.cf.add_response("delete_stack", {}, {"StackName": STACK})
    aws.stack("DELETE_IN_PROGRESS")
    aws.events(event("e1", "Endpoint", "AWS::SageMaker::Endpoint", "DELETE_IN_PROGRESS"))
    aws.stack_missing()
    aws.account()
    aws.s3.add_response(
        "list_objects_v2",
        {"Contents": [{"Key": "endpoint-packages/dev/chat-abc.tar.gz"}], "KeyCount": 1},
        {"Bucket": BUCKET, "Prefix": "endpoint-packages/dev/", "MaxKeys": 1000},
    )
    aws.s3.add_response(
        "delete_objects",
        {"Deleted": [{"Key": "endpoint-packages/dev/chat-abc.tar.gz"}]},
        {"Bucket": BUCKET, "Delete": {"Objects": [{"Key": "endpoint-packages/dev/chat-abc.tar.gz"}], "Quiet": True}},
    )
    aws.s3.add_response(
        "list_objects_v2", {"KeyCount": 0}, {"Bucket": BUCKET, "Prefix": "endpoint-packages/dev/", "MaxKeys": 1000}
    )
    # and, for the second run, nothing left
    aws.stack_missing()
    aws.account()
    aws.s3.add_client_error("list_objects_v2", service_error_code="NoSuchBucket", http_status_code=404)
    # When delete runs twice
    first_code, first_lines = run("delete")
    second_code, second_lines = run("delete")
    # Then the first removes the stack and the package, the second finds nothing and succeeds
    assert (first_code, second_code) == (0, 0)
    aws.assert_done()
    assert f"{STACK}: deleted" in first_lines
    assert any("deleted 1 object(s)" in line for line in first_lines)
    assert f"{STACK}: already deleted" in second_lines
    assert any("deleted 0 object(s)" in line for line in second_lines)


def test_delete_failure_names_the_resource(aws, run, capsys):
    # Given a stack whose endpoint cannot be deleted
    aws.stack("CREATE_COMPLETE")
    aws.events(event("e0", STACK, "AWS::CloudFormation::Stack", "CREATE_COMPLETE"))
    aws.cf.add_response("delete_stack", {}, {"StackName": STACK})
    aws.stack("DELETE_FAILED")
    aws.events(event("e1", "Endpoint", "AWS::SageMaker::Endpoint", "DELETE_FAILED", "Endpoint is busy"))
    # When delete runs
    code, _ = run("delete")
    # Then the error names it and says to re-run
    assert code == 1
    assert capsys.readouterr().err == (
        "error: delete failed (DELETE_FAILED): Endpoint (AWS::SageMaker::Endpoint): Endpoint is busy; "
        "fix that, then re-run delete\n"
    )


def test_stack_wait_is_bounded(aws, fake_time, capsys):
    # Given a stack that never settles and a short timeout
    aws.stack("CREATE_COMPLETE")
    aws.account()
    aws.bucket_exists(True)
    aws.package_exists(True)
    aws.change_set("UPDATE", "CREATE_COMPLETE", [change("Modify", "Endpoint", "AWS::SageMaker::Endpoint")])
    aws.events()
    aws.execute()
    for _ in range(4):  # at 0, 10, 20 and 30 s: the last one is past the 25 s timeout
        aws.stack("UPDATE_IN_PROGRESS")
        aws.events()
    polling = Polling(sleep=fake_time.sleep, clock=fake_time.clock, stack_interval_s=10, stack_timeout_s=25)
    # When deploy waits
    code = main(["deploy", "--stage", "dev", "--region", REGION], lambda r, p: aws.clients, lambda line: None, polling)
    # Then it gives up after the timeout with a pointer to `status`
    assert code == 1
    aws.assert_done()
    assert fake_time.sleeps == [10, 10, 10]
    assert "still UPDATE_IN_PROGRESS; keep watching with `status`" in capsys.readouterr().err


def test_package_uploads_and_writes_a_template_for_sam_deploy(aws, run, tmp_path):
    # Given a bucket without this package
    aws.account()
    aws.bucket_exists(True)
    aws.package_exists(False)
    out_file = tmp_path / "endpoint-stack.yaml"
    # When package runs
    code, lines = run("package", "--out", str(out_file))
    # Then the package is uploaded and the written template points at it
    assert code == 0
    aws.assert_done()
    (uploaded,) = [line for line in lines if "uploaded" in line]
    key = uploaded.split(f"s3://{BUCKET}/", 1)[1]
    assert key in out_file.read_text(encoding="utf-8")
    assert f"--stack-name {STACK} --capabilities CAPABILITY_IAM" in lines[-1]
