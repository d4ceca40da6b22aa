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

SIMILARITY_STAGING = """
CREATE TEMP TABLE recipe_similarity_staging
    (recipe_id integer, recipe_name text, neighbors jsonb) ON COMMIT DROP
"""
SIMILARITY_COPY = "COPY recipe_similarity_staging (recipe_id, recipe_name, neighbors) FROM STDIN"
SIMILARITY_SWAP_DELETE = "DELETE FROM recipe_similarity"
# Recipes deleted since the snapshot the neighbours were computed from are left out.
SIMILARITY_SWAP_INSERT = """
INSERT INTO recipe_similarity (recipe_id, recipe_name, neighbors, created_at)
SELECT s.recipe_id, s.recipe_name, s.neighbors, now() AT TIME ZONE 'utc'
FROM recipe_similarity_staging s JOIN recipes r ON r.id = s.recipe_id
"""
# The staged rows' recipe ids with how often each occurs, for the each-recipe-once check on
# what is about to replace the table.
SIMILARITY_STAGED_IDS = """
SELECT recipe_id, count(*)::int FROM recipe_similarity_staging GROUP BY 1 ORDER BY 1
"""
