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

This module reads and validates the files; ``seed.py`` loads them.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cocktail_assets.errors import CocktailAssetsError

SAMPLE_DIR = Path(__file__).with_name("sample")

SAMPLE_DAYS = 30


class SeedError(CocktailAssetsError):
    """A user-caused failure to load sample or synthetic data (bad file, wrong database)."""


class SampleDataError(SeedError, ValueError):
    """A sample data file is malformed; the message names the file and line."""

    def __init__(self, path: Path, line: int, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        super().__init__(f"{path.name} line {line}: {problem}")


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
