"""Synthetic data: deterministic per seed, shaped like the real site, fast at 100,000 recipes."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import psycopg
import pytest

from cocktail_assets.db.seed import DatabaseNotEmptyError, seed_sample
from cocktail_assets.db.synth import SynthesisError, generate, synthesize
from tests.cocktail_assets.volume_rule import VOLUME_ML

# Every column but the load-time timestamps.
CONTENT = {
    "units": "id, name, abbreviation, conversion_to_ml",
    "ingredients": "id, name, description, parent_id, path, allow_substitution, percent_abv",
    "recipes": "id, name, instructions, description",
    "recipe_ingredients": "id, recipe_id, ingredient_id, unit_id, amount",
}


def fingerprint(conn: psycopg.Connection) -> dict[str, str]:
    """md5 of each table's rows in id order."""
    return {
        table: conn.execute(
            f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t.id), ''))"
            f" FROM (SELECT {columns} FROM {table}) t"
        ).fetchone()[0]
        for table, columns in CONTENT.items()
    }


def one(conn: psycopg.Connection, query: str):
    return conn.execute(query).fetchone()[0]


def test_same_seed_gives_identical_rows_and_another_seed_does_not(database_factory) -> None:
    prints = []
    for seed in (7, 7, 8):
        with psycopg.connect(database_factory()) as conn:
            synthesize(conn, 2_000, seed)
            prints.append(fingerprint(conn))
    assert prints[0] == prints[1]
    assert prints[0]["recipe_ingredients"] != prints[2]["recipe_ingredients"]
    assert prints[0]["ingredients"] != prints[2]["ingredients"]


