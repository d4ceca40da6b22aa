"""The refresh policy on its own: debounce, max wait, backoff, run keys, reasons."""

from __future__ import annotations

from datetime import datetime, timedelta

from cocktail_assets.db.change_log import PendingChanges, PendingTable
from cocktail_assets.refresh.policy import (
    Policy,
    RunHistory,
    decide,
    format_duration,
    run_key_for,
)

NOW = datetime(2025, 6, 1, 12, 0, 0)
POLICY = Policy.from_minutes(15, 60)
WITH_ASSETS = {"recipes", "ingredients", "recipe_ingredients", "units"}


def pending(*tables: tuple[str, int, float, float]) -> PendingChanges:
    """(table, last_id, minutes since the first change, minutes since the last)."""
    return PendingChanges(
        now=NOW, snapshot="100:100:",
        tables=tuple(
            PendingTable(name, 3, NOW - timedelta(minutes=first), NOW - timedelta(minutes=last),
                         last_id)
            for name, last_id, first, last in tables
        ),
    )


def test_nothing_pending_is_a_skip() -> None:
    decision = decide(pending(), WITH_ASSETS, RunHistory(), POLICY)
    assert not decision.request
    assert "no pending changes" in decision.reason


def test_debounce_waits_for_the_quiet_period() -> None:
    decision = decide(pending(("recipes", 7, 20, 5)), WITH_ASSETS, RunHistory(), POLICY)
    assert not decision.request
    assert decision.quiet_left == timedelta(minutes=10)
    assert decision.max_wait_left == timedelta(minutes=40)
    assert "recipes (3 changes)" in decision.reason
    assert "10m00s left" in decision.reason and "40m00s left" in decision.reason

    decision = decide(pending(("recipes", 7, 20, 15)), WITH_ASSETS, RunHistory(), POLICY)
    assert decision.request and decision.run_key == "changes-7"
    assert "quiet period over" in decision.reason


def test_max_wait_overrides_the_debounce() -> None:
    decision = decide(pending(("units", 9, 60, 0.5)), WITH_ASSETS, RunHistory(), POLICY)
    assert decision.request and "max wait reached" in decision.reason


def test_tables_no_asset_reads_are_settled_not_run() -> None:
    decision = decide(
        pending(("ratings", 4, 90, 90), ("tags", 5, 90, 90)), WITH_ASSETS, RunHistory(), POLICY
    )
    assert not decision.request
    assert decision.settle_tables == ("ratings", "tags")
    assert decision.run_tables == ()


def test_only_tables_with_assets_time_the_run() -> None:
    # A fresh rating must not postpone the refresh of an older recipe edit.
    decision = decide(
        pending(("ratings", 9, 0, 0), ("recipes", 3, 30, 30)), WITH_ASSETS, RunHistory(), POLICY
    )
    assert decision.request and decision.run_tables == ("recipes",)
    assert decision.settle_tables == ("ratings",)
    assert decision.run_key == "changes-3"


def test_a_run_in_progress_blocks_a_new_one() -> None:
    history = RunHistory(in_progress_run="abc", in_progress_status="STARTED")
    decision = decide(pending(("recipes", 7, 90, 90)), WITH_ASSETS, history, POLICY)
    assert not decision.request
    assert "abc is STARTED" in decision.reason


def test_backoff_doubles_and_is_capped() -> None:
    assert [POLICY.backoff(n).total_seconds() / 60 for n in range(8)] == [
        0, 1, 2, 4, 8, 16, 30, 30
    ]
    assert POLICY.backoff(10_000) == timedelta(minutes=30)


def test_a_failed_run_is_retried_after_its_backoff() -> None:
    failed = RunHistory(
        consecutive_failures=3, last_failed_run="deadbeef-1", last_finished_run="deadbeef-1",
        failure_seen_at=NOW - timedelta(minutes=1),
    )
    decision = decide(pending(("recipes", 7, 90, 90)), WITH_ASSETS, failed, POLICY)
    assert not decision.request
    assert decision.retry_left == timedelta(minutes=3)
    assert "3 consecutive failed runs" in decision.reason and "retry in 3m00s" in decision.reason

    later = RunHistory(**{**failed.__dict__, "failure_seen_at": NOW - timedelta(minutes=4)})
    decision = decide(pending(("recipes", 7, 90, 90)), WITH_ASSETS, later, POLICY)
    assert decision.request and "retrying after 3 consecutive" in decision.reason
    assert decision.run_key == "changes-7-after-deadbeef"


def test_run_keys_name_the_change_point_and_the_run_history() -> None:
    assert run_key_for(12, RunHistory()) == "changes-12"
    assert run_key_for(12, RunHistory(last_finished_run="0123456789")) == "changes-12-after-01234567"


def test_durations_are_short() -> None:
    assert format_duration(timedelta(seconds=35)) == "35s"
    assert format_duration(timedelta(minutes=4, seconds=10)) == "4m10s"
    assert format_duration(timedelta(hours=1, minutes=2)) == "1h02m"
    assert format_duration(timedelta(minutes=-3)) == "0s"
