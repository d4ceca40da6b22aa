"""The volume rule (docs/analytics.md#volume-rule) written out in SQL.

Tests check data and artifacts against this independent reading of the rule, never against the
library's. It expects ``recipe_ingredients ri LEFT JOIN units u``.
"""

VOLUME_ML = """
    CASE
        WHEN u.name = 'to top' THEN 90::float8
        WHEN u.name = 'to rinse' THEN 5::float8
        WHEN lower(u.name) = 'each' THEN 1::float8
        WHEN ri.amount IS NOT NULL AND u.conversion_to_ml IS NOT NULL
            THEN ri.amount::float8 * u.conversion_to_ml::float8
        WHEN ri.amount IS NOT NULL THEN ri.amount::float8
        ELSE 1::float8
    END
"""
