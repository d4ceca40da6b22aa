"""Load the bundled sample (read by ``sample.py``) into a migrated database.

Idempotency: seeding an empty database loads everything in one transaction; seeding a database
that already holds every sample recipe does nothing and returns zero counts; any other data in
the site tables (say synthetic recipes) raises `DatabaseNotEmptyError` rather than mixing the
two. Existing units are reused by name, because a site always has them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from cocktail_assets.db.sample import (
    SAMPLE_DAYS,
    SAMPLE_DIR,
    Sample,
    SeedError,
    Unit,
    read_sample,
)

#: Key of the transaction-level advisory lock that serializes seeding and synthesis, so two
#: concurrent runs cannot both see an empty database and both load.
LOAD_LOCK_KEY = 0x636F636B7461696C  # "cocktail"

#: Site tables whose rows make a database "not empty" for seeding and synthesis.
CONTENT_TABLES = (
    "ingredients",
    "recipes",
    "recipe_ingredients",
    "ratings",
    "tags",
    "recipe_tags",
    "user_ingredients",
)

COUNT_KEYS = ("units", *CONTENT_TABLES)

class DatabaseNotEmptyError(SeedError):
    """The database already holds data that loading would mix with."""


def reserve_ids(conn: psycopg.Connection, table: str, n: int) -> list[int]:
    """Draw `n` ids from `table`'s id sequence, so rows can reference each other before COPY."""
    if n == 0:
        return []
    rows = conn.execute(
        "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
        (table, n),
    ).fetchall()
    return sorted(r[0] for r in rows)


def table_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Row counts of the content tables (the site's data, not the analytics' own tables)."""
    return {
        table: conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchone()[0]
        for table in CONTENT_TABLES
    }


def ensure_units(conn: psycopg.Connection, units: list[Unit]) -> tuple[dict[str, int], int]:
    """Map unit names to ids, inserting the missing ones; returns (ids, number inserted)."""
    existing = dict(conn.execute("SELECT name, id FROM units").fetchall())
    missing = [u for u in units if u.name not in existing]
    if missing:
        with conn.cursor().copy(
            "COPY units (name, abbreviation, conversion_to_ml) FROM STDIN"
        ) as copy:
            for u in missing:
                copy.write_row((u.name, u.abbreviation, u.conversion_to_ml))
        existing = dict(conn.execute("SELECT name, id FROM units").fetchall())
    return {u.name: existing[u.name] for u in units}, len(missing)


def _copy(conn: psycopg.Connection, table: str, columns: tuple[str, ...], rows: list[tuple]) -> int:
    """COPY rows into a table in one statement (one change-log entry, not one per row)."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with conn.cursor().copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
    return len(rows)


def seed_sample(conn: psycopg.Connection, *, data_dir: Path = SAMPLE_DIR) -> dict[str, int]:
    """Load the bundled sample into a migrated database in one transaction.

    Parameters
    ----------
    conn
        An open connection; the load runs in ``conn.transaction()`` (a savepoint if the caller
        already has a transaction open, committed at once otherwise).
    data_dir
        Folder of the sample files; the bundled sample by default.

    Returns
    -------
    dict
        Rows inserted per table ('units', 'ingredients', 'recipes', 'recipe_ingredients', 'ratings',
        'tags', 'recipe_tags', 'user_ingredients'); all zero when the sample was already there.

    Raises
    ------
    SampleDataError
        A sample file is malformed (before anything is written).
    DatabaseNotEmptyError
        The site tables hold data other than the sample.
    """
    sample = read_sample(data_dir)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOAD_LOCK_KEY,))
        before = table_counts(conn)
        if any(before.values()):
            names = [r.name for r in sample.recipes]
            # both sides through PostgreSQL's lower(), which may differ from Python's ('É')
            present = conn.execute(
                "SELECT count(*) FROM recipes"
                " WHERE lower(name) IN (SELECT lower(n) FROM unnest(%s::text[]) AS n)",
                (names,),
            ).fetchone()[0]
            if present == len(names):
                return dict.fromkeys(COUNT_KEYS, 0)
            raise DatabaseNotEmptyError(
                f"the database already holds {before['recipes']} recipes and "
                f"{before['ingredients']} ingredients that are not the bundled sample; "
                "seed an empty database"
            )
        return _load(conn, sample)


