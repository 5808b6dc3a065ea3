"""`python -m provisioning <command> --config FILE --stage STAGE --region REGION`: the endpoint stack's life cycle."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from provisioning.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from provisioning.deployment import resolve_deployment
from provisioning.errors import ProvisioningError, explain_client_error
from provisioning.operations import AwsClients, Polling, Provisioner
from provisioning.permissions import deployer_actions, policy_document, summary
from provisioning.render import build_packages, render_template, to_yaml

ClientsFactory = Callable[[str, str | None], AwsClients]


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        type=Path,
        default=Path(os.environ.get("CHATBOT_ENDPOINT_CONFIG", DEFAULT_CONFIG_PATH)),
        help="endpoint configuration file (default: provisioning/endpoint.yaml)",
    )
    common.add_argument("--stage", default="dev", help="deployment stage, as the app's Stage parameter (default: dev)")
    common.add_argument(
        "--region",
        default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        help="AWS region (default: $AWS_REGION, $AWS_DEFAULT_REGION or us-east-1)",
    )
    common.add_argument("--profile", default=None, help="AWS profile for credentials (default: the usual chain)")

    parser = argparse.ArgumentParser(prog="python -m provisioning", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    render = commands.add_parser("render", parents=[common], help="write the endpoint stack template; no AWS calls")
    render.add_argument("--out", type=Path, default=None, help="file to write (default: standard output)")
    package = commands.add_parser(
        "package", parents=[common], help="upload the model packages, then write the template (for `sam deploy`)"
    )
    package.add_argument("--out", type=Path, required=True, help="file to write the template to")
    commands.add_parser("plan", parents=[common], help="lint, then show the change set and the cost; changes nothing")
    commands.add_parser("deploy", parents=[common], help="upload packages, create or update the stack, wait")
    commands.add_parser("status", parents=[common], help="stack, endpoint, components, copies, SSM names")
    scale = commands.add_parser("scale", parents=[common], help="pin a component's copies, or `auto` to release")
    scale.add_argument("component", help="component name from the config, e.g. chat")
    scale.add_argument("copies", help="a copy count within the component's autoscaling bounds, or `auto`")
    commands.add_parser("delete", parents=[common], help="delete the endpoint stack and this stage's packages")
    permissions = commands.add_parser(
        "permissions", parents=[common], help="print the IAM policy the caller of these commands needs; no AWS calls"
    )
    permissions.add_argument("--summary", action="store_true", help="one line per service instead of the policy")
    return parser


def main(
    argv: Sequence[str] | None = None,
    clients_factory: ClientsFactory = AwsClients.for_region,
    out: Callable[[str], None] = print,
    polling: Polling | None = None,
) -> int:
    args = build_parser().parse_args(argv)
    try:
        copies = _parse_copies(args.copies) if args.command == "scale" else None
        deployment = resolve_deployment(load_config(args.config), args.config, args.stage, args.region)
        if args.command == "permissions":
            actions = deployer_actions(render_template(deployment, build_packages(deployment)), deployment.region)
            out(summary(actions) if args.summary else json.dumps(policy_document(actions), indent=2))
            return 0
        if args.command == "render":
            template_yaml = to_yaml(render_template(deployment, build_packages(deployment)))
            if args.out is None:
                out(template_yaml)
            else:
                args.out.write_text(template_yaml, encoding="utf-8")
                out(f"wrote {args.out}")
            return 0
        clients = clients_factory(args.region, args.profile)
        provisioner = Provisioner(deployment, clients, out=out, polling=polling or Polling())
        if args.command == "scale":
            return provisioner.scale(args.component, copies)
        if args.command == "package":
            args.out.write_text(provisioner.package(), encoding="utf-8")
            out(
                f"wrote {args.out}: deploy it with `sam deploy --template-file {args.out} --stack-name "
                f"{deployment.stack_name} --capabilities CAPABILITY_IAM`"
            )
            return 0
        return {"plan": provisioner.plan, "deploy": provisioner.deploy, "status": provisioner.status}.get(
            args.command, provisioner.delete
        )()
    except ConfigError as error:
        for problem in error.problems:
            print(f"config error: {error.path}: {problem}", file=sys.stderr)
        return 2
    except ProvisioningError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ClientError as error:
        print(f"error: {explain_client_error(error, args.region)}", file=sys.stderr)
        return 1
    except NoCredentialsError:
        print("error: credentials: no AWS credentials found; set AWS_PROFILE or run `aws sso login`", file=sys.stderr)
        return 1
    except BotoCoreError as error:
        print(f"error: AWS call failed before reaching the service: {error}", file=sys.stderr)
        return 1


def _parse_copies(value: str) -> int | None:
    if value == "auto":
        return None
    if not value.isdigit():
        raise ProvisioningError(f"copies must be a whole number or `auto`, got {value!r}")
    return int(value)
