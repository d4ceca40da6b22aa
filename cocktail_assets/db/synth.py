"""Deterministic synthetic site data at any scale, for benchmarks and load tests.

The bundled sample has 157 recipes; the analytics must also be fast at 100,000. `synthesize`
fills an empty migrated database with a site of the same shape as the real one:

- an ingredient tree four levels deep (about 8 categories, 40 families, 150 styles, the rest
  leaves), named by their place in it ('Synthetic 03', 'Synthetic 03.2', 'Synthetic 03.2.7',
  'Synthetic 03.2.7.4'), about 30 % of the leaves allowing substitution;
- recipes 'Synthetic 000001'... of 3 to 8 distinct ingredients (most often 5), drawn with
  Zipf-like popularity across leaves and inner ingredients alike;
- amounts in the units a category calls for (spirits in ml, oz or cl, one system per recipe;
  bitters in dashes; sodas 'to top'; herbs 'each'; ...), about 2 % NULL amounts and a few
  duplicate ingredient rows, as the live site has.

Everything is generated with one NumPy Generator seeded by `seed` and loaded with COPY in one
transaction, so the same seed on a fresh database gives the same rows, ids included (for a given
NumPy version). Creation times, ratings, pantry additions and tags are spread over the
``activity_days`` before the load (``synth_activity``: weekends busier, users active in several
ways); with ``activity_days=0`` created_at/updated_at are the load time. A database that
already holds ingredients, recipes or other site content is refused (`DatabaseNotEmptyError`)
instead of appended to: mixing synthetic and real recipes would make the analytics
meaningless, and the synthetic names could collide. Units are found by name and created if missing.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import psycopg
from psycopg import sql

from cocktail_assets.db.sample import SeedError, Unit
from cocktail_assets.db.seed import (
    LOAD_LOCK_KEY,
    DatabaseNotEmptyError,
    ensure_units,
    reserve_ids,
    table_counts,
)

if TYPE_CHECKING:
    from cocktail_assets.db.synth_activity import SyntheticActivity

MIN_INGREDIENTS = 20
RECIPE_SIZES = np.arange(3, 9)
RECIPE_SIZE_P = np.array([0.10, 0.24, 0.28, 0.19, 0.12, 0.07])
ZIPF_EXPONENT = 1.0
ZIPF_OFFSET = 3.0  # Zipf-Mandelbrot: the favourite is in ~1 recipe of 5, not in most
SUBSTITUTABLE_LEAVES = 0.3
NULL_AMOUNT_P = 0.01
NULL_SPECIAL_P = 0.15  # 'to top' / 'to rinse' rows written without an amount
DUPLICATE_ROW_P = 0.005
DRAWS_PER_RECIPE = 24  # candidates drawn with replacement, deduplicated to the recipe's size

UNITS = (
    Unit("ml", "ml", 1.0),
    Unit("oz", "oz", 29.5735),
    Unit("cl", "cl", 10.0),
    Unit("dash", "dash", 0.92),
    Unit("drop", "drop", 0.05),
    Unit("barspoon", "bsp", 5.0),
    Unit("teaspoon", "tsp", 4.92892),
    Unit("tablespoon", "tbsp", 14.7868),
    Unit("pinch", "pinch", 0.31),
    Unit("to top", None, None),
    Unit("to rinse", None, None),
    Unit("each", None, None),
)
UNIT_INDEX = {u.name: i for i, u in enumerate(UNITS)}
VOLUME = "volume"  # the recipe's own system: ml, oz or cl
SYSTEMS = ("ml", "oz", "cl")
SYSTEM_P = (0.55, 0.38, 0.07)

# Amount in units of each unit kind (volumes in ml, converted to the recipe's system).
UNIT_AMOUNTS = {
    "dash": ((1, 2, 3, 4), (0.35, 0.4, 0.15, 0.1)),
    "drop": ((2, 3, 5), (0.4, 0.3, 0.3)),
    "barspoon": ((0.5, 1, 2), (0.2, 0.6, 0.2)),
    "teaspoon": ((0.5, 1, 2), (0.2, 0.6, 0.2)),
    "tablespoon": ((0.5, 1), (0.4, 0.6)),
    "pinch": ((1,), (1.0,)),
    "each": ((1, 2, 3, 6, 8), (0.45, 0.2, 0.15, 0.12, 0.08)),
    "to top": ((60, 90, 120), (0.3, 0.4, 0.3)),
    "to rinse": ((5,), (1.0,)),
}


@dataclass(frozen=True)
class Profile:
    """How a top-level category's ingredients are measured, and how strong they are."""

    units: tuple[tuple[str, float], ...]
    volumes_ml: tuple[tuple[float, ...], tuple[float, ...]]
    abv: tuple[float, float] | None
    popularity: float  # weight on top of the Zipf rank: recipes lean on spirits and citrus


