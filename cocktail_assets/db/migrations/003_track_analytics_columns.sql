-- Track updates of recipes, ingredients and units only on the columns the analytics read.
--
-- The site's ratings trigger rewrites recipes.avg_rating / rating_count on every rating, and
-- the updated_at triggers touch rows on every edit: with triggers on any UPDATE, a new rating
-- logged a `recipes` change and made every cocktail space stale. INSERT, DELETE and TRUNCATE
-- are still always tracked; ratings, tags, recipe_tags, user_ingredients and
-- recipe_ingredients keep tracking every statement.
DO $$
DECLARE
    spec record;
BEGIN
    FOR spec IN
        SELECT * FROM (VALUES
            ('recipes', 'name'),
            ('ingredients', 'name, parent_id, path, allow_substitution'),
            ('units', 'name, conversion_to_ml')
        ) AS t (tracked, columns)
    LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I',
                       'analytics_' || spec.tracked || '_dirty', spec.tracked);
        EXECUTE format(
            'CREATE TRIGGER %I AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE OF %s ON %I '
            'FOR EACH STATEMENT EXECUTE FUNCTION mark_analytics_dirty()',
            'analytics_' || spec.tracked || '_dirty', spec.columns, spec.tracked);
    END LOOP;
END $$;
