"""Pure functions of the activity domain: one day's counts, their checks, the 30-day summary.

No I/O: the assets read the rows and publish what these return.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

# Count field -> CloudWatch metric name, in the order of queries.DAILY_ACTIVITY's columns.
METRICS: dict[str, str] = {
    "recipes_created": "RecipesCreated",
    "ingredients_created": "IngredientsCreated",
    "ratings_added": "RatingsAdded",
    "inventory_additions": "InventoryAdditions",
    "tags_created": "TagsCreated",
    "active_users": "ActiveUsers",
}
KINDS = ("recipes", "ingredients", "ratings", "inventory", "tags")
COUNTS = tuple(METRICS)[:-1]


@dataclass(frozen=True)
class DayActivity:
    """One UTC day's activity: counts per kind, distinct users per kind and overall."""

    day: date
    counts: Mapping[str, int]  # COUNTS -> rows created that day
    actors: Mapping[str, int]  # KINDS -> distinct users of that kind that day
    active_users: int

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> DayActivity:
        """A row of ``queries.DAILY_ACTIVITY``."""
        day, *values = row
        counts = dict(zip(COUNTS, values[:5], strict=True))
        actors = dict(zip(KINDS, values[5:10], strict=True))
        return cls(day, counts, actors, int(values[10]))

    @property
    def key(self) -> str:
        return self.day.isoformat()

    def metric_values(self) -> dict[str, int]:
        """CloudWatch metric name -> value."""
        values = {**self.counts, "active_users": self.active_users}
        return {METRICS[field]: int(values[field]) for field in METRICS}

    def document(self) -> dict[str, Any]:
        """The artifact's data: the day, every count and the per-kind distinct users."""
        return {
            "day": self.key,
            **{field: int(value) for field, value in self.counts.items()},
            "active_users": self.active_users,
            "active_users_by_kind": {kind: int(n) for kind, n in self.actors.items()},
        }


def count_problems(day: DayActivity) -> list[str]:
    """Why a day's numbers cannot be right (empty when they are consistent).

    Counts are non-negative; ``active_users`` is at least the largest per-kind user count and at
    most their sum (a user counted once however many kinds they were active in).
    """
    problems = [f"{day.key}: {field} = {n} < 0" for field, n in day.counts.items() if n < 0]
    problems += [f"{day.key}: {kind} users = {n} < 0" for kind, n in day.actors.items() if n < 0]
    if day.active_users < 0:
        problems.append(f"{day.key}: active_users = {day.active_users} < 0")
    per_kind = list(day.actors.values())
    users = day.active_users
    if users > sum(per_kind):
        problems.append(f"{day.key}: active_users {users} > sum per kind {sum(per_kind)}")
    if users < max(per_kind, default=0):
        problems.append(f"{day.key}: active_users {users} < largest kind {max(per_kind)}")
    for kind, field in zip(KINDS, COUNTS, strict=True):
        if day.actors[kind] > day.counts[field]:
            problems.append(
                f"{day.key}: {kind} users {day.actors[kind]} > {field} {day.counts[field]}"
            )
    return problems


def day_start(day: date) -> datetime:
    """The day's 00:00 UTC, the timestamp of its metrics."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def last_complete_days(today: date, n: int = 30) -> list[date]:
    """The ``n`` complete UTC days before ``today``, oldest first."""
    return [today - timedelta(days=i) for i in range(n, 0, -1)]


def summary_document(
    days: Sequence[date], documents: Mapping[str, Mapping[str, Any]], missing: Iterable[str]
) -> dict[str, Any]:
    """The activity-summary artifact: each day's counts and the totals over the window.

    ``documents`` maps a day to its daily document; ``missing`` lists the days that have none
    (before the partitions start, or never materialized): they count as zero and are named.
    """
    rows = [documents[d.isoformat()] for d in days if d.isoformat() in documents]
    totals = {field: sum(int(r[field]) for r in rows) for field in COUNTS}
    return {
        "start": days[0].isoformat() if days else None,
        "end": days[-1].isoformat() if days else None,
        "days": rows,
        "totals": totals,
        # distinct users over 30 days are not the sum of daily ones: report the daily peak
        "peak_active_users": max((int(r["active_users"]) for r in rows), default=0),
        "missing_days": sorted(missing),
    }
