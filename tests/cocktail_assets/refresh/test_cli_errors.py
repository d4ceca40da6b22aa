"""Every bad input of issue 12 (findings 3-7), through the real command: one line on stderr
naming the setting, host, row or file, exit status 2, and never the password."""

from __future__ import annotations

import re
import subprocess

import dagster as dg
import pytest

from tests.cocktail_assets.refresh.conftest import CLI, ROOT, Cli

SECRET = "S3cretPW"

# (case, command, environment changes (None: unset), the whole stderr line as a regex)
CASES: list[tuple[str, list[str], dict[str, str | None], str]] = [
    ("url-missing-colon", ["migrate"],
     {"DATABASE_URL": f"postgresql//alice:{SECRET}@db.example.com/site"},
     r"DATABASE_URL is malformed \(missing … after …\); expected postgresql://user:password"
     r"@host:port/dbname or key=value pairs"),
    ("url-open-ipv6", ["migrate"], {"DATABASE_URL": f"postgresql://alice:{SECRET}@[::1/site"},
     r"DATABASE_URL is malformed \(end of string reached when looking for matching … in IPv6 "
     r"host address in URI: …\); expected .*"),
    ("url-bad-escape", ["migrate"],
     {"DATABASE_URL": f"postgresql://alice:{SECRET[:3]}%zz{SECRET[3:]}@db.example.com/site"},
     r"DATABASE_URL is malformed \(invalid percent-encoded token: …\); expected .*"),
    ("debounce-nan", ["status"], {"ANALYTICS_DEBOUNCE_MINUTES": "nan"},
     r"ANALYTICS_DEBOUNCE_MINUTES must be a number from 0 to 10080, got 'nan'"),
    ("debounce-inf", ["status"], {"ANALYTICS_DEBOUNCE_MINUTES": "inf"},
     r"ANALYTICS_DEBOUNCE_MINUTES must be a number from 0 to 10080, got 'inf'"),
    ("max-wait-huge", ["status"], {"ANALYTICS_MAX_WAIT_MINUTES": "1e300"},
     r"ANALYTICS_MAX_WAIT_MINUTES must be a number from 0 to 10080, got '1e300'"),
    ("neighbors-zero", ["refresh"], {"SIMILARITY_NEIGHBORS": "0"},
     r"SIMILARITY_NEIGHBORS must be a whole number from 1 to 200 \(memory grows with it\), "
     r"got '0'"),
    ("neighbors-million", ["refresh"], {"SIMILARITY_NEIGHBORS": "1000000"},
     r"SIMILARITY_NEIGHBORS must be a whole number from 1 to 200 \(memory grows with it\), "
     r"got '1000000'"),
    ("interval-fraction", ["status"], {"ANALYTICS_SENSOR_INTERVAL_SECONDS": "0.5"},
     r"ANALYTICS_SENSOR_INTERVAL_SECONDS must be a whole number from 1 to 3600, got '0.5'"),
    ("dagster-pg-garbage", ["status"], {"DAGSTER_PG_URL": "garbage"},
     r"DAGSTER_PG_URL is malformed; expected postgresql\+psycopg2://user:password@host:port/"
     r"dbname"),
    ("dagster-pg-unreachable", ["refresh"],
     {"DAGSTER_PG_URL": f"postgresql+psycopg2://alice:{SECRET}@127.0.0.1:9/dagster"},
     r"cannot connect to the Dagster instance database 127\.0\.0\.1:9/dagster "
     r"\(DAGSTER_PG_URL\): .*(refused|failed).*"),
    ("production-unset", ["refresh"], {"COCKTAIL_ENV": "production", "DATABASE_URL": None},
     r"COCKTAIL_ENV=production needs DATABASE_URL \(the site database\)"),
    ("site-wrong-user", ["refresh"], {"DATABASE_URL": "wrong-user"},
     r"cannot connect to database .*: .*role \"nobody\" does not exist"),
    ("select-source", ["refresh", "--select", "site/recipes"], {},
     r"--select 'site/recipes' is a site table \(observed, not materialized\): select the "
     r"assets that read it, e\.g\. catalog/recipe_volumes"),
    ("path-cycle", ["refresh", "--select", "catalog/ingredient_catalog"], {},
     r"refresh failed \(run [0-9a-f-]{36}\) in step catalog__ingredient_catalog: ingredients "
     r"table: ingredient \d+: path '/(\d+)/\1/' repeats an id \(cycle\)"),
    ("s3-unreachable", ["refresh", "--select", "analytics/recipe_complexity"],
     {"ANALYTICS_BUCKET": "analytics-nowhere", "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
      "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": SECRET,
      "AWS_DEFAULT_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "1"},
     r"refresh failed \(run [0-9a-f-]{36}\) in step analytics__recipe_complexity: cannot "
     r"write s3://analytics-nowhere/analytics/v1/recipe-complexity\.json: Could not connect "
     r"to the endpoint URL: .*"),
]


def test_case_names_are_unique() -> None:
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(
    "case", [c for c in CASES if c[1][0] in ("migrate", "status") and "DAGSTER_PG_URL" not in c[2]],
    ids=lambda c: c[0],
)
def test_settings_and_urls_in_process(case: tuple) -> None:
    """The settings and URL cases without a subprocess (the fast half of the slow test)."""
    from cocktail_assets.environments import read_settings
    from cocktail_assets.errors import ConfigError

    _name, _args, changes, expected = case
    with pytest.raises(ConfigError) as info:
        read_settings({k: v for k, v in changes.items() if v is not None})
    assert re.fullmatch(expected, str(info.value)), str(info.value)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("url", ["garbage", f"postgresql+psycopg2://a:{SECRET}@127.0.0.1:9/d",
                                 f"postgresql+psycopg2://a:{SECRET}@[::1/d"])
def test_dagster_storage_url_is_checked_in_one_line(url: str) -> None:
    from cocktail_assets.db.connection import check_dagster_storage
    from cocktail_assets.errors import CocktailAssetsError

    with pytest.raises(CocktailAssetsError) as info:
        check_dagster_storage(url)
    text = str(info.value)
    assert text.startswith(("DAGSTER_PG_URL is malformed", "cannot connect to the Dagster "
                            "instance database 127.0.0.1:9/d (DAGSTER_PG_URL): "))
    assert SECRET not in text and "\n" not in text


@pytest.mark.slow
def test_every_bad_input_is_one_line_exit_2_and_no_secret(cli: Cli) -> None:
    """All cases at once (each a real subprocess; they share the seeded test database, whose
    one broken ingredient path only the path-cycle case reads)."""
    cli.sql("UPDATE ingredients SET path = '/' || id || '/' || id || '/' "
            "WHERE id = (SELECT min(id) FROM ingredients)")
    wrong_user = re.sub(r"postgresql://[^@/]*@", "postgresql://nobody@", cli.db_url)
    procs = {}
    for name, args, changes, _ in CASES:
        env = {k: v for k, v in cli.env.items() if changes.get(k, "") is not None}
        env.update({k: v for k, v in changes.items() if v is not None})
        if env.get("DATABASE_URL") == "wrong-user":
            env["DATABASE_URL"] = wrong_user
        procs[name] = subprocess.Popen(
            [CLI, *args], env=env, cwd=ROOT, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
    problems = []
    for name, _args, _changes, expected in CASES:
        out, err = procs[name].communicate(timeout=300)
        lines = err.strip().splitlines()
        if procs[name].returncode != 2 or len(lines) != 1 or not re.fullmatch(
            "cocktail-assets: " + expected, lines[0]
        ):
            problems.append(f"{name}: exit {procs[name].returncode}\n{err}\n{out[-2000:]}")
        if SECRET in out + err:
            problems.append(f"{name}: the secret shows\n{out}\n{err}")
    assert not problems, "\n\n".join(problems)
    # The refused selection created no run, so it reset no backoff.
    with cli.instance() as instance:
        selections = [r.asset_selection for r in instance.get_runs()]
    assert all(s and dg.AssetKey(["site", "recipes"]) not in s for s in selections)
