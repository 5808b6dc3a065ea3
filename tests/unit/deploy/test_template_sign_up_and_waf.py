"""template.yaml: who may sign up, MFA, and the optional per-IP rate limit in AWS WAF in front of the API stage."""

from __future__ import annotations

import re

import pytest

from local.template import DEFAULT_TEMPLATE_PATH, Template


@pytest.mark.parametrize(
    ("overrides", "admin_only"),
    [({}, True), ({"AllowSelfSignUp": "false"}, True), ({"AllowSelfSignUp": "true"}, False)],
)
def test_only_administrators_create_users_unless_sign_up_is_opened(overrides, admin_only):
    # Given the stage's parameters
    template = Template(DEFAULT_TEMPLATE_PATH, overrides)

    # When the user pool is rendered
    pool = template.resolve(template.resources["ChatbotUserPool"]["Properties"])

    # Then sign-up is admin-only by default
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is admin_only


@pytest.mark.parametrize(
    ("overrides", "mfa", "factors"),
    [
        ({}, "OPTIONAL", ["SOFTWARE_TOKEN_MFA"]),
        ({"UserPoolMfa": "ON"}, "ON", ["SOFTWARE_TOKEN_MFA"]),
        ({"UserPoolMfa": "OFF"}, "OFF", None),
    ],
)
def test_mfa_is_optional_by_default_with_authenticator_apps(overrides, mfa, factors):
    # Given the stage's parameters
    template = Template(DEFAULT_TEMPLATE_PATH, overrides)

    # When the user pool is rendered
    pool = template.resolve(template.resources["ChatbotUserPool"]["Properties"])

    # Then MFA follows the parameter, with app codes whenever it is not off (Cognito rejects factors with OFF)
    assert pool["MfaConfiguration"] == mfa
    assert pool.get("EnabledMfas") == factors


def test_no_web_acl_unless_a_per_ip_limit_is_set(template):
    # Given the default parameters
    # When the web ACL's condition is evaluated
    # Then neither the web ACL nor its association is created
    assert template.condition("CreateWebAcl") is False
    for name in ("ApiWebAcl", "ApiWebAclAssociation"):
        assert template.resources[name]["Condition"] == "CreateWebAcl"


def test_a_per_ip_limit_blocks_each_address_above_it_in_front_of_the_api_stage():
    # Given a stage limited to 1,000 requests per IP in 5 minutes
    template = Template(DEFAULT_TEMPLATE_PATH, {"WafRequestsPer5MinPerIp": "1000"})

    # When the web ACL and its association are rendered
    acl = template.resolve(template.resources["ApiWebAcl"]["Properties"])
    association = template.resources["ApiWebAclAssociation"]["Properties"]

    # Then one rate-based rule counts requests per client IP and answers 429 with a JSON body and CORS
    assert template.condition("CreateWebAcl") is True
    assert acl["Scope"] == "REGIONAL" and acl["DefaultAction"] == {"Allow": {}}
    (rule,) = acl["Rules"]
    statement = rule["Statement"]["RateBasedStatement"]
    assert (statement["AggregateKeyType"], str(statement["Limit"]), statement["EvaluationWindowSec"]) == (
        "IP",
        "1000",
        300,
    )
    response = rule["Action"]["Block"]["CustomResponse"]
    assert response["ResponseCode"] == 429
    assert acl["CustomResponseBodies"][response["CustomResponseBodyKey"]]["ContentType"] == "APPLICATION_JSON"
    assert {header["Name"] for header in response["ResponseHeaders"]} >= {"Access-Control-Allow-Origin", "Retry-After"}
    # and it guards the API's stage (SAM's ChatbotApi.Stage, so the stage exists first)
    arn, variables = association["ResourceArn"]["Fn::Sub"]
    assert arn.endswith("/restapis/${ChatbotApi}/stages/${StageName}")
    assert variables == {"StageName": {"Ref": "ChatbotApi.Stage"}}
    assert association["WebACLArn"] == {"Fn::GetAtt": ["ApiWebAcl", "Arn"]}


@pytest.mark.parametrize(
    ("limit", "accepted"),
    [
        *[("", True), ("10", True), ("3000", True), ("100000000", True)],
        *[("0", False), ("9", False), ("010", False), ("-5", False), ("1e3", False), ("2000000000000", False)],
    ],
)
def test_the_per_ip_limit_is_empty_or_a_number_waf_accepts(limit, accepted):
    # Given the parameter's pattern (WAF takes limits from 10 to 2,000,000,000)
    pattern = Template(DEFAULT_TEMPLATE_PATH).raw["Parameters"]["WafRequestsPer5MinPerIp"]["AllowedPattern"]

    # When a value is checked against it, Then only empty (no web ACL) or a limit WAF takes passes
    assert bool(re.fullmatch(pattern, limit)) is accepted
