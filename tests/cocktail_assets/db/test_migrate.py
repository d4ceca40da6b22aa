"""Migrations on a real PostgreSQL: fresh, adopting a live-like site, twice, racing, broken."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest

from cocktail_assets.db.migrate import MIGRATIONS_DIR, discover, migrate, pending
from cocktail_assets.errors import MigrationError

SITE_TABLES = {
    "ingredients", "units", "recipes", "ratings", "tags", "recipe_tags", "recipe_ingredients",
    "user_ingredients", "analytics_refresh_state", "recipe_similarity",
}

# The live site as SITE_SCHEMA.md describes it (without the extensions pgserver lacks), with its
# own single dirty_at bookkeeping, its own trigger names, and data.
LIVE_SITE = """
CREATE TABLE ingredients (id serial PRIMARY KEY, name text NOT NULL UNIQUE, description text,
  parent_id int REFERENCES ingredients(id), path text, allow_substitution bool NOT NULL DEFAULT false,
  percent_abv numeric, sugar_g_per_l numeric, titratable_acidity_g_per_l numeric, url text,
  created_by text, created_at timestamp, updated_at timestamp);
CREATE TABLE units (id serial PRIMARY KEY, name text UNIQUE NOT NULL, abbreviation text,
  conversion_to_ml real);
CREATE TABLE recipes (id serial PRIMARY KEY, name text UNIQUE NOT NULL, instructions text,
  description text, image_url text, source text, source_url text, avg_rating real,
  rating_count int, created_by text, created_at timestamp, updated_at timestamp);
CREATE TABLE ratings (id serial PRIMARY KEY, cognito_user_id text NOT NULL,
  recipe_id int REFERENCES recipes(id) ON DELETE CASCADE, rating int CHECK (rating BETWEEN 1 AND 5),
  UNIQUE (cognito_user_id, recipe_id));
CREATE TABLE tags (id serial PRIMARY KEY, name text NOT NULL, created_by text, created_at timestamp);
CREATE TABLE recipe_tags (id serial PRIMARY KEY, recipe_id int REFERENCES recipes(id),
  tag_id int REFERENCES tags(id), UNIQUE (recipe_id, tag_id));
CREATE TABLE recipe_ingredients (id serial PRIMARY KEY,
  recipe_id int NOT NULL REFERENCES recipes(id) ON DELETE CASCADE,
  ingredient_id int NOT NULL REFERENCES ingredients(id) ON DELETE RESTRICT,
  unit_id int REFERENCES units(id) ON DELETE SET NULL, amount real);
CREATE TABLE user_ingredients (id serial PRIMARY KEY, cognito_user_id text NOT NULL,
  ingredient_id int REFERENCES ingredients(id), added_at timestamp,
  UNIQUE (cognito_user_id, ingredient_id));
CREATE TABLE analytics_refresh_state (id int PRIMARY KEY, dirty_at timestamp, last_run_at timestamp);
CREATE TABLE recipe_similarity (recipe_id int PRIMARY KEY REFERENCES recipes(id) ON DELETE CASCADE,
  recipe_name text NOT NULL, neighbors jsonb NOT NULL, created_at timestamp);
INSERT INTO analytics_refresh_state VALUES (1, NULL, NULL);
CREATE FUNCTION mark_analytics_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN UPDATE analytics_refresh_state SET dirty_at = now() WHERE id = 1; RETURN NULL; END $$;
CREATE TRIGGER analytics_recipes_dirty AFTER INSERT OR UPDATE OR DELETE ON recipes
  FOR EACH STATEMENT EXECUTE FUNCTION mark_analytics_dirty();
CREATE TRIGGER analytics_ratings_dirty AFTER INSERT OR UPDATE OR DELETE ON ratings
  FOR EACH STATEMENT EXECUTE FUNCTION mark_analytics_dirty();
INSERT INTO ingredients (name, path) VALUES ('Gin', NULL);
UPDATE ingredients SET path = '/' || id || '/';
INSERT INTO units (name, conversion_to_ml) VALUES ('ml', 1), ('to top', NULL);
INSERT INTO recipes (name) VALUES ('Gin Neat'), ('Gin & Tonic');
INSERT INTO recipe_ingredients (recipe_id, ingredient_id, unit_id, amount)
  SELECT r.id, i.id, u.id, 50 FROM recipes r, ingredients i, units u WHERE u.name = 'ml';
