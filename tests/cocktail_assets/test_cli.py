"""The command line: arguments, and what `ui` hands on to dagster dev."""

from __future__ import annotations

import pytest

from cocktail_assets.cli import parse_args


def test_ui_passes_unknown_options_to_dagster_dev() -> None:
    assert parse_args(["ui", "-p", "3001", "--log-level", "debug"]).dagster_args == [
        "-p", "3001", "--log-level", "debug",
    ]
    assert parse_args(["ui"]).dagster_args == []


def test_other_commands_reject_unknown_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["status", "--bogus"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_refresh_select_and_synth_arguments() -> None:
    args = parse_args(["refresh", "--select", "spaces/cocktail_space", "analytics/ingredient_usage"])
    assert args.select == ["spaces/cocktail_space", "analytics/ingredient_usage"]
    args = parse_args(["db", "synth", "--recipes", "1000", "--seed", "7"])
    assert (args.recipes, args.seed) == (1000, 7)


def test_status_exits_2_on_bad_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cocktail_assets.cli import main

    monkeypatch.setenv("COCKTAIL_ENV", "staging")
    assert main(["status"]) == 2
    assert capsys.readouterr().err.strip().startswith("cocktail-assets: COCKTAIL_ENV must be")
