"""What the published artifacts must contain, computed from the database in SQL (and plain
Python over the rows), independently of the project's code."""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass, field

import psycopg

from tests.cocktail_assets.volume_rule import VOLUME_ML

# The tree as docs/analytics.md#inputs defines it: a node's parent is the second-last id of its path.
_TREE = """
WITH parts AS (
    SELECT id, name::text AS name, path, allow_substitution,
           string_to_array(trim(both '/' from path), '/')::int[] AS chain
    FROM ingredients
)
SELECT id, name, path, allow_substitution, chain,
       CASE WHEN cardinality(chain) > 1 THEN chain[cardinality(chain) - 1] END AS parent
FROM parts ORDER BY id
"""

_USAGE = """
SELECT i.id,
       (SELECT count(DISTINCT ri.recipe_id) FROM recipe_ingredients ri
         WHERE ri.ingredient_id = i.id) AS direct,
       (SELECT count(DISTINCT ri.recipe_id) FROM recipe_ingredients ri
          JOIN ingredients d ON d.id = ri.ingredient_id
         WHERE starts_with(d.path, i.path)) AS hierarchical,
       EXISTS (SELECT 1 FROM ingredients c WHERE c.parent_id = i.id) AS has_children
FROM ingredients i ORDER BY i.id
"""

_COMPLEXITY = """
SELECT n, count(*) FROM (
    SELECT recipe_id, count(DISTINCT ingredient_id) AS n FROM recipe_ingredients GROUP BY 1
) per_recipe GROUP BY n ORDER BY n
"""

# The volume rule (docs/analytics.md#volume-rule), first match wins; duplicate rows of a recipe summed.
_VOLUMES = f"""
SELECT ri.recipe_id, ri.ingredient_id,
       sum({VOLUME_ML}) AS ml,
       bool_or(coalesce(lower(u.name) = 'each', false)) AS each
FROM recipe_ingredients ri LEFT JOIN units u ON u.id = ri.unit_id
GROUP BY 1, 2
"""


@dataclass
class Node:
    id: int
    name: str
    path: str
    allow_substitution: bool
    chain: list[int]
    parent: int | None
    direct: int = 0
    hierarchical: int = 0
    has_children: bool = False


@dataclass
class Expected:
    nodes: dict[int, Node]
    recipe_names: dict[int, str]
    complexity: list[tuple[int, int]]
    # (recipe, ingredient) -> (ml, each) for every recipe with rows
    volumes: dict[int, dict[int, tuple[float, bool]]]
    recipes_with_rows: set[int] = field(default_factory=set)

    # -- derived ---------------------------------------------------------------------------
    @property
    def roots(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.parent is None]

    def children(self, node_id: int | None) -> list[Node]:
        return [n for n in self.nodes.values() if n.parent == node_id]

    @property
    def space_recipes(self) -> list[int]:
        """Recipes whose volumes sum to more than 0, ascending."""
        return sorted(r for r, items in self.volumes.items()
                      if sum(ml for ml, _ in items.values()) > 0)

    def ingredient_list(self, recipe_id: int) -> list[str]:
        items = self.volumes[recipe_id]
        order = sorted(items, key=lambda i: (items[i][1], -items[i][0], self.nodes[i].name))
        return [self.nodes[i].name for i in order]

    def fractions(self, recipe_id: int) -> dict[int, float]:
        items = self.volumes[recipe_id]
        total = sum(ml for ml, _ in items.values())
        return {i: ml / total for i, (ml, _) in items.items() if ml > 0}

    @functools.cached_property
    def _parents(self) -> set[int]:
        return {n.parent for n in self.nodes.values() if n.parent is not None}

    def is_leaf(self, ingredient_id: int) -> bool:
        return ingredient_id not in self._parents

    def rolled(self, ingredient_id: int) -> int:
        node = self.nodes[ingredient_id]
        if node.allow_substitution and node.parent is not None and self.is_leaf(ingredient_id):
            return node.parent
        return ingredient_id

    def rolled_ingredients(self, recipe_id: int) -> set[int]:
        return {self.rolled(i) for i in self.fractions(recipe_id)}

    def cost_ids(self) -> list[int]:
        """Ingredients used after rollup plus all their ancestors."""
        used = {i for r in self.space_recipes for i in self.rolled_ingredients(r)}
        return sorted({a for i in used for a in self.nodes[i].chain})

    def tree_distance(self, a: int, b: int) -> float:
        ca, cb = self.nodes[a].chain, self.nodes[b].chain
        common = 0
        while common < min(len(ca), len(cb)) and ca[common] == cb[common]:
            common += 1
        return float(len(ca) + len(cb) - 2 * common)

    @property
    def depth(self) -> int:
        return max((len(n.chain) for n in self.nodes.values()), default=0)


def expected(db_url: str) -> Expected:
    with psycopg.connect(db_url) as conn:
        nodes = {
            row[0]: Node(row[0], row[1], row[2], row[3], list(row[4]), row[5])
            for row in conn.execute(_TREE)
        }
        for iid, direct, hierarchical, has_children in conn.execute(_USAGE):
            node = nodes[iid]
            node.direct, node.hierarchical, node.has_children = direct, hierarchical, has_children
        names = dict(conn.execute("SELECT id, name::text FROM recipes"))
        complexity = [(int(n), int(c)) for n, c in conn.execute(_COMPLEXITY)]
        volumes: dict[int, dict[int, tuple[float, bool]]] = defaultdict(dict)
        for recipe, ingredient, ml, each in conn.execute(_VOLUMES):
            volumes[recipe][ingredient] = (float(ml), bool(each))
    return Expected(nodes, names, complexity, dict(volumes), set(volumes))
