"""Every SQL read and write of the asset graph, parameterized, in one place."""

INGREDIENTS = """
SELECT id, name::text, parent_id, path, allow_substitution
FROM ingredients ORDER BY id
"""

RECIPES = "SELECT id, name::text FROM recipes ORDER BY id"

# One row per recipe_ingredients row with what the volume rule needs (NULLs kept).
RECIPE_INGREDIENT_ROWS = """
SELECT ri.recipe_id, ri.ingredient_id, ri.amount::float8, u.name::text,
       u.conversion_to_ml::float8
FROM recipe_ingredients ri
LEFT JOIN units u ON u.id = ri.unit_id
ORDER BY ri.recipe_id, ri.ingredient_id, ri.id
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

# Independent counts for the asset checks: direct and path-prefix (hierarchical) usage.
USAGE_BY_SQL = """
SELECT i.id,
       (SELECT count(DISTINCT ri.recipe_id) FROM recipe_ingredients ri
        WHERE ri.ingredient_id = i.id)::int AS direct_usage,
       (SELECT count(DISTINCT ri.recipe_id) FROM recipe_ingredients ri
        JOIN ingredients d ON d.id = ri.ingredient_id
        WHERE d.path LIKE i.path || '%')::int AS hierarchical_usage
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
SIMILARITY_COUNTS = """
SELECT count(*)::int, count(DISTINCT recipe_id)::int FROM recipe_similarity
"""