PROFILES = (
    Profile(
        ((VOLUME, 0.98), ("to rinse", 0.02)),  # spirits
        ((15, 22.5, 30, 45, 50, 60), (0.08, 0.1, 0.2, 0.27, 0.15, 0.2)),
        (35, 60),
        1.6,
    ),
    Profile(
        ((VOLUME, 0.93), ("barspoon", 0.07)),  # liqueurs
        ((7.5, 10, 15, 20, 22.5, 30), (0.15, 0.1, 0.3, 0.15, 0.15, 0.15)),
        (15, 40),
        1.0,
    ),
    Profile(
        ((VOLUME, 0.85), ("to top", 0.15)),  # wines
        ((15, 22.5, 30, 45, 60), (0.15, 0.15, 0.3, 0.2, 0.2)),
        (11, 20),
        0.6,
    ),
    Profile(
        ((VOLUME, 1.0),),  # juices
        ((10, 15, 20, 22.5, 30, 60), (0.1, 0.25, 0.2, 0.2, 0.2, 0.05)),
        None,
        1.5,
    ),
    Profile(
        ((VOLUME, 0.85), ("barspoon", 0.08), ("teaspoon", 0.05), ("tablespoon", 0.02)),
        ((5, 7.5, 10, 15, 20, 22.5), (0.1, 0.15, 0.2, 0.3, 0.15, 0.1)),
        None,
        1.3,
    ),  # syrups
    Profile(
        (("dash", 0.85), ("drop", 0.1), (VOLUME, 0.05)),  # bitters
        ((5, 7.5, 15), (0.5, 0.3, 0.2)),
        (30, 50),
        0.8,
    ),
    Profile(
        (("to top", 0.5), (VOLUME, 0.5)),  # mixers
        ((60, 90, 120, 150), (0.25, 0.3, 0.3, 0.15)),
        None,
        0.4,
    ),
    Profile(
        (("each", 0.8), ("pinch", 0.1), ("dash", 0.1)),  # fresh, garnish, seasoning
        ((5,), (1.0,)),
        None,
        0.4,
    ),
)


class SynthesisError(SeedError, ValueError):
    """Synthesis was asked for something it cannot make (the message names the parameter)."""


@dataclass(frozen=True)
class Synthetic:
    """A synthetic site before it meets a database; ingredients are indexed 0..n-1.

    Attributes
    ----------
    names, parent, allow_substitution, percent_abv : arrays of shape (n_ingredients,)
        Ordered parents first; ``parent`` is -1 for a category, ``percent_abv`` NaN for NULL.
    level : int array (n_ingredients,)
        1 for categories .. 4 for leaves.
    recipe_names : list of str, length n_recipes
    row_recipe, row_ingredient, row_unit : int arrays of shape (n_rows,)
        Recipe index, ingredient index and index into `UNITS` of each recipe_ingredients row,
        grouped by recipe.
    row_amount : float array (n_rows,)
        Amount in the row's unit, NaN for NULL.
    """

    names: list[str]
    parent: np.ndarray
    level: np.ndarray
    allow_substitution: np.ndarray
    percent_abv: np.ndarray
    recipe_names: list[str]
    row_recipe: np.ndarray
    row_ingredient: np.ndarray
    row_unit: np.ndarray
    row_amount: np.ndarray


