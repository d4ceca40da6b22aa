"""Load the bundled sample of classic cocktails into a migrated database.

The sample (``cocktail_assets/db/sample/*.csv``) gives the embedded default, the tests and a
newcomer a small, real-looking site: about 150 classic cocktails with their usual specs, an
ingredient tree four levels deep and a month of ratings and pantry activity.

Files, all UTF-8 CSV with a header row, so a diff of a spec change reads like the change:

- ``units.csv``: name, abbreviation, conversion_to_ml (empty for 'to top', 'to rinse', 'each').
- ``ingredients.csv``: key, name, parent (another row's key, empty for a root),
  allow_substitution (true/false), percent_abv. Keys are only used inside these files; the
  database assigns ids, and ``path`` ('/<root id>/.../<own id>/') is computed from them.
- ``recipes.csv``: name, days_ago (when the recipe was created, 0..30 days before the load),
  tags (';'-separated), instructions.
- ``recipe_ingredients.csv``: recipe (name), amount (empty = NULL), unit (name), ingredient (key).
- ``ratings.csv``: user, recipe, rating (1..5), days_ago (not before the recipe's);
  ``user_ingredients.csv``: user, ingredient, days_ago. Users become cognito_user_id values such
  as 'sample-user-3'. Times are relative to the load, so the activity is always recent.

Idempotency: seeding an empty database loads everything in one transaction; seeding a database
that already holds every sample recipe does nothing and returns zero counts; any other data in
the site tables (say synthetic recipes) raises `DatabaseNotEmptyError` rather than mixing the
two. Existing units are reused by name, because a site always has them.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from cocktail_assets.errors import CocktailAssetsError

SAMPLE_DIR = Path(__file__).with_name("sample")

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

SAMPLE_DAYS = 30
COUNT_KEYS = ("units", *CONTENT_TABLES)


class SeedError(CocktailAssetsError):
    """A user-caused failure to load sample or synthetic data (bad file, wrong database)."""


class SampleDataError(SeedError, ValueError):
    """A sample data file is malformed; the message names the file and line."""

    def __init__(self, path: Path, line: int, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        super().__init__(f"{path.name} line {line}: {problem}")


class DatabaseNotEmptyError(SeedError):
    """The database already holds data that loading would mix with."""


@dataclass(frozen=True)
class Unit:
    name: str
    abbreviation: str | None
    conversion_to_ml: float | None


@dataclass(frozen=True)
class Ingredient:
    key: str
    name: str
    parent: str | None
    allow_substitution: bool
    percent_abv: float | None


@dataclass(frozen=True)
class Recipe:
    name: str
    days_ago: float
    tags: tuple[str, ...]
    instructions: str | None


@dataclass(frozen=True)
class RecipeIngredient:
    recipe: str
    amount: float | None
    unit: str | None
    ingredient: str


@dataclass(frozen=True)
class Rating:
    user: str
    recipe: str
    rating: int
    days_ago: float


@dataclass(frozen=True)
class UserIngredient:
    user: str
    ingredient: str
    days_ago: float


@dataclass(frozen=True)
class Sample:
    """The parsed and cross-checked sample; ingredients are ordered parents first."""

    units: list[Unit]
    ingredients: list[Ingredient]
    recipes: list[Recipe]
    recipe_ingredients: list[RecipeIngredient]
    ratings: list[Rating]
    user_ingredients: list[UserIngredient]


def _rows(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, stripped row) of a CSV file whose header has `columns`."""
    if not path.is_file():
        raise SampleDataError(path, 0, "file is missing")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise SampleDataError(path, 1, f"header lacks column(s) {', '.join(missing)}")
        for row in reader:
            if None in row:
                raise SampleDataError(path, reader.line_num, "more fields than the header")
            yield reader.line_num, {k: (v or "").strip() for k, v in row.items()}


def _number(
    path: Path, line: int, column: str, text: str, *, low: float, high: float = math.inf
) -> float | None:
    """Parse an optional number in [low, high]; empty text is NULL."""
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise SampleDataError(path, line, f"{column} {text!r} is not a number") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise SampleDataError(path, line, f"{column} {text!r} is outside [{low}, {high}]")
    return value


def _required(path: Path, line: int, row: dict[str, str], column: str) -> str:
    if not row[column]:
        raise SampleDataError(path, line, f"{column} is empty")
    return row[column]


def _unique(path: Path, line: int, seen: set[str], value: str, what: str) -> None:
    """Record `value` (case-insensitively, like the site's citext names) or reject a repeat."""
    if value.casefold() in seen:
        raise SampleDataError(path, line, f"duplicate {what} {value!r}")
    seen.add(value.casefold())


def _read_units(path: Path) -> list[Unit]:
    units: list[Unit] = []
    seen: set[str] = set()
    for line, row in _rows(path, ("name", "abbreviation", "conversion_to_ml")):
        name = _required(path, line, row, "name")
        _unique(path, line, seen, name, "unit")
        conversion = _number(path, line, "conversion_to_ml", row["conversion_to_ml"], low=1e-9)
        units.append(Unit(name, row["abbreviation"] or None, conversion))
    return units


