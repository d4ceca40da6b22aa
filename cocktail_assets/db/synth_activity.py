"""Synthetic site activity over a span of days, for the daily activity metrics.

Users with Zipf-like activity create recipes, rate them, add ingredients to their pantry and
create tags, so the busiest users are active in several ways on the same days. Every timestamp
falls in the ``days`` before the load time, on days weighted by the day of the week (Friday
x1.2, Saturday and Sunday x1.6) and a slow growth over the span; a rating is never earlier than
its recipe. Pure NumPy, seeded separately from the recipes so their rows stay as they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

WEEKDAY_WEIGHT = np.array([1.0, 1.0, 1.0, 1.0, 1.2, 1.6, 1.6])  # Monday .. Sunday
GROWTH = 0.5  # the last day is 1.5x as busy as the first, weekday for weekday
RATINGS_PER_RECIPE = 3.0
PANTRY_PER_USER = 8
USERS_PER_RECIPE = 0.25
ANONYMOUS_RECIPES = 0.2  # imported recipes without a created_by
USER_INGREDIENTS = 0.05  # ingredients suggested by a user (the rest: the catalog team)


@dataclass(frozen=True)
class SyntheticActivity:
    """Activity rows before they meet a database; times are seconds since ``start`` (UTC).

    Attributes
    ----------
    users : list of str, length n_users
    recipe_time, recipe_user : arrays (n_recipes,); user -1 for NULL
    ingredient_time, ingredient_user : arrays (n_ingredients,)
    rating_user, rating_recipe, rating_value, rating_time : arrays (n_ratings,)
    pantry_user, pantry_ingredient, pantry_time : arrays (n_pantry,)
    tag_user, tag_time : arrays (n_tags,); user -1 for a public tag
    """

    start: datetime
    users: list[str]
    recipe_time: np.ndarray
    recipe_user: np.ndarray
    ingredient_time: np.ndarray
    ingredient_user: np.ndarray
    rating_user: np.ndarray
    rating_recipe: np.ndarray
    rating_value: np.ndarray
    rating_time: np.ndarray
    pantry_user: np.ndarray
    pantry_ingredient: np.ndarray
    pantry_time: np.ndarray
    tag_user: np.ndarray
    tag_time: np.ndarray

    def stamp(self, seconds: np.ndarray) -> list[datetime]:
        """Naive UTC datetimes (as the site stores them), to the microsecond."""
        base = np.datetime64(self.start.replace(tzinfo=None), "us")
        return (base + (seconds * 1e6).astype("timedelta64[us]")).astype(object).tolist()


def _sampler(rng: np.random.Generator, start: datetime, end: datetime):
    """Draw n timestamps (seconds after ``start``) in [start, end) with the day weights."""
    first = datetime(start.year, start.month, start.day)
    n_days = (end - first).days + 1
    day0 = np.arange(n_days)
    weekday = (first.weekday() + day0) % 7
    weight = WEEKDAY_WEIGHT[weekday] * (1 + GROWTH * day0 / max(1, n_days - 1))
    p = weight / weight.sum()
    offset = (start - first).total_seconds()
    span = (end - start).total_seconds()

    def draw(n: int) -> np.ndarray:
        out = np.empty(n)
        todo = np.arange(n)
        while todo.size:
            t = rng.choice(n_days, size=todo.size, p=p) * 86400.0 + rng.random(todo.size) * 86400
            t -= offset
            ok = (t >= 0) & (t < span)
            out[todo[ok]] = t[ok]
            todo = todo[~ok]
        return out

    return draw


def generate_activity(
    n_recipes: int, n_ingredients: int, seed: int, days: int, end: datetime
) -> SyntheticActivity:
    """Activity of a synthetic site over the ``days`` before ``end`` (naive UTC)."""
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days!r}")
    rng = np.random.default_rng([seed, 15])
    start = end - timedelta(days=days)
    draw = _sampler(rng, start, end)
    n_users = max(20, round(n_recipes * USERS_PER_RECIPE))
    weight = 1.0 / (np.arange(1, n_users + 1) + 5.0)
    weight /= weight.sum()

    def users(n: int) -> np.ndarray:
        return rng.choice(n_users, size=n, p=weight)

    recipe_time = draw(n_recipes)
    recipe_user = np.where(rng.random(n_recipes) < ANONYMOUS_RECIPES, -1, users(n_recipes))
    ingredient_time = draw(n_ingredients)
    ingredient_user = np.where(rng.random(n_ingredients) < USER_INGREDIENTS,
                               users(n_ingredients), -1)

    n_ratings = round(n_recipes * RATINGS_PER_RECIPE)
    pairs = np.unique(np.stack([users(n_ratings), rng.integers(0, max(1, n_recipes), n_ratings)],
                               axis=1), axis=0) if n_recipes else np.empty((0, 2), dtype=np.int64)
    rating_time = draw(len(pairs))
    for _ in range(8):  # a rating comes after its recipe: redraw the few that do not
        early = rating_time < recipe_time[pairs[:, 1]] if len(pairs) else np.zeros(0, bool)
        if not early.any():
            break
        rating_time[early] = draw(int(early.sum()))
    if len(pairs):
        made = recipe_time[pairs[:, 1]]
        early = rating_time < made
        rating_time[early] = made[early] + rng.random(int(early.sum())) * (
            (end - start).total_seconds() - made[early])
    pantry = np.unique(np.stack([users(n_users * PANTRY_PER_USER),
                                 rng.integers(0, n_ingredients, n_users * PANTRY_PER_USER)],
                                axis=1), axis=0)
    n_tags = max(10, n_recipes // 200)
    return SyntheticActivity(
        start=start,
        users=[f"synthetic-user-{i + 1}" for i in range(n_users)],
        recipe_time=recipe_time, recipe_user=recipe_user,
        ingredient_time=ingredient_time, ingredient_user=ingredient_user,
        rating_user=pairs[:, 0], rating_recipe=pairs[:, 1],
        rating_value=rng.choice(5, size=len(pairs), p=[0.05, 0.1, 0.2, 0.35, 0.3]) + 1,
        rating_time=rating_time,
        pantry_user=pantry[:, 0], pantry_ingredient=pantry[:, 1], pantry_time=draw(len(pantry)),
        tag_user=np.where(rng.random(n_tags) < 0.5, -1, users(n_tags)), tag_time=draw(n_tags),
    )
