"""Validate, then publish: how every published asset declares and evaluates its checks.

A published asset computes its result, evaluates its checks on that result in memory, and
writes only when every ERROR check passed (README, "Checks that guard the site"). When one
fails, ``gate`` yields the results (so the instance records them with their metadata) and raises
a ``Failure`` naming the check and the offending rows, before anything is written: the previous
artifact stays, the downstream steps do not run, the run fails and so settles no edits.

ERROR checks are declared ``blocking``: besides our own refusal to write, Dagster then fails a
step whose ERROR check failed after an output and skips what depends on it, and declarative
automation (``all_deps_blocking_checks_passed``) reads the same flag. WARN checks are for a
person to look at; the site still gets the artifact.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import dagster as dg

SHOWN = 20  # offending rows named in a message and in the check's metadata

# The asset tag of what the site reads (the five JSON artifacts, the EM arrays,
# recipe_similarity): ``cocktail-assets status`` and the freshness policy find them by it.
PUBLISHED_TAG = "cocktail-assets/published"
PUBLISHED = {PUBLISHED_TAG: "true"}


def error_check(asset: dg.AssetKey, name: str, description: str) -> dg.AssetCheckSpec:
    """A check that must pass for the asset to be published (blocking)."""
    return dg.AssetCheckSpec(name, asset=asset, description=description, blocking=True)


def warn_check(asset: dg.AssetKey, name: str, description: str) -> dg.AssetCheckSpec:
    """A check for a person to look at; it never stops the publication."""
    return dg.AssetCheckSpec(name, asset=asset, description=description, blocking=False)


def _plain(value: Any) -> Any:
    """JSON-ready: NumPy scalars and tuples become Python numbers and lists."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def verdict(
    name: str,
    offending: Sequence[Any],
    what: str,
    *,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    metadata: Mapping[str, Any] | None = None,
) -> dg.AssetCheckResult:
    """The result of check ``name``: it passes when ``offending`` is empty.

    ``what`` says in a few words what the offending rows are ("recipes missing or repeated");
    the description and metadata name the first ``SHOWN`` of them.
    """
    rows = [_plain(v) for v in list(offending)[:SHOWN]]
    count = len(offending)
    more = f" and {count - len(rows)} more" if count > len(rows) else ""
    return dg.AssetCheckResult(
        check_name=name,
        passed=count == 0,
        severity=severity,
        description=f"{what}: {rows}{more}" if count else None,
        metadata={"offending": rows, "offending_count": count, **(metadata or {})},
    )


def gate(asset: dg.AssetKey, results: Iterable[dg.AssetCheckResult]) -> Iterator[Any]:
    """Nothing when every ERROR check of ``results`` passed; otherwise every result, then a
    ``Failure`` (one line: the asset, each failed check and its offending rows)."""
    results = list(results)
    failed = [r for r in results if not r.passed and r.severity == dg.AssetCheckSeverity.ERROR]
    if not failed:
        return
    yield from results
    reasons = "; ".join(f"check {r.check_name} failed: {r.description}" for r in failed)
    raise dg.Failure(
        description=f"{asset.to_user_string()} not published: {reasons}",
        metadata={"failed_checks": [r.check_name for r in failed]},
        allow_retries=False,
    )


def repeated_or_missing(got: Sequence[int], expected: Sequence[int]) -> list[int]:
    """Ids of ``expected`` not in ``got`` exactly once, and ids of ``got`` not expected."""
    counts: dict[int, int] = {}
    for value in got:
        counts[int(value)] = counts.get(int(value), 0) + 1
    want = {int(v) for v in expected}
    bad = {v for v in want if counts.get(v, 0) != 1} | (set(counts) - want)
    return sorted(bad)