def _read_ingredients(path: Path) -> list[Ingredient]:
    """Parse ingredients and order them parents first (the file may list a child first)."""
    by_key: dict[str, Ingredient] = {}
    lines: dict[str, int] = {}
    names: set[str] = set()
    for line, row in _rows(path, ("key", "name", "parent", "allow_substitution", "percent_abv")):
        key = _required(path, line, row, "key")
        if key in by_key:
            raise SampleDataError(path, line, f"duplicate key {key!r}")
        name = _required(path, line, row, "name")
        _unique(path, line, names, name, "ingredient name")
        flag = row["allow_substitution"].lower()
        if flag not in ("true", "false"):
            raise SampleDataError(path, line, f"allow_substitution {flag!r} is not true/false")
        abv = _number(path, line, "percent_abv", row["percent_abv"], low=0, high=100)
        by_key[key] = Ingredient(key, name, row["parent"] or None, flag == "true", abv)
        lines[key] = line
    ordered: list[Ingredient] = []
    state: dict[str, str] = {}  # key -> "visiting" | "done"

    def visit(key: str) -> None:
        if state.get(key) == "done":
            return
        if state.get(key) == "visiting":
            raise SampleDataError(path, lines[key], f"ingredient {key!r} is its own ancestor")
        state[key] = "visiting"
        parent = by_key[key].parent
        if parent is not None:
            if parent not in by_key:
                raise SampleDataError(path, lines[key], f"parent {parent!r} is not a known key")
            visit(parent)
        state[key] = "done"
        ordered.append(by_key[key])

    for key in by_key:
        visit(key)
    return ordered


def _days_ago(path: Path, line: int, row: dict[str, str]) -> float:
    text = _required(path, line, row, "days_ago")
    return float(_number(path, line, "days_ago", text, low=0, high=SAMPLE_DAYS) or 0.0)


def _read_recipes(path: Path) -> list[Recipe]:
    recipes: list[Recipe] = []
    seen: set[str] = set()
    for line, row in _rows(path, ("name", "days_ago", "tags", "instructions")):
        name = _required(path, line, row, "name")
        _unique(path, line, seen, name, "recipe name")
        days = _days_ago(path, line, row)
        tags = tuple(dict.fromkeys(t.strip() for t in row["tags"].split(";") if t.strip()))
        recipes.append(Recipe(name, days, tags, row["instructions"] or None))
    return recipes


def read_sample(data_dir: Path = SAMPLE_DIR) -> Sample:
    """Parse and cross-check the sample files without touching a database.

    Raises
    ------
    SampleDataError
        On the first malformed row, naming its file and line.
    """
    data_dir = Path(data_dir)
    units = _read_units(data_dir / "units.csv")
    ingredients = _read_ingredients(data_dir / "ingredients.csv")
    recipes = _read_recipes(data_dir / "recipes.csv")
    unit_names = {u.name for u in units}
    ingredient_keys = {i.key for i in ingredients}
    recipe_age = {r.name: r.days_ago for r in recipes}
    recipe_names = recipe_age.keys()

    path = data_dir / "recipe_ingredients.csv"
    rows: list[RecipeIngredient] = []
    for line, row in _rows(path, ("recipe", "amount", "unit", "ingredient")):
        recipe = _required(path, line, row, "recipe")
        if recipe not in recipe_names:
            raise SampleDataError(path, line, f"recipe {recipe!r} is not in recipes.csv")
        ingredient = _required(path, line, row, "ingredient")
        if ingredient not in ingredient_keys:
            raise SampleDataError(path, line, f"ingredient {ingredient!r} is not a known key")
        unit = row["unit"] or None
        if unit is not None and unit not in unit_names:
            raise SampleDataError(path, line, f"unit {unit!r} is not in units.csv")
        amount = _number(path, line, "amount", row["amount"], low=1e-9)
        rows.append(RecipeIngredient(recipe, amount, unit, ingredient))
    used = {r.recipe for r in rows}
    for line, recipe in enumerate(recipes, start=2):
        if recipe.name not in used:
            raise SampleDataError(
                data_dir / "recipes.csv", line, f"recipe {recipe.name!r} has no ingredients"
            )

    path = data_dir / "ratings.csv"
    ratings: list[Rating] = []
    pairs: set[str] = set()
    for line, row in _rows(path, ("user", "recipe", "rating", "days_ago")):
        user = _required(path, line, row, "user")
        recipe = _required(path, line, row, "recipe")
        if recipe not in recipe_names:
            raise SampleDataError(path, line, f"recipe {recipe!r} is not in recipes.csv")
        if row["rating"] not in ("1", "2", "3", "4", "5"):
            raise SampleDataError(path, line, f"rating {row['rating']!r} is not 1..5")
        _unique(path, line, pairs, f"{user}\t{recipe}", "rating of user and recipe")
        days = _days_ago(path, line, row)
        if days > recipe_age[recipe]:
            raise SampleDataError(
                path,
                line,
                f"rated {days:g} days ago, before {recipe!r} was created "
                f"({recipe_age[recipe]:g} days ago)",
            )
        ratings.append(Rating(user, recipe, int(row["rating"]), days))

    path = data_dir / "user_ingredients.csv"
    owned: list[UserIngredient] = []
    pairs = set()
    for line, row in _rows(path, ("user", "ingredient", "days_ago")):
        user = _required(path, line, row, "user")
        ingredient = _required(path, line, row, "ingredient")
        if ingredient not in ingredient_keys:
            raise SampleDataError(path, line, f"ingredient {ingredient!r} is not a known key")
        _unique(path, line, pairs, f"{user}\t{ingredient}", "user ingredient")
        owned.append(UserIngredient(user, ingredient, _days_ago(path, line, row)))

    return Sample(units, ingredients, recipes, rows, ratings, owned)


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
