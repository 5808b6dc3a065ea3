"""The deployer's IAM permissions: derived from the rendered stack's provider schemas, published in the README."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import botocore.session
import pytest

from provisioning.cli import main
from provisioning.permissions import CLI_CALLS, deployer_actions, summary
from provisioning.render import build_packages, render_template

VARIANT_NAMES = ["default", "scale-to-zero", "one-component", "two-instances"]
REGION = "us-east-1"
README = Path(__file__).resolve().parents[3] / "README.md"
MANAGED_POLICY_LIMIT = 6144  # characters of a managed policy, whitespace not counted
# Actions the hand-kept README list lacked (issue 11); all of them come from the schemas or the autoscaling table.
ONCE_MISSING = {
    "iam:TagRole",
    "iam:GetRolePolicy",
    "iam:ListRolePolicies",
    "iam:ListAttachedRolePolicies",
    "application-autoscaling:TagResource",
    "application-autoscaling:ListTagsForResource",
    "application-autoscaling:DescribeScheduledActions",
    "application-autoscaling:PutScheduledAction",
    "cloudwatch:GetMetricData",
    "cloudwatch:TagResource",
    "cloudwatch:ListTagsForResource",
    "sagemaker:UpdateInferenceComponentRuntimeConfig",
    "sagemaker:DeleteTags",
    "sagemaker:UpdateEndpointWeightsAndCapacities",
}


@pytest.fixture
def needed(shipped_config, variants, deploy_config):
    """The actions a configuration variant needs: its rendered stack's resource types, and the CLI's own calls."""

    def compute(variant: str) -> set[str]:
        deployment = deploy_config(variants[variant](copy.deepcopy(shipped_config)), region=REGION)
        return deployer_actions(render_template(deployment, build_packages(deployment)), REGION)

    return compute


def _published() -> set[str]:
    """The actions the README's permissions section lists, one `- `service`: A, B` bullet per service."""
    section = README.read_text(encoding="utf-8").split("**Permissions the caller needs.**", 1)[1]
    bullets = re.findall(r"^- `([a-z0-9-]+)`: (.+)$", section.split("\n\n", 2)[1], flags=re.MULTILINE)
    return {f"{service}:{name}" for service, names in bullets for name in names.split(", ")}


def test_readme_lists_exactly_what_the_rendered_stacks_need(needed):
    # Given what every configuration variant's rendered stack and the CLI need
    actions = set().union(*(needed(variant) for variant in VARIANT_NAMES))
    # When the README's list is read
    published = _published()
    # Then it lacks none of them, adds nothing else, and reads as `permissions --summary` prints it
    assert actions - published == set(), "update the README list: `python -m provisioning permissions --summary`"
    assert published - actions == set(), "the README lists actions no rendered stack needs"
    assert summary(actions) in README.read_text(encoding="utf-8")


def test_the_actions_the_hand_list_lacked_are_derived(needed):
    # Given the shipped configuration and its scale-to-zero variant (the one with an alarm)
    # When their actions are computed
    actions = needed("default") | needed("scale-to-zero")
    # Then every action the hand-kept list missed is among them
    assert ONCE_MISSING - actions == set()


def test_permissions_command_prints_a_policy_without_aws(needed):
    # Given no AWS clients at all
    def no_aws(region, profile):
        raise AssertionError("permissions must not call AWS")

    lines: list[str] = []
    # When the policy is printed for the shipped configuration
    code = main(["permissions", "--stage", "dev", "--region", REGION], no_aws, lines.append)
    # Then it is one IAM policy, a statement per service with sorted actions, exactly what the stack needs
    assert code == 0
    policy = json.loads("\n".join(lines))
    assert policy["Version"] == "2012-10-17"
    statements = policy["Statement"]
    services = [statement["Action"][0].split(":")[0] for statement in statements]
    assert services == sorted(services)
    for statement in statements:
        assert re.fullmatch(r"[A-Za-z0-9]+", statement["Sid"])
        assert statement["Action"] == sorted(statement["Action"])
        assert {action.split(":")[0] for action in statement["Action"]} == {statement["Action"][0].split(":")[0]}
    printed = {action for statement in statements for action in statement["Action"]}
    assert printed == needed("default")
    assert len(json.dumps(policy, separators=(",", ":"))) <= MANAGED_POLICY_LIMIT


def test_permissions_summary_is_the_readme_format(needed):
    # When the summary is printed for the shipped configuration
    lines: list[str] = []
    code = main(["permissions", "--summary", "--stage", "dev", "--region", REGION], lambda r, p: None, lines.append)
    # Then it is the README's bullets for that configuration
    assert code == 0
    assert lines == [summary(needed("default"))]
    assert lines[0].startswith("- `application-autoscaling`: ")


def test_cli_calls_name_real_operations():
    # Given the CLI's own calls, which the operations tests check against what the CLI really calls
    session = botocore.session.get_session()
    # When each is looked up in botocore's service models
    unknown = {
        (service, operation)
        for service, operation in CLI_CALLS
        if operation not in session.get_service_model(service).operation_names
    }
    # Then every one exists, so the table cannot hold a misspelt call that no test would ever match
    assert unknown == set()