def _level_sizes(n: int) -> tuple[int, int, int, int]:
    """Ingredients per level, ~8 / 40 / 150 / rest at 600, every inner node with a child."""
    l1 = max(2, round(n / 75))
    l2 = max(l1, round(n / 15))
    l3 = max(l2, round(n / 4))
    return l1, l2, l3, n - l1 - l2 - l3


def _tree(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Parent index (-1 for roots), level and hierarchical name of each ingredient."""
    sizes = _level_sizes(n)
    parent = np.full(n, -1, dtype=np.int64)
    level = np.repeat(np.arange(1, 5), sizes)
    ordinal = np.zeros(n, dtype=np.int64)
    ordinal[: sizes[0]] = np.arange(sizes[0])
    start = sizes[0]
    prev = np.arange(sizes[0])
    for size in sizes[1:]:
        # every node of the level above gets one child, the rest are spread at random
        first = rng.permutation(prev.size)
        more = rng.integers(0, prev.size, size - prev.size)
        owners = np.sort(np.concatenate([first, more]))
        parent[start : start + size] = prev[owners]
        ordinal[start : start + size] = np.arange(size) - np.searchsorted(owners, owners)
        prev = np.arange(start, start + size)
        start += size
    names: list[str] = []
    for i in range(n):
        p = parent[i]
        names.append(f"Synthetic {ordinal[i] + 1:02d}" if p < 0 else f"{names[p]}.{ordinal[i] + 1}")
    return parent, level, names


def _distinct_draws(
    rng: np.random.Generator, p: np.ndarray, sizes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Draw sizes[r] distinct items for each recipe r with probabilities p (no replacement).

    Returns the flat item indices grouped by recipe and the recipe index of each.
    """
    n_recipes = sizes.size
    draws = rng.choice(p.size, size=(n_recipes, DRAWS_PER_RECIPE), p=p)
    while True:
        order = np.argsort(draws, axis=1, kind="stable")
        ranked = np.take_along_axis(draws, order, axis=1)
        repeat = np.zeros_like(draws, dtype=bool)
        repeat[:, 1:] = ranked[:, 1:] == ranked[:, :-1]
        first = np.empty_like(repeat)
        np.put_along_axis(first, order, ~repeat, axis=1)  # first occurrence, in draw order
        short = first.sum(axis=1) < sizes
        if not short.any():
            break
        draws[short] = rng.choice(p.size, size=(int(short.sum()), DRAWS_PER_RECIPE), p=p)
    keep = first & (np.cumsum(first, axis=1) <= sizes[:, None])
    return draws[keep], np.repeat(np.arange(n_recipes), sizes)


def _in_system(ml: np.ndarray, system: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit index and amount, rounded as a bartender writes it, of volumes in each system."""
    unit = np.array([UNIT_INDEX[s] for s in SYSTEMS])[system]
    amount = np.select(
        [system == 1, system == 2],
        [np.maximum(0.25, np.round(ml / 29.5735 * 4) / 4), np.maximum(0.5, np.round(ml / 5) / 2)],
        ml,
    )
    return unit, amount


def _amounts(
    rng: np.random.Generator, profile: np.ndarray, recipe: np.ndarray, system: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Unit index and amount of each row from its ingredient's profile and recipe's system.

    ``recipe`` (sorted) and ``system`` are per row: the recipe and its volume system.
    """
    n = profile.size
    unit = np.empty(n, dtype=np.int64)
    amount = np.empty(n, dtype=np.float64)
    for k, prof in enumerate(PROFILES):
        rows = np.flatnonzero(profile == k)
        if rows.size == 0:
            continue
        kinds, weights = zip(*prof.units, strict=True)
        kind = rng.choice(len(kinds), size=rows.size, p=np.array(weights) / sum(weights))
        for j, name in enumerate(kinds):
            at = rows[kind == j]
            if at.size == 0:
                continue
            if name == VOLUME:
                values, probs = prof.volumes_ml
                ml = rng.choice(np.array(values, dtype=float), size=at.size, p=probs)
                unit[at], amount[at] = _in_system(ml, system[at])
            else:
                values, probs = UNIT_AMOUNTS[name]
                unit[at] = UNIT_INDEX[name]
                amount[at] = rng.choice(np.array(values, dtype=float), size=at.size, p=probs)
    # A drink is topped up once: further 'to top' rows become measured pours.
    top = np.flatnonzero(unit == UNIT_INDEX["to top"])
    extra = np.delete(top, np.unique(recipe[top], return_index=True)[1])
    ml = rng.choice(np.array([30.0, 60.0, 90.0]), size=extra.size)
    unit[extra], amount[extra] = _in_system(ml, system[extra])
    special = np.isin(unit, [UNIT_INDEX["to top"], UNIT_INDEX["to rinse"]])
    null = rng.random(n) < NULL_AMOUNT_P
    null |= special & (rng.random(n) < NULL_SPECIAL_P)
    amount[null] = np.nan
    return unit, amount


def generate(n_recipes: int, seed: int, n_ingredients: int = 600) -> Synthetic:
    """Generate a synthetic site in memory (pure NumPy, no database)."""
    if not isinstance(n_recipes, int | np.integer) or n_recipes < 0:
        raise SynthesisError(f"n_recipes must be a non-negative integer, got {n_recipes!r}")
    if not isinstance(n_ingredients, int | np.integer) or n_ingredients < MIN_INGREDIENTS:
        raise SynthesisError(
            f"n_ingredients must be an integer of at least {MIN_INGREDIENTS}, got {n_ingredients!r}"
        )
    rng = np.random.default_rng(seed)
    n = int(n_ingredients)
    parent, level, names = _tree(rng, n)

    root = np.arange(n)
    for _ in range(3):
        root = np.where(parent[root] >= 0, parent[root], root)
    profile = root % len(PROFILES)
    allow = (level == 4) & (rng.random(n) < SUBSTITUTABLE_LEAVES)
    abv = np.full(n, np.nan)
    for k, prof in enumerate(PROFILES):
        if prof.abv is not None:
            at = (profile == k) & (level > 1)
            abv[at] = np.round(rng.uniform(*prof.abv, size=int(at.sum())) * 2) / 2

    # Zipf-like popularity over everything below the categories, in a random order.
    usable = np.flatnonzero(level > 1)
    weight = 1.0 / (np.arange(1, usable.size + 1) + ZIPF_OFFSET) ** ZIPF_EXPONENT
    p = np.empty(usable.size)
    p[rng.permutation(usable.size)] = weight
    p *= np.array([prof.popularity for prof in PROFILES])[profile[usable]]
    p /= p.sum()

    sizes = rng.choice(RECIPE_SIZES, size=n_recipes, p=RECIPE_SIZE_P)
    picked, recipe = _distinct_draws(rng, p, sizes)
    ingredient = usable[picked]
    # list a recipe the way a person would: spirits first, then liqueurs, ..., garnish last
    order = np.lexsort((ingredient, profile[ingredient], recipe))
    ingredient, recipe = ingredient[order], recipe[order]

    dup = np.flatnonzero(rng.random(recipe.size) < DUPLICATE_ROW_P)
    position = np.concatenate([np.arange(recipe.size), dup])
    order = np.argsort(position, kind="stable")  # each copy right after its original
    ingredient = np.concatenate([ingredient, ingredient[dup]])[order]
    recipe = np.concatenate([recipe, recipe[dup]])[order]

    system = rng.choice(len(SYSTEMS), size=n_recipes, p=SYSTEM_P)
    unit, amount = _amounts(rng, profile[ingredient], recipe, system[recipe])

    width = max(6, len(str(n_recipes)))
    recipe_names = [f"Synthetic {i:0{width}d}" for i in range(1, n_recipes + 1)]
    return Synthetic(
        names, parent, level, allow, abv, recipe_names, recipe, ingredient, unit, amount
    )


def _copy_text(conn: psycopg.Connection, statement: str, text: str) -> None:
    """COPY tab-separated text in large slices (far faster than one write_row per row)."""
    block = 1 << 22
    with conn.cursor().copy(statement) as copy:
        for start in range(0, len(text), block):
            copy.write(text[start : start + block])


def _format_amounts(amount: np.ndarray) -> list[str]:
    """COPY text for each amount, '\\N' for NULL; formats each distinct value once."""
    values, inverse = np.unique(amount, return_inverse=True)
    text = ["\\N" if np.isnan(v) else format(float(v), "g") for v in values]
    return [text[i] for i in inverse.ravel().tolist()]


def synthesize(
    conn: psycopg.Connection,
    n_recipes: int,
    seed: int,
    *,
    n_ingredients: int = 600,
    progress: Callable[[str], None] | None = None,
    activity_days: int = 365,
) -> dict[str, int]:
    """Fill an empty migrated database with a deterministic synthetic site.

    Parameters
    ----------
    conn
        Open connection; everything is written in ``conn.transaction()``.
    n_recipes
        Number of recipes (100,000 load in well under a minute).
    seed
        Seed of the NumPy Generator: the same seed on a fresh database gives identical rows.
    n_ingredients
        Size of the ingredient tree (at least 20; 600 by default).
    progress
        Called with one line per stage, e.g. the CLI's ``print`` or a Dagster logger.
    activity_days
        Spread creation times, ratings, pantry additions and tags over this many days before
        the load (``synth_activity``); 0 keeps the load time and adds no activity rows.

    Returns
    -------
    dict
        Rows inserted: 'units' (only the missing ones), 'ingredients', 'recipes',
        'recipe_ingredients'.

    Raises
    ------
    SynthesisError
        Invalid n_recipes or n_ingredients.
    DatabaseNotEmptyError
        The site tables already hold data.
    """
    say = progress or (lambda _message: None)
    data = generate(n_recipes, seed, n_ingredients)
    if not isinstance(activity_days, int) or activity_days < 0:
        raise SynthesisError(f"activity_days must be a non-negative integer, got {activity_days!r}")
    activity = None
    now = conn.execute("SELECT (now() AT TIME ZONE 'utc')::timestamp").fetchone()[0]
    if activity_days:
        from cocktail_assets.db.synth_activity import generate_activity

        activity = generate_activity(n_recipes, len(data.names), seed, activity_days, now)
    n, n_rows = len(data.names), data.row_recipe.size
    sizes = _level_sizes(n)
    say(
        f"synth: generated {n} ingredients ({'/'.join(map(str, sizes))} per level), "
        f"{n_recipes} recipes, {n_rows} recipe rows"
    )
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOAD_LOCK_KEY,))
        existing = {t: c for t, c in table_counts(conn).items() if c}
        if existing:
            held = ", ".join(f"{c} {t}" for t, c in existing.items())
            raise DatabaseNotEmptyError(
                f"the database already holds {held}; synthesize into an empty database"
            )
        unit_ids, new_units = ensure_units(conn, list(UNITS))
        unit_id = np.array([unit_ids[u.name] for u in UNITS])

        say(f"synth: loading ingredients 1-{n} of {n}")
        ids = reserve_ids(conn, "ingredients", n)
        paths: list[str] = []
        with conn.cursor().copy(
            "COPY ingredients (id, name, parent_id, path, allow_substitution, percent_abv,"
            " created_at, updated_at, created_by) FROM STDIN"
        ) as copy:
            made = activity.stamp(activity.ingredient_time) if activity else [now] * n
            makers = _users(activity, activity.ingredient_user) if activity else [None] * n
            for i, name in enumerate(data.names):  # parents first: a parent's path is known
                p = int(data.parent[i])
                paths.append(f"{paths[p] if p >= 0 else '/'}{ids[i]}/")
                abv = float(data.percent_abv[i])
                copy.write_row(
                    (
                        ids[i],
                        name,
                        ids[p] if p >= 0 else None,
                        paths[i],
                        bool(data.allow_substitution[i]),
                        None if np.isnan(abv) else abv,
                        made[i],
                        made[i],
                        makers[i],
                    )
                )

        say(f"synth: loading recipes 1-{n_recipes} of {n_recipes}")
        recipe_ids = np.array(reserve_ids(conn, "recipes", n_recipes), dtype=np.int64)
        if activity is None:
            with conn.cursor().copy("COPY recipes (id, name) FROM STDIN") as copy:
                for row in zip(recipe_ids.tolist(), data.recipe_names, strict=True):
                    copy.write_row(row)
        else:
            made = activity.stamp(activity.recipe_time)
            with conn.cursor().copy(
                "COPY recipes (id, name, created_at, updated_at, created_by) FROM STDIN"
            ) as copy:
                for row in zip(recipe_ids.tolist(), data.recipe_names, made, made,
                               _users(activity, activity.recipe_user), strict=True):
                    copy.write_row(row)

        say(f"synth: loading recipe_ingredients 1-{n_rows} of {n_rows}")
        columns = (
            map(str, recipe_ids[data.row_recipe].tolist()),
            map(str, np.array(ids, dtype=np.int64)[data.row_ingredient].tolist()),
            map(str, unit_id[data.row_unit].tolist()),
            _format_amounts(data.row_amount),
        )
        buffer = io.StringIO()
        for r, i, u, a in zip(*columns, strict=True):
            buffer.write(f"{r}\t{i}\t{u}\t{a}\n")
        _copy_text(
            conn,
            "COPY recipe_ingredients (recipe_id, ingredient_id, unit_id, amount) FROM STDIN",
            buffer.getvalue(),
        )

        counts = {}
        if activity is not None:
            say(f"synth: loading {activity_days} days of activity (ratings, pantry, tags)")
            counts = load_activity(conn, activity, recipe_ids, np.array(ids, dtype=np.int64))

        say("synth: analyzing the loaded tables")
        for table in ("ingredients", "recipes", "recipe_ingredients", "units", *counts):
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
    return {
        "units": new_units,
        "ingredients": n,
        "recipes": n_recipes,
        "recipe_ingredients": n_rows,
        **counts,
    }


