"""cfn-lint, used as a library, on a rendered template."""

from __future__ import annotations

from dataclasses import dataclass

from cfnlint.api import ManualArgs, lint


@dataclass(frozen=True)
class LintFinding:
    rule: str
    message: str
    location: str

    @property
    def is_error(self) -> bool:
        return self.rule.startswith("E")

    def __str__(self) -> str:
        return f"{self.rule} {self.location}: {self.message}"


def lint_template(template_yaml: str, region: str) -> list[LintFinding]:
    matches = lint(template_yaml, config=ManualArgs(regions=[region]))
    return [
        LintFinding(rule=match.rule.id, message=match.message, location="/".join(str(part) for part in match.path))
        for match in matches
    ]