def test_generation_is_pure_and_deterministic() -> None:
    a, b, c = generate(500, 3), generate(500, 3), generate(500, 4)
    for field in ("parent", "row_recipe", "row_ingredient", "row_unit", "row_amount"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.names == b.names
    assert not np.array_equal(a.row_ingredient, c.row_ingredient)


def test_twenty_thousand_recipes_have_the_site_shape(db_url: str) -> None:
    messages: list[str] = []
    with psycopg.connect(db_url) as conn:
        counts = synthesize(conn, 20_000, 1, progress=messages.append)
        assert messages and any("recipe_ingredients" in m for m in messages)
        for table in ("ingredients", "recipes", "recipe_ingredients"):
            assert counts[table] == one(conn, f"SELECT count(*) FROM {table}")
        assert counts["recipes"] == 20_000 and counts["ingredients"] >= 500
        assert one(conn, "SELECT min(name) || ' ' || max(name) FROM recipes") == (
            "Synthetic 000001 Synthetic 020000"
        )

        # The tree: four levels, paths that agree with parent_id, ~8 categories.
        assert one(
            conn,
            """SELECT count(*) FROM ingredients c LEFT JOIN ingredients p ON p.id = c.parent_id
               WHERE c.path IS DISTINCT FROM coalesce(p.path, '/') || c.id || '/'""",
        ) == 0
        depths = dict(conn.execute(
            "SELECT array_length(string_to_array(trim(both '/' from path), '/'), 1), count(*)"
            " FROM ingredients GROUP BY 1"
        ).fetchall())
        assert sorted(depths) == [1, 2, 3, 4]
        assert 5 <= depths[1] <= 12 and depths[4] > depths[3] > depths[2] > depths[1]
        leaves, substitutable, inner_subs = conn.execute(
            """
            SELECT count(*) FILTER (WHERE leaf),
                   count(*) FILTER (WHERE leaf AND allow_substitution),
                   count(*) FILTER (WHERE NOT leaf AND allow_substitution)
            FROM (SELECT i.allow_substitution,
                         NOT EXISTS (SELECT 1 FROM ingredients c WHERE c.parent_id = i.id) AS leaf
                  FROM ingredients i) s
            """
        ).fetchone()
        assert 0.2 < substitutable / leaves < 0.4 and inner_subs == 0

        # Recipes: 3..8 distinct ingredients, most often 4 or 5.
        sizes = Counter(dict(conn.execute(
            "SELECT k, count(*) FROM (SELECT count(DISTINCT ingredient_id) AS k"
            " FROM recipe_ingredients GROUP BY recipe_id) s GROUP BY k"
        ).fetchall()))
        assert set(sizes) == set(range(3, 9))
        assert sizes.most_common(1)[0][0] in (4, 5)
        assert sum(sizes.values()) == 20_000
        duplicated = one(
            conn,
            "SELECT count(*) FROM (SELECT 1 FROM recipe_ingredients"
            " GROUP BY recipe_id, ingredient_id HAVING count(*) > 1) d",
        )
        assert 0 < duplicated < 0.01 * counts["recipe_ingredients"]

        # Popularity: skewed, and inner ingredients are used as well as leaves.
        top_share = one(
            conn,
            """
            WITH used AS (SELECT ingredient_id, count(*) AS n FROM recipe_ingredients GROUP BY 1),
                 ranked AS (SELECT n, row_number() OVER (ORDER BY n DESC) AS rank FROM used)
            SELECT sum(n) FILTER (WHERE rank <= (SELECT count(*) / 10 FROM ingredients))::float8
                   / sum(n)
            FROM ranked
            """,
        )
        assert top_share > 0.4
        inner_used = one(
            conn,
            "SELECT count(DISTINCT ri.ingredient_id) FROM recipe_ingredients ri"
            " WHERE EXISTS (SELECT 1 FROM ingredients c WHERE c.parent_id = ri.ingredient_id)",
        )
        assert inner_used > 20

        # Units and amounts: mixed units, ~2 % NULL amounts, every volume positive and finite.
        units = dict(conn.execute(
            "SELECT u.name, count(*) FROM recipe_ingredients ri JOIN units u ON u.id = ri.unit_id"
            " GROUP BY 1"
        ).fetchall())
        for unit in ("ml", "oz", "cl", "dash", "barspoon", "to top", "each"):
            assert units.get(unit, 0) > 0, unit
        rows = sum(units.values())
        assert rows == counts["recipe_ingredients"]
        nulls = one(conn, "SELECT count(*) FROM recipe_ingredients WHERE amount IS NULL")
        assert 0.005 < nulls / rows < 0.05
        assert one(
            conn,
            "SELECT count(*) FROM (SELECT recipe_id FROM recipe_ingredients ri"
            " JOIN units u ON u.id = ri.unit_id WHERE u.name = 'to top'"
            " GROUP BY 1 HAVING count(*) > 1) t",
        ) == 0
        bad = one(
            conn,
            f"""SELECT count(*) FROM recipe_ingredients ri LEFT JOIN units u ON u.id = ri.unit_id
                WHERE NOT ({VOLUME_ML} > 0 AND {VOLUME_ML} < 'Infinity'::float8)""",
        )
        assert bad == 0


def test_refuses_a_database_with_data(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        seed_sample(conn)
        recipes = one(conn, "SELECT count(*) FROM recipes")
        with pytest.raises(DatabaseNotEmptyError, match="synthesize into an empty database"):
            synthesize(conn, 100, 1)
        conn.rollback()
        assert one(conn, "SELECT count(*) FROM recipes") == recipes


def test_existing_units_are_found_by_name(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("INSERT INTO units (name, conversion_to_ml) VALUES ('dash', 0.9)")
        counts = synthesize(conn, 50, 1, n_ingredients=40)
        assert one(conn, "SELECT count(*) FROM units WHERE name = 'dash'") == 1
        assert counts["units"] == one(conn, "SELECT count(*) FROM units") - 1


@pytest.mark.parametrize(
    ("n_recipes", "n_ingredients", "problem"),
    [(-1, 600, "n_recipes"), (10, 5, "n_ingredients"), (2.5, 600, "n_recipes")],
)
def test_bad_parameters_are_named(n_recipes, n_ingredients: int, problem: str) -> None:
    with pytest.raises(SynthesisError, match=problem) as caught:
        generate(n_recipes, 1, n_ingredients)
    assert isinstance(caught.value, ValueError)


@pytest.mark.slow
def test_one_hundred_thousand_recipes_in_under_a_minute(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        started = time.perf_counter()
        counts = synthesize(conn, 100_000, 2024)
        conn.commit()
        elapsed = time.perf_counter() - started
    print(f"synthesize 100,000 recipes ({counts['recipe_ingredients']} rows): {elapsed:.1f} s")
    assert counts["recipes"] == 100_000
    assert elapsed < 60
