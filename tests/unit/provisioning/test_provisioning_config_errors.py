"""Every AWS-side configuration error is reported with file, field and reason, before any AWS call."""

from __future__ import annotations

import pytest
import yaml

from provisioning.cli import main


def _edit(raw, path: str, value):
    *parents, last = path.split(".")
    node = raw
    for part in parents:
        node = node[part]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return raw


_DELETE = object()

CASES = [
    pytest.param(
        [("endpoint.instance_type", "ml.g9.huge")],
        "endpoint.instance_type: unknown instance type 'ml.g9.huge'",
        id="unknown-instance-type",
    ),
    pytest.param(
        [("components.chat.compute.accelerators", 8)],
        "components.chat.compute.accelerators: one copy needs 8 but ml.g5.12xlarge has only 4",
        id="reservation-bigger-than-instance",
    ),
    pytest.param(
        [("components.chat.copies", 5)],
        "components.chat: copies (5) must be within autoscaling bounds 1..3",
        id="copies-outside-bounds",
    ),
    pytest.param(
        [("aws.create_execution_role", False)],
        "aws.execution_role_arn: missing: give the ARN of a role SageMaker can assume",
        id="missing-role",
    ),
    pytest.param(
        [("aws.execution_role_arn", "arn:aws:iam::123456789012:role/x")],
        "aws.execution_role_arn: set either execution_role_arn or create_execution_role: true, not both",
        id="two-roles",
    ),
    pytest.param(
        [("aws.execution_role_arn", "my-role"), ("aws.create_execution_role", False)],
        "aws.execution_role_arn: String should match pattern",
        id="role-not-an-arn",
    ),
    pytest.param(
        [("components.chat.container.image_version", "0.99.0")],
        "components.chat.container.image_version: Unsupported djl-lmi version: 0.99.0. Supported djl-lmi version(s):",
        id="unknown-lmi-image-version",
    ),
    pytest.param(
        [("components.summarizer.container.image_version", "9.9.9")],
        "components.summarizer.container.image_version: Unsupported huggingface version: 9.9.9",
        id="unknown-hf-image-version",
    ),
    pytest.param(
        [("components.chat.container.image_version", "latest")],
        "components.chat.container.image_version: 'latest' is not a pinned version",
        id="unpinned-image",
    ),
    pytest.param(
        [("components.chat.container.image_version", "0.38.0")],
        "components.chat.container.image_version: 0.38.0 is a CUDA 13 image; it needs aws.inference_ami_version",
        id="cuda13-image-without-ami",
    ),
    pytest.param(
        [("components.chat.container.environment.OPTION_ROLLING_BATCH", "lmi-dist")],
        "components.chat.container.environment.OPTION_ROLLING_BATCH: 'lmi-dist' was removed in LMI v15",
        id="removed-rolling-batch",
    ),
    pytest.param(
        [("components.chat.container.environment.OPTION_TENSOR_PARALLEL_DEGREE", "2")],
        "OPTION_TENSOR_PARALLEL_DEGREE: 2 must equal compute.accelerators (1)",
        id="tensor-parallel-mismatch",
    ),
    pytest.param(
        [("endpoint.scaling.min_instances", 0)],
        "endpoint.scaling.min_instances: 0 (scale to zero) needs autoscaling.min_copies: 0 on every component; "
        "not on: chat, summarizer",
        id="zero-instances-with-pinned-copies",
    ),
    pytest.param(
        [("components.chat.copies", 3), ("components.summarizer.copies", 2), ("endpoint.scaling.max_instances", 1)],
        "components.*.compute.accelerators: the configured copies need 5 in total but 1 x ml.g5.12xlarge have 4",
        id="copies-do-not-fit-max-instances",
    ),
    pytest.param(
        [("components.summarizer.container.pytorch_version", _DELETE)],
        "components.summarizer.container.image_version: a huggingface container needs container.pytorch_version",
        id="hf-without-pytorch-version",
    ),
    pytest.param(
        [("aws.regions", ["eu-west-1"])],
        "aws.regions: region 'us-east-1' is not one of eu-west-1",
        id="region-not-allowed",
    ),
]


class _NoAws:
    """A clients factory that fails the test if any command gets as far as AWS."""

    called = False

    def __call__(self, region, profile):
        self.called = True
        raise AssertionError("an AWS client was created for an invalid config")


@pytest.mark.parametrize(("edits", "expected"), CASES)
@pytest.mark.parametrize("command", ["render", "plan", "deploy"])
def test_config_error_names_file_field_and_reason_before_any_aws_call(
    edits, expected, command, raw_config, tmp_path, capsys
):
    # Given a config file with one mistake
    for path, value in edits:
        _edit(raw_config, path, value)
    config_file = tmp_path / "endpoint.yaml"
    config_file.write_text(yaml.safe_dump(raw_config), encoding="utf-8")
    no_aws = _NoAws()
    # When any command runs on it
    code = main([command, "--config", str(config_file), "--stage", "dev", "--region", "us-east-1"], no_aws)
    # Then it exits 2 with a line naming the file, the field and why, and no AWS client was created
    error_lines = capsys.readouterr().err.splitlines()
    assert code == 2
    assert not no_aws.called
    assert any(line.startswith(f"config error: {config_file}: ") and expected in line for line in error_lines), (
        error_lines
    )


def test_bad_stage_is_a_config_error(tmp_path, capsys):
    # Given a stage name that template.yaml's Stage parameter would reject
    no_aws = _NoAws()
    # When render runs with it
    code = main(["render", "--stage", "Prod_1"], no_aws)
    # Then it fails on the --stage field before anything else
    assert code == 2
    assert "--stage: 'Prod_1' must match" in capsys.readouterr().err


def test_unreadable_config_file_is_reported(tmp_path, capsys):
    # Given a path with no file
    missing = tmp_path / "nope.yaml"
    # When render runs on it
    code = main(["render", "--config", str(missing)], _NoAws())
    # Then the error names the file and the reason
    assert code == 2
    assert f"config error: {missing}: cannot read the file" in capsys.readouterr().err


def test_render_writes_the_template_without_aws(raw_config, tmp_path, capsys):
    # Given a valid config
    out_file = tmp_path / "endpoint-stack.yaml"
    no_aws = _NoAws()
    # When render writes to a file
    code = main(["render", "--stage", "qa", "--out", str(out_file)], no_aws)
    # Then the file holds the stack for that stage and no AWS client was created
    assert code == 0
    assert not no_aws.called
    template = yaml.safe_load(out_file.read_text(encoding="utf-8"))
    assert template["Resources"]["Endpoint"]["Properties"]["EndpointName"] == "genai-chatbot-qa"
    assert f"wrote {out_file}" in capsys.readouterr().out
