"""deploy/README.md documents the host's variables, every stack output and the
deploy / build commands that match the template and the Dockerfile."""

from __future__ import annotations

import re

import pytest

from tests.deploy.test_cloudformation import REPO, load_template

README = REPO / "deploy" / "README.md"

HOST_VARIABLES = [
    "COCKTAIL_ENV",
    "DATABASE_URL",
    "ANALYTICS_BUCKET",
    "ANALYTICS_PREFIX",
    "AWS_REGION",
    "BATCH_JOB_QUEUE",
    "BATCH_JOB_DEFINITION",
    "BATCH_STAGING_PREFIX",
    "BATCH_LOG_GROUP",
    "BATCH_MAX_ATTEMPTS",
]


def check_readme(text: str, outputs: list[str]) -> None:
    table = {m.group(1) for m in re.finditer(r"^\| `([A-Z_]+)` \|", text, re.MULTILINE)}
    assert set(HOST_VARIABLES) <= table, set(HOST_VARIABLES) - table
    assert "| `COCKTAIL_ENV` | `production` |" in text
    for key in outputs:
        assert f"`{key}`" in text, f"output {key} undocumented"
    assert "--capabilities CAPABILITY_NAMED_IAM" in text
    assert "--template-file deploy/cloudformation.yaml" in text
    assert re.search(
        r"docker buildx build --platform linux/arm64 -f deploy/Dockerfile .*--push \.", text
    )


def test_readme() -> None:
    check_readme(README.read_text(), list(load_template()["Outputs"]))


@pytest.mark.parametrize(
    "old, new",
    [
        ("`BATCH_LOG_GROUP`", "`BATCH_LOGS`"),
        ("`HostPolicyArn`", "the policy"),
        ("--platform linux/arm64", "--platform linux/amd64"),
        ("CAPABILITY_NAMED_IAM", "CAPABILITY_IAM"),
    ],
)
def test_check_fails_on_broken_readme(old: str, new: str) -> None:
    text = README.read_text()
    assert old in text
    with pytest.raises(AssertionError):
        check_readme(text.replace(old, new), list(load_template()["Outputs"]))
