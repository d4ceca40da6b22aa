"""The systemd units of the Dagster host: hardened, restarted on failure, secrets only from
the environment file, and commands that exist in the checkout they point at."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "deploy" / "systemd"
APP = "/opt/cocktail-assets"
STATE = "/var/lib/cocktail-assets"
ENV_FILE = "/etc/cocktail-assets/cocktail-assets.env"


def load_unit(name: str) -> configparser.ConfigParser:
    """A unit file as sections of (key -> list of values): keys may repeat (Environment=)."""
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",),
                                       comment_prefixes=("#", ";"), empty_lines_in_values=False)
    parser.optionxform = str  # systemd keys are case-sensitive
    text = (UNITS / name).read_text()
    # keep every Environment= line: number repeated keys so the parser keeps each
    lines, seen = [], {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            seen[key] = seen.get(key, 0) + 1
            line = f"{key}#{seen[key]}={value}"
        elif line.startswith("["):
            seen = {}
        lines.append(line)
    parser.read_string("\n".join(lines))
    return parser


def values(unit: configparser.ConfigParser, section: str, key: str) -> list[str]:
    return [v for k, v in unit[section].items() if k.split("#")[0] == key]


def value(unit: configparser.ConfigParser, section: str, key: str) -> str:
    found = values(unit, section, key)
    assert len(found) == 1, f"{key}: {found}"
    return found[0]


SERVICES = ["cocktail-assets-webserver.service", "cocktail-assets-daemon.service"]


@pytest.mark.parametrize("name", SERVICES)
def test_unit_is_hardened_and_restarts(name: str) -> None:
    unit = load_unit(name)
    assert set(unit.sections()) == {"Unit", "Service", "Install"}
    user = value(unit, "Service", "User")
    assert user == "cocktail-assets" and value(unit, "Service", "Group") == user
    for key, expected in {
        "Restart": "on-failure", "ProtectSystem": "strict", "ProtectHome": "yes",
        "NoNewPrivileges": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
        "CapabilityBoundingSet": "", "StateDirectory": "cocktail-assets",
        "ReadWritePaths": STATE, "EnvironmentFile": ENV_FILE,
        "WorkingDirectory": APP, "Type": "simple",
    }.items():
        assert value(unit, "Service", key) == expected, key
    assert int(value(unit, "Service", "RestartSec")) > 0
    assert value(unit, "Install", "WantedBy") == "multi-user.target"
    assert "network-online.target" in value(unit, "Unit", "After")
    environment = dict(v.split("=", 1) for v in values(unit, "Service", "Environment"))
    assert environment["DAGSTER_HOME"] == STATE and environment["COCKTAIL_LOCAL_DIR"] == STATE
    # secrets never in the unit (anyone may read it with systemctl cat)
    assert not {"DATABASE_URL", "DAGSTER_PG_URL"} & environment.keys()


@pytest.mark.parametrize("name", SERVICES)
def test_unit_runs_a_command_of_the_checkout(name: str) -> None:
    unit = load_unit(name)
    command = value(unit, "Service", "ExecStart").split()
    binary = Path(command[0])
    assert binary.parent == Path(APP) / ".venv" / "bin"
    assert binary.name in {"dagster-webserver", "dagster-daemon"}
    workspace = command[command.index("-w") + 1]
    assert workspace == f"{APP}/workspace.yaml"
    assert (REPO / Path(workspace).relative_to(APP)).exists()
    if binary.name == "dagster-webserver":
        assert command[command.index("-h") + 1] == "127.0.0.1"  # behind a reverse proxy


def test_daemon_restart_leaves_a_run_in_progress_alone() -> None:
    """A restart must lose no edit and start no duplicate run: the run worker of a run in
    progress is not killed with the daemon, it finishes and the new daemon sees it."""
    unit = load_unit("cocktail-assets-daemon.service")
    assert value(unit, "Service", "KillMode") == "process"
    assert value(unit, "Service", "KillSignal") == "SIGTERM"


def test_environment_file_example_names_every_secret_without_one() -> None:
    text = (UNITS / "cocktail-assets.env.example").read_text()
    settings = dict(line.split("=", 1) for line in text.splitlines()
                    if line and not line.startswith("#"))
    assert settings["COCKTAIL_ENV"] == "production"
    for secret in ("DATABASE_URL", "DAGSTER_PG_URL"):
        assert "CHANGE-ME" in settings[secret], secret
    assert settings["DAGSTER_PG_URL"].startswith("postgresql+psycopg2://")


def test_readme_explains_installing_the_units() -> None:
    readme = (REPO / "deploy" / "README.md").read_text()
    section = readme[readme.index("## The Dagster host (systemd)"):]
    for needle in ("useradd", "systemctl enable --now", ENV_FILE, "dagster.yaml",
                   *SERVICES, "cocktail-assets compile"):
        assert needle in section, needle
