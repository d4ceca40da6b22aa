"""The bundled sample loads into a real migrated database, once, and makes analytical sense."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from cocktail_assets.db.sample import SAMPLE_DIR, SampleDataError, read_sample
from cocktail_assets.db.seed import DatabaseNotEmptyError, seed_sample
from cocktail_assets.errors import CocktailAssetsError
from tests.cocktail_assets.volume_rule import VOLUME_ML

TABLES = (
    "units", "ingredients", "recipes", "recipe_ingredients", "ratings", "tags", "recipe_tags",
    "user_ingredients",
)


def counts(conn: psycopg.Connection) -> dict[str, int]:
    return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def spec(conn: psycopg.Connection, recipe: str) -> dict[str, tuple[float | None, str | None]]:
    """Ingredient name -> (amount, unit name) of one recipe."""
    rows = conn.execute(
        """
        SELECT i.name, ri.amount, u.name
        FROM recipe_ingredients ri
        JOIN recipes r ON r.id = ri.recipe_id
        JOIN ingredients i ON i.id = ri.ingredient_id
        LEFT JOIN units u ON u.id = ri.unit_id
        WHERE r.name = %s
        """,
        (recipe,),
    ).fetchall()
    assert rows, f"recipe {recipe!r} is missing"
    return {name: (amount, unit) for name, amount, unit in rows}


@pytest.fixture
def seeded(db_url: str):
    with psycopg.connect(db_url) as conn:
        loaded = seed_sample(conn)
        yield conn, loaded


def test_sample_loads_with_the_promised_size(seeded) -> None:
    conn, loaded = seeded
    sample = read_sample()
    assert loaded == counts(conn)
    assert loaded["recipes"] == len(sample.recipes) >= 110
    assert loaded["ingredients"] == len(sample.ingredients) >= 120
    assert loaded["units"] == len(sample.units)
    assert loaded["recipe_ingredients"] == len(sample.recipe_ingredients)
    assert all(loaded[t] > 0 for t in TABLES)


def test_ingredient_tree_paths_match_parents(seeded) -> None:
    conn, _ = seeded
    bad = conn.execute(
        """
        SELECT c.id, c.path, p.path
        FROM ingredients c LEFT JOIN ingredients p ON p.id = c.parent_id
        WHERE c.path IS DISTINCT FROM coalesce(p.path, '/') || c.id || '/'
        """
    ).fetchall()
    assert bad == []
    depth = conn.execute(
        "SELECT max(array_length(string_to_array(trim(both '/' from path), '/'), 1))"
        " FROM ingredients"
    ).fetchone()[0]
    assert depth >= 3
    roots = conn.execute("SELECT count(*) FROM ingredients WHERE parent_id IS NULL").fetchone()[0]
    assert 5 <= roots <= 15
    # Substitution is a property of interchangeable leaves, and some leaves are not.
    subs = dict(
        conn.execute(
            "SELECT name, allow_substitution FROM ingredients WHERE name = ANY(%s)",
            (["London Dry Gin", "Bourbon", "Cointreau", "Campari", "Lime Juice",
              "Angostura Bitters", "Green Chartreuse"],),
        ).fetchall()
    )
    assert subs == {
        "London Dry Gin": True, "Bourbon": True, "Cointreau": True, "Campari": False,
        "Lime Juice": False, "Angostura Bitters": False, "Green Chartreuse": False,
    }


def test_recipes_use_leaves_and_mid_level_ingredients(seeded) -> None:
    conn, _ = seeded
    few = conn.execute(
        "SELECT r.name FROM recipes r LEFT JOIN recipe_ingredients ri ON ri.recipe_id = r.id"
        " GROUP BY r.id HAVING count(DISTINCT ri.ingredient_id) < 2"
    ).fetchall()
    assert few == []
    leaf, inner = conn.execute(
        """
        SELECT count(*) FILTER (WHERE NOT has_children), count(*) FILTER (WHERE has_children)
        FROM (SELECT DISTINCT ri.ingredient_id,
                     EXISTS (SELECT 1 FROM ingredients c WHERE c.parent_id = ri.ingredient_id)
                         AS has_children
              FROM recipe_ingredients ri) used
        """
    ).fetchone()
    assert leaf > 50 and inner >= 5


def test_every_row_has_a_positive_finite_volume(seeded) -> None:
    conn, _ = seeded
    rows = conn.execute(
        f"""
        SELECT r.name, {VOLUME_ML} AS ml
        FROM recipe_ingredients ri
        JOIN recipes r ON r.id = ri.recipe_id
        LEFT JOIN units u ON u.id = ri.unit_id
        """
    ).fetchall()
    bad = [(name, ml) for name, ml in rows if not (0 < ml < float("inf"))]
    assert bad == []
    # A recipe's total is a drink's size: a typo such as 30 oz for 30 ml shows up here.
    totals: dict[str, float] = {}
    for name, ml in rows:
        totals[name] = totals.get(name, 0.0) + ml
    odd = {name: round(ml) for name, ml in totals.items() if not 25 <= ml <= 400}
    assert odd == {}


def test_units_mix_metric_imperial_and_special(seeded) -> None:
    conn, _ = seeded
    used = dict(
        conn.execute(
            "SELECT u.name, count(*) FROM recipe_ingredients ri JOIN units u ON u.id = ri.unit_id"
            " GROUP BY u.name"
        ).fetchall()
    )
    for unit in ("ml", "oz", "cl", "dash", "barspoon", "teaspoon", "drop", "to top", "to rinse",
                 "each"):
        assert used.get(unit, 0) > 0, unit
    conversions = dict(conn.execute("SELECT name, conversion_to_ml FROM units").fetchall())
    assert conversions["oz"] == pytest.approx(29.5735)
    assert conversions["to top"] is None and conversions["each"] is None
    nulls = conn.execute("SELECT count(*) FROM recipe_ingredients WHERE amount IS NULL")
    assert nulls.fetchone()[0] >= 3


def test_classic_specs(seeded) -> None:
    conn, _ = seeded
    assert spec(conn, "Negroni") == {
        "Gin": (30, "ml"), "Campari": (30, "ml"), "Sweet Vermouth": (30, "ml"),
    }
    manhattan = spec(conn, "Manhattan")
    assert manhattan["Rye Whiskey"] == (2, "oz")
    assert manhattan["Angostura Bitters"] == (2, "dash")
    vermouth = conn.execute(
        "SELECT p.name FROM ingredients c JOIN ingredients p ON p.id = c.parent_id"
        " WHERE c.name = 'Carpano Antica Formula'"
    ).fetchone()[0]
    assert vermouth == "Sweet Vermouth" and manhattan["Carpano Antica Formula"] == (1, "oz")
    assert spec(conn, "Daiquiri") == {
        "White Rum": (2, "oz"), "Lime Juice": (1, "oz"), "Simple Syrup": (0.75, "oz"),
    }
    old_fashioned = spec(conn, "Old Fashioned")
    assert old_fashioned["Sugar Cube"] == (1, "each")
    assert old_fashioned["Angostura Bitters"] == (2, "dash")
    assert spec(conn, "Sazerac")["Absinthe"] == (None, "to rinse")
    assert spec(conn, "French 75")["Champagne"][1] == "to top"
    assert spec(conn, "Mojito")["Soda Water"] == (None, "to top")
    assert spec(conn, "Mojito")["Mint"][1] == "each"
    last_word = spec(conn, "Last Word")
    assert len(last_word) == 4 and set(last_word.values()) == {(0.75, "oz")}
    assert spec(conn, "Margarita") == {
        "Blanco Tequila": (50, "ml"), "Cointreau": (20, "ml"), "Lime Juice": (15, "ml"),
    }


def test_tricky_names_round_trip(seeded) -> None:
    conn, _ = seeded
    for name in ("Dark 'n' Stormy", "Piña Colada", "Café Brûlot", "Vieux Carré",
                 "Champs-Élysées", "Corpse Reviver #2", "Army & Navy"):
        assert conn.execute("SELECT count(*) FROM recipes WHERE name = %s", (name,)).fetchone()[0]
    dupes = conn.execute(
        "SELECT lower(name) FROM recipes GROUP BY 1 HAVING count(*) > 1"
    ).fetchall()
    assert dupes == []


def test_activity_spreads_over_the_last_30_days(seeded) -> None:
    conn, _ = seeded
    now = conn.execute("SELECT now() AT TIME ZONE 'utc'").fetchone()[0]
    for table, column in (("ratings", "created_at"), ("recipes", "created_at"),
                          ("user_ingredients", "added_at")):
        oldest, newest, days = conn.execute(
            f"SELECT min({column}), max({column}), count(DISTINCT {column}::date) FROM {table}"
        ).fetchone()
        assert (now - oldest).days <= 30 and newest <= now, table
        assert days >= 10, table
    early = conn.execute(
        "SELECT count(*) FROM ratings g JOIN recipes r ON r.id = g.recipe_id"
        " WHERE g.created_at < r.created_at"
    ).fetchone()[0]
    assert early == 0
    users = conn.execute("SELECT DISTINCT cognito_user_id FROM ratings").fetchall()
    assert all(u.startswith("sample-user-") for (u,) in users)
    rated = conn.execute(
        "SELECT count(*) FROM recipes r WHERE rating_count = "
        "(SELECT count(*) FROM ratings g WHERE g.recipe_id = r.id)"
        " AND (rating_count = 0 OR avg_rating IS NOT NULL)"
    ).fetchone()[0]
    assert rated == conn.execute("SELECT count(*) FROM recipes").fetchone()[0]
    tags = {t for (t,) in conn.execute("SELECT name FROM tags")}
    assert {"Classic", "Tiki", "Sour"} <= tags
    per_tag = conn.execute(
        "SELECT count(*) FROM recipe_tags rt JOIN tags t ON t.id = rt.tag_id"
        " WHERE t.name = 'Tiki'"
    ).fetchone()[0]
    assert per_tag >= 5


def test_seeding_twice_changes_nothing(seeded) -> None:
    conn, _ = seeded
    conn.commit()
    before = counts(conn)
    again = seed_sample(conn)
    assert set(again.values()) == {0}
    assert counts(conn) == before


def test_existing_units_are_reused(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("INSERT INTO units (name, conversion_to_ml) VALUES ('oz', 29.57)")
        loaded = seed_sample(conn)
        assert loaded["units"] == len(read_sample().units) - 1
        assert conn.execute("SELECT count(*) FROM units WHERE name = 'oz'").fetchone()[0] == 1


def test_other_data_is_refused_and_left_alone(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("INSERT INTO recipes (name) VALUES ('House Special')")
        conn.commit()
        with pytest.raises(DatabaseNotEmptyError, match="1 recipes") as caught:
            seed_sample(conn)
        assert isinstance(caught.value, CocktailAssetsError)
        conn.rollback()
        assert counts(conn)["recipes"] == 1 and counts(conn)["ingredients"] == 0


BAD_ROWS = [
    ("recipe_ingredients.csv", "Negroni,30,ml,unobtainium", "ingredient 'unobtainium'"),
    ("recipe_ingredients.csv", "Negroni,30,jigger,gin", "unit 'jigger'"),
    ("recipe_ingredients.csv", "Negroni,-30,ml,gin", "amount '-30'"),
    ("recipe_ingredients.csv", "Negroni,lots,ml,gin", "amount 'lots'"),
    ("recipe_ingredients.csv", "Mystery Drink,30,ml,gin", "recipe 'Mystery Drink'"),
    ("ingredients.csv", "yuzu_sake,Yuzu Sake,sake,false,10", "parent 'sake'"),
    ("ingredients.csv", "gin2,GIN,spirits,false,40", "duplicate ingredient name 'GIN'"),
    ("ingredients.csv", "x,X,spirits,maybe,", "allow_substitution 'maybe'"),
    ("recipes.csv", "negroni,1,Classic,Stir.", "duplicate recipe name 'negroni'"),
    ("units.csv", "jigger,jig,zero", "conversion_to_ml 'zero'"),
    ("ratings.csv", "sample-user-1,Negroni,6,1", "rating '6'"),
    ("ratings.csv", "sample-user-1,Brandy Flip,4,2", "before 'Brandy Flip' was created"),
]


@pytest.mark.parametrize(("file", "row", "problem"), BAD_ROWS)
def test_malformed_file_names_file_and_row(
    db_url: str, tmp_path: Path, file: str, row: str, problem: str
) -> None:
    data = tmp_path / "sample"
    shutil.copytree(SAMPLE_DIR, data)
    target = data / file
    text = target.read_text(encoding="utf-8")
    assert text.endswith("\n")
    line = text.count("\n") + 1
    target.write_text(text + row + "\n", encoding="utf-8")
    with psycopg.connect(db_url) as conn:
        with pytest.raises(SampleDataError) as caught:
            seed_sample(conn, data_dir=data)
        assert isinstance(caught.value, ValueError)
        message = str(caught.value)
        assert message.startswith(f"{file} line {line}:"), message
        assert problem in message
        assert counts(conn)["recipes"] == 0


def test_ancestor_cycle_is_reported(tmp_path: Path) -> None:
    data = tmp_path / "sample"
    shutil.copytree(SAMPLE_DIR, data)
    target = data / "ingredients.csv"
    target.write_text(
        target.read_text(encoding="utf-8") + "a,A,b,false,\nb,B,a,false,\n", encoding="utf-8"
    )
    with pytest.raises(SampleDataError, match="its own ancestor"):
        read_sample(data)


def test_recipe_without_ingredients_is_reported(tmp_path: Path) -> None:
    data = tmp_path / "sample"
    shutil.copytree(SAMPLE_DIR, data)
    target = data / "recipes.csv"
    text = target.read_text(encoding="utf-8")
    target.write_text(text + "Empty Glass,0,Classic,Nothing.\n", encoding="utf-8")
    with pytest.raises(SampleDataError, match=rf"recipes.csv line {text.count(chr(10)) + 1}:"):
        read_sample(data)