def _load(conn: psycopg.Connection, sample: Sample) -> dict[str, int]:
    """Insert the whole sample; the caller holds the transaction and the lock."""
    counts = dict.fromkeys(COUNT_KEYS, 0)
    now: datetime = conn.execute("SELECT now() AT TIME ZONE 'utc'").fetchone()[0]
    start = now - timedelta(days=SAMPLE_DAYS)
    unit_ids, counts["units"] = ensure_units(conn, sample.units)

    ids = dict(
        zip(
            (i.key for i in sample.ingredients),
            reserve_ids(conn, "ingredients", len(sample.ingredients)),
            strict=True,
        )
    )
    paths: dict[str, str] = {}
    rows = []
    for ing in sample.ingredients:  # parents first, so a parent's path is always known
        base = paths[ing.parent] if ing.parent else "/"
        paths[ing.key] = f"{base}{ids[ing.key]}/"
        parent_id = ids[ing.parent] if ing.parent else None
        rows.append(
            (
                ids[ing.key],
                ing.name,
                parent_id,
                paths[ing.key],
                ing.allow_substitution,
                ing.percent_abv,
                start,
                start,
            )
        )
    counts["ingredients"] = _copy(
        conn,
        "ingredients",
        (
            "id",
            "name",
            "parent_id",
            "path",
            "allow_substitution",
            "percent_abv",
            "created_at",
            "updated_at",
        ),
        rows,
    )

    n = len(sample.recipes)
    recipe_ids = dict(
        zip((r.name for r in sample.recipes), reserve_ids(conn, "recipes", n), strict=True)
    )
    created = {r.name: now - timedelta(days=r.days_ago) for r in sample.recipes}
    counts["recipes"] = _copy(
        conn,
        "recipes",
        ("id", "name", "instructions", "created_at", "updated_at"),
        [
            (recipe_ids[r.name], r.name, r.instructions, created[r.name], created[r.name])
            for r in sample.recipes
        ],
    )
    counts["recipe_ingredients"] = _copy(
        conn,
        "recipe_ingredients",
        ("recipe_id", "ingredient_id", "unit_id", "amount"),
        [
            (
                recipe_ids[ri.recipe],
                ids[ri.ingredient],
                unit_ids[ri.unit] if ri.unit else None,
                ri.amount,
            )
            for ri in sample.recipe_ingredients
        ],
    )

    tag_names = list(dict.fromkeys(t for r in sample.recipes for t in r.tags))
    tag_ids = dict(zip(tag_names, reserve_ids(conn, "tags", len(tag_names)), strict=True))
    counts["tags"] = _copy(
        conn,
        "tags",
        ("id", "name", "created_at"),
        [(tag_ids[t], t, start) for t in tag_names],
    )
    counts["recipe_tags"] = _copy(
        conn,
        "recipe_tags",
        ("recipe_id", "tag_id"),
        [(recipe_ids[r.name], tag_ids[t]) for r in sample.recipes for t in r.tags],
    )
    counts["ratings"] = _copy(
        conn,
        "ratings",
        ("cognito_user_id", "recipe_id", "rating", "created_at"),
        [
            (r.user, recipe_ids[r.recipe], r.rating, now - timedelta(days=r.days_ago))
            for r in sample.ratings
        ],
    )
    counts["user_ingredients"] = _copy(
        conn,
        "user_ingredients",
        ("cognito_user_id", "ingredient_id", "added_at"),
        [
            (u.user, ids[u.ingredient], now - timedelta(days=u.days_ago))
            for u in sample.user_ingredients
        ],
    )
    return counts