INSERT INTO ratings (cognito_user_id, recipe_id, rating) SELECT 'u1', id, 5 FROM recipes;
"""


def _tables(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    ).fetchall()
    return {r[0] for r in rows}


def _site_fingerprint(conn: psycopg.Connection) -> str:
    digest = hashlib.sha256()
    for table in sorted(SITE_TABLES - {"analytics_refresh_state"}):
        rows = conn.execute(f"SELECT to_jsonb(t) - 'created_at' FROM {table} t ORDER BY id"
                            if table != "recipe_similarity" else
                            f"SELECT to_jsonb(t) FROM {table} t ORDER BY recipe_id").fetchall()
        digest.update(repr((table, rows)).encode())
    return digest.hexdigest()


def test_migrate_creates_whole_schema_on_empty_database(empty_db_url: str) -> None:
    applied = migrate(empty_db_url)
    assert [m.name for m in applied] == [m.name for m in discover()]
    with psycopg.connect(empty_db_url) as conn:
        assert SITE_TABLES | {"schema_migrations", "analytics_change_log"} <= _tables(conn)
        recorded = conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
        assert [r[0] for r in recorded] == [m.version for m in discover()]
        assert conn.execute("SELECT id FROM analytics_refresh_state").fetchall() == [(1,)]


def test_migrate_twice_is_a_noop(empty_db_url: str) -> None:
    migrate(empty_db_url)
    assert migrate(empty_db_url) == []
    assert pending(empty_db_url) == []


def test_adopting_a_live_site_adds_tracking_and_keeps_site_data(empty_db_url: str) -> None:
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute(LIVE_SITE)
        before = _site_fingerprint(conn)
    migrate(empty_db_url)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        assert _site_fingerprint(conn) == before
        # The site's trigger was replaced in place, not doubled.
        names = conn.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'recipes'::regclass "
            "AND NOT tgisinternal ORDER BY 1"
        ).fetchall()
        assert [n for n in names if n[0].startswith("analytics_")] == [
            ("analytics_recipes_dirty",)]
        # ... and the per-day activity triggers of 003 were added beside it.
        assert [n[0] for n in names if not n[0].startswith("analytics_")] == [
            "activity_recipes_delete", "activity_recipes_insert", "activity_recipes_update"]
        # Existing ratings keep an unknown date; new ones are stamped.
        assert conn.execute("SELECT count(*) FROM ratings WHERE created_at IS NULL").fetchone() == (2,)
        conn.execute("INSERT INTO ratings (cognito_user_id, recipe_id, rating) "
                     "SELECT 'u2', min(id), 4 FROM recipes")
        assert conn.execute("SELECT count(*) FROM ratings WHERE created_at IS NOT NULL").fetchone() == (1,)
        tables = conn.execute(
            "SELECT table_name FROM analytics_change_log WHERE settled_at IS NULL"
        ).fetchall()
        assert tables == [("ratings",)]
        dirty = conn.execute("SELECT dirty_at FROM analytics_refresh_state").fetchone()
        assert dirty is not None and dirty[0] is not None


def test_two_concurrent_migrate_runs_apply_each_file_once(empty_db_url: str) -> None:
    results: list[object] = []

    def run() -> None:
        try:
            results.append(migrate(empty_db_url))
        except Exception as exc:  # collected and asserted below
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not [r for r in results if isinstance(r, Exception)], results
    applied = sorted(len(r) for r in results)  # type: ignore[arg-type]
    assert applied == [0, len(discover())]
    with psycopg.connect(empty_db_url) as conn:
        count = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
        assert count == (len(discover()),)


def test_broken_migration_stops_naming_its_file_and_is_not_recorded(
    empty_db_url: str, tmp_path: Path
) -> None:
    for migration in discover():
        shutil.copy(migration.path, tmp_path / migration.name)
    (tmp_path / "900_broken.sql").write_text(
        "CREATE TABLE half_done (id int);\nSELECT * FROM no_such_table;\n"
    )
    with pytest.raises(MigrationError, match=r"900_broken\.sql.*no_such_table"):
        migrate(empty_db_url, directory=tmp_path)
    with psycopg.connect(empty_db_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
        assert "900" not in versions and len(versions) == len(discover())
        assert "half_done" not in _tables(conn)


def test_cli_migrate_dry_run_lists_and_a_broken_file_exits_2(empty_db_url: str) -> None:
    cli = [sys.executable, "-m", "cocktail_assets.cli"]
    dry = subprocess.run([*cli, "migrate", "--dry-run", "--database-url", empty_db_url],
                         capture_output=True, text=True, check=True)
    assert [line.split()[-1] for line in dry.stdout.splitlines()] == [
        m.name for m in discover()
    ]
    run = subprocess.run([*cli, "migrate", "--database-url", empty_db_url],
                         capture_output=True, text=True, check=True)
    assert "001_site_schema.sql" in run.stdout
    again = subprocess.run([*cli, "migrate", "--database-url", empty_db_url],
                           capture_output=True, text=True, check=True)
    assert again.stdout.strip() == "up to date"


def test_migration_files_are_numbered_and_unique() -> None:
    names = [p.name for p in sorted(MIGRATIONS_DIR.glob("*.sql"))]
    assert names == [m.name for m in discover()]
    assert len({n[:3] for n in names}) == len(names)
