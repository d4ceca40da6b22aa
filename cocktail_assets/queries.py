"""Every SQL read and write of the asset graph, parameterized, in one place."""

INGREDIENTS = """
SELECT id, name::text, parent_id, path, allow_substitution
FROM ingredients ORDER BY id
"""

RECIPES = "SELECT id, name::text FROM recipes ORDER BY id"

# Each ingredient's path, read on its own for the ingredient_tree checks.
INGREDIENT_PATHS = "SELECT id, path FROM ingredients ORDER BY id"

# One row per recipe_ingredients row with what the volume rule needs (NULLs kept), and the row
# and unit ids a data error names.
RECIPE_INGREDIENT_ROWS = """
SELECT ri.id, ri.recipe_id, ri.ingredient_id, ri.amount::float8, u.name::text,
       u.conversion_to_ml::float8, u.id
FROM recipe_ingredients ri
LEFT JOIN units u ON u.id = ri.unit_id
ORDER BY ri.recipe_id, ri.ingredient_id, ri.id
"""

# The recipes that must appear once in each space and in recipe_similarity: those whose rows
# have a positive total volume. The checks' own plain read, in the recipe_volumes snapshot, of
# what the volume rule needs (recipe, amount, unit, conversion per row), summed per recipe by
# catalog.load.recipes_with_volume with barcart's rule: the rule is stated once (barcart), the
# path from rows to recipe ids (no pandas, no matrix) is the check's own.
RECIPE_VOLUME_INPUTS = """
SELECT ri.recipe_id, ri.amount::float8, u.name::text, u.conversion_to_ml::float8
FROM recipe_ingredients ri LEFT JOIN units u ON u.id = ri.unit_id
"""

DISTINCT_RECIPE_INGREDIENTS = """
SELECT DISTINCT recipe_id, ingredient_id FROM recipe_ingredients ORDER BY 1, 2
"""

RECIPE_COMPLEXITY = """
SELECT ingredient_count, count(*)::int AS recipe_count
FROM (SELECT recipe_id, count(DISTINCT ingredient_id)::int AS ingredient_count
      FROM recipe_ingredients GROUP BY recipe_id) per_recipe
GROUP BY ingredient_count ORDER BY ingredient_count
"""

# Independent counts for the asset checks: direct and path-prefix (hierarchical) usage, and
# whether the ingredient is a root (its path names only itself).
USAGE_BY_SQL = """
SELECT i.id,
       (SELECT count(DISTINCT ri.recipe_id) FROM recipe_ingredients ri
        WHERE ri.ingredient_id = i.id)::int AS direct_usage,
       (SELECT count(DISTINCT ri.recipe_id) FROM recipe_ingredients ri
        JOIN ingredients d ON d.id = ri.ingredient_id
        WHERE d.path LIKE i.path || '%')::int AS hierarchical_usage,
       cardinality(string_to_array(trim(both '/' from i.path), '/')) <= 1 AS is_root
FROM ingredients i ORDER BY i.id
"""

# recipe_similarity is replaced in one transaction (spaces/similarity_table.py): the time
# every row is stamped with, the recipes of the rows locked against deletion until the commit
# (those deleted since the run's snapshot are not returned, and their rows are left out), the
# old rows deleted, the new ones copied in, and counted.
SIMILARITY_NOW = "SELECT (now() AT TIME ZONE 'utc')::text"
# Whether the server can compress TOAST values with lz4 (PostgreSQL 14+ built with lz4): then
# the transaction compresses the rows it writes with it (SET LOCAL, no change to the table).
SIMILARITY_LZ4 = """
SELECT coalesce(bool_or(v = 'lz4'), false) FROM pg_settings, unnest(enumvals) v
WHERE name = 'default_toast_compression'
"""
SIMILARITY_USE_LZ4 = "SET LOCAL default_toast_compression = lz4"
SIMILARITY_LOCK_RECIPES = """
SELECT id FROM recipes WHERE id = ANY(%s::integer[]) ORDER BY id FOR KEY SHARE
"""
SIMILARITY_ALIVE_RECIPES = "SELECT id FROM recipes WHERE id = ANY(%s::integer[])"
SIMILARITY_DELETE = "DELETE FROM recipe_similarity"
SIMILARITY_COPY = """
COPY recipe_similarity (recipe_id, recipe_name, neighbors, created_at) FROM STDIN
"""
SIMILARITY_COUNT = "SELECT count(*)::int FROM recipe_similarity"
