-- The cocktail site's own tables, created only where they are missing.
--
-- On the live site every table already exists (with citext names, trigram indexes and the
-- site's own row triggers), so this file changes nothing there. On an empty database it
-- creates an equivalent schema that needs no extension: names are plain text with a
-- case-insensitive unique index instead of citext. Each table's row triggers are created
-- together with the table, so the live site's triggers are never doubled.

CREATE OR REPLACE FUNCTION cocktail_set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now() AT TIME ZONE 'utc';
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION cocktail_update_recipe_rating() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    target integer;
BEGIN
    FOR target IN
        SELECT DISTINCT r FROM unnest(ARRAY[
            CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN NEW.recipe_id END,
            CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN OLD.recipe_id END
        ]) AS r WHERE r IS NOT NULL
    LOOP
        UPDATE recipes SET
            avg_rating = (SELECT avg(rating)::real FROM ratings WHERE recipe_id = target),
            rating_count = (SELECT count(*) FROM ratings WHERE recipe_id = target)
        WHERE id = target;
    END LOOP;
    RETURN NULL;
END $$;

DO $$
BEGIN
    IF to_regclass('public.ingredients') IS NULL THEN
        CREATE TABLE ingredients (
            id serial PRIMARY KEY,
            name text NOT NULL,
            description text,
            parent_id integer REFERENCES ingredients (id),
            path text,
            allow_substitution boolean NOT NULL DEFAULT false,
            percent_abv numeric,
            sugar_g_per_l numeric,
            titratable_acidity_g_per_l numeric,
            url text,
            created_by text,
            created_at timestamp DEFAULT (now() AT TIME ZONE 'utc'),
            updated_at timestamp DEFAULT (now() AT TIME ZONE 'utc')
        );
        CREATE UNIQUE INDEX ingredients_name_key ON ingredients (lower(name));
        CREATE INDEX ingredients_parent_id_idx ON ingredients (parent_id);
        CREATE INDEX ingredients_path_idx ON ingredients (path text_pattern_ops);
        CREATE TRIGGER ingredients_set_updated_at BEFORE UPDATE ON ingredients
            FOR EACH ROW EXECUTE FUNCTION cocktail_set_updated_at();
    END IF;

    IF to_regclass('public.units') IS NULL THEN
        CREATE TABLE units (
            id serial PRIMARY KEY,
            name text NOT NULL UNIQUE,
            abbreviation text,
            conversion_to_ml real
        );
    END IF;

    IF to_regclass('public.recipes') IS NULL THEN
        CREATE TABLE recipes (
            id serial PRIMARY KEY,
            name text NOT NULL,
            instructions text,
            description text,
            image_url text,
            source text,
            source_url text,
            avg_rating real,
            rating_count integer DEFAULT 0,
            created_by text,
            created_at timestamp DEFAULT (now() AT TIME ZONE 'utc'),
            updated_at timestamp DEFAULT (now() AT TIME ZONE 'utc')
        );
        CREATE UNIQUE INDEX recipes_name_key ON recipes (lower(name));
        CREATE TRIGGER recipes_set_updated_at BEFORE UPDATE ON recipes
            FOR EACH ROW EXECUTE FUNCTION cocktail_set_updated_at();
    END IF;

    IF to_regclass('public.ratings') IS NULL THEN
        CREATE TABLE ratings (
            id serial PRIMARY KEY,
            cognito_user_id text NOT NULL,
            recipe_id integer NOT NULL REFERENCES recipes (id) ON DELETE CASCADE,
            rating integer NOT NULL CHECK (rating BETWEEN 1 AND 5),
            UNIQUE (cognito_user_id, recipe_id)
        );
        CREATE INDEX ratings_recipe_id_idx ON ratings (recipe_id);
        CREATE TRIGGER ratings_update_recipe_rating AFTER INSERT OR UPDATE OR DELETE ON ratings
            FOR EACH ROW EXECUTE FUNCTION cocktail_update_recipe_rating();
    END IF;

    IF to_regclass('public.tags') IS NULL THEN
        CREATE TABLE tags (
            id serial PRIMARY KEY,
            name text NOT NULL,
            created_by text,
            created_at timestamp DEFAULT (now() AT TIME ZONE 'utc')
        );
    END IF;

    IF to_regclass('public.recipe_tags') IS NULL THEN
        CREATE TABLE recipe_tags (
            id serial PRIMARY KEY,
            recipe_id integer NOT NULL REFERENCES recipes (id) ON DELETE CASCADE,
            tag_id integer NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
            UNIQUE (recipe_id, tag_id)
        );
    END IF;

    IF to_regclass('public.recipe_ingredients') IS NULL THEN
        CREATE TABLE recipe_ingredients (
            id serial PRIMARY KEY,
            recipe_id integer NOT NULL REFERENCES recipes (id) ON DELETE CASCADE,
            ingredient_id integer NOT NULL REFERENCES ingredients (id) ON DELETE RESTRICT,
            unit_id integer REFERENCES units (id) ON DELETE SET NULL,
            amount real
        );
        CREATE INDEX recipe_ingredients_recipe_id_idx ON recipe_ingredients (recipe_id);
        CREATE INDEX recipe_ingredients_ingredient_id_idx ON recipe_ingredients (ingredient_id);
    END IF;

    IF to_regclass('public.user_ingredients') IS NULL THEN
        CREATE TABLE user_ingredients (
            id serial PRIMARY KEY,
            cognito_user_id text NOT NULL,
            ingredient_id integer NOT NULL REFERENCES ingredients (id) ON DELETE CASCADE,
            added_at timestamp DEFAULT (now() AT TIME ZONE 'utc'),
            UNIQUE (cognito_user_id, ingredient_id)
        );
    END IF;

    IF to_regclass('public.analytics_refresh_state') IS NULL THEN
        CREATE TABLE analytics_refresh_state (
            id integer PRIMARY KEY,
            dirty_at timestamp,
            last_run_at timestamp
        );
    END IF;

    IF to_regclass('public.recipe_similarity') IS NULL THEN
        CREATE TABLE recipe_similarity (
            recipe_id integer PRIMARY KEY REFERENCES recipes (id) ON DELETE CASCADE,
            recipe_name text NOT NULL,
            neighbors jsonb NOT NULL,
            created_at timestamp DEFAULT (now() AT TIME ZONE 'utc')
        );
    END IF;
END $$;

INSERT INTO analytics_refresh_state (id) VALUES (1) ON CONFLICT (id) DO NOTHING;