def _users(activity: SyntheticActivity, index: np.ndarray) -> list[str | None]:
    return [None if i < 0 else activity.users[i] for i in index.tolist()]


def load_activity(
    conn: psycopg.Connection, activity: SyntheticActivity, recipe_ids: np.ndarray,
    ingredient_ids: np.ndarray,
) -> dict[str, int]:
    """COPY the ratings, pantry additions and tags of ``activity`` (a SyntheticActivity).

    The schema's per-row ratings trigger (recipes.avg_rating) is disabled for the load and the
    averages computed in one statement afterwards: one UPDATE per rating would dominate it.
    """
    trigger = conn.execute(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'ratings'::regclass "
        "AND tgname = 'ratings_update_recipe_rating'"
    ).fetchone()
    if trigger:
        conn.execute("ALTER TABLE ratings DISABLE TRIGGER ratings_update_recipe_rating")
    with conn.cursor().copy(
        "COPY ratings (cognito_user_id, recipe_id, rating, created_at) FROM STDIN"
    ) as copy:
        for row in zip(_users(activity, activity.rating_user),
                       recipe_ids[activity.rating_recipe].tolist(),
                       activity.rating_value.tolist(), activity.stamp(activity.rating_time),
                       strict=True):
            copy.write_row(row)
    if trigger:
        conn.execute("ALTER TABLE ratings ENABLE TRIGGER ratings_update_recipe_rating")
        conn.execute(
            "UPDATE recipes r SET avg_rating = s.avg, rating_count = s.n FROM "
            "(SELECT recipe_id, avg(rating)::real AS avg, count(*) AS n FROM ratings "
            "GROUP BY recipe_id) s WHERE s.recipe_id = r.id"
        )
    with conn.cursor().copy(
        "COPY user_ingredients (cognito_user_id, ingredient_id, added_at) FROM STDIN"
    ) as copy:
        for row in zip(_users(activity, activity.pantry_user),
                       ingredient_ids[activity.pantry_ingredient].tolist(),
                       activity.stamp(activity.pantry_time), strict=True):
            copy.write_row(row)
    with conn.cursor().copy("COPY tags (name, created_by, created_at) FROM STDIN") as copy:
        for i, row in enumerate(zip(_users(activity, activity.tag_user),
                                    activity.stamp(activity.tag_time), strict=True)):
            copy.write_row((f"synthetic tag {i + 1}", *row))
    return {
        "ratings": len(activity.rating_time),
        "user_ingredients": len(activity.pantry_time),
        "tags": len(activity.tag_time),
    }
