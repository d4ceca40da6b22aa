-- Per-table change tracking for the analytics refresh.
--
-- The site's old design kept one analytics_refresh_state.dirty_at for every table, so a new
-- rating rebuilt the UMAPs. A transaction writing a tracked table now appends one row naming the
-- table to analytics_change_log, stamped with the database clock and the writing transaction's
-- id. The refresh sensor reads the pending rows (settled_at IS NULL: which tables, oldest and
-- newest change), and a successful run settles exactly the rows visible in the snapshot it was
-- planned from (pg_visible_in_snapshot), so a change committed during a run, or by a
-- transaction that began before the plan and committed after it, always stays pending for the
-- next run. Settled rows are pruned, except each table's newest: its id is the table's data
-- version, which the observable source assets report to Dagster.
--
-- The site's mark_analytics_dirty() is replaced in place (same name, same triggers), so
-- dirty_at stays up to date for the tools that read it.

CREATE TABLE IF NOT EXISTS analytics_change_log (
    id bigserial PRIMARY KEY,
    table_name text NOT NULL,
    operation text NOT NULL,
    changed_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    settled_at timestamp
);
CREATE INDEX IF NOT EXISTS analytics_change_log_table_idx ON analytics_change_log (table_name, id);
CREATE INDEX IF NOT EXISTS analytics_change_log_pending_idx
    ON analytics_change_log (id) WHERE settled_at IS NULL;

-- Each tracked table is logged once per transaction, not once per statement: changed_at is
-- now() (the transaction's start) and the transaction id decides visibility, both the same for
-- every statement of a transaction, so nothing is lost. Logging per statement made row-by-row
-- site writes pay a cost that grew with every statement (each one updated the single
-- analytics_refresh_state row again, lengthening its version chain): 10,000 single-row inserts
-- took 5.7 s instead of 0.3 s. The first firing sets a transaction-local flag that the
-- triggers' WHEN checks; rolling back to a savepoint reverts the flag with the log row.
--
-- SECURITY DEFINER: the site's own database role may have no rights on the tracking objects,
-- and a write of the site must never fail for want of them. The inner block turns any other
-- failure of the bookkeeping into a WARNING: the site's write always goes through.
CREATE OR REPLACE FUNCTION mark_analytics_dirty() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    BEGIN
        INSERT INTO analytics_change_log (table_name, operation) VALUES (TG_TABLE_NAME, TG_OP);
        UPDATE analytics_refresh_state SET dirty_at = now() AT TIME ZONE 'utc' WHERE id = 1;
        PERFORM set_config('cocktail_assets.logged_' || TG_TABLE_NAME, 'on', true);
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'analytics change tracking skipped for %: %', TG_TABLE_NAME, SQLERRM;
    END;
    RETURN NULL;
END $$;

-- Statement-level triggers, named as on the live site so that adopting it replaces its
-- triggers instead of doubling them. BEFORE rather than AFTER: the log row is part of the same
-- transaction either way (a failing statement rolls it back with everything else), and a
-- BEFORE statement trigger skips the after-trigger queue Postgres keeps for every statement. Updates of recipes, ingredients and units count only on
-- the columns the analytics read: the site's ratings trigger rewrites recipes.avg_rating on
-- every rating, and that is no recipes change.
DO $$
DECLARE
    spec record;
BEGIN
    FOR spec IN
        SELECT * FROM (VALUES
            ('recipes', 'INSERT OR DELETE OR TRUNCATE OR UPDATE OF name'),
            ('ingredients',
             'INSERT OR DELETE OR TRUNCATE OR UPDATE OF name, parent_id, path, allow_substitution'),
            ('units', 'INSERT OR DELETE OR TRUNCATE OR UPDATE OF name, conversion_to_ml'),
            ('recipe_ingredients', 'INSERT OR UPDATE OR DELETE OR TRUNCATE'),
            ('ratings', 'INSERT OR UPDATE OR DELETE OR TRUNCATE'),
            ('tags', 'INSERT OR UPDATE OR DELETE OR TRUNCATE'),
            ('recipe_tags', 'INSERT OR UPDATE OR DELETE OR TRUNCATE'),
            ('user_ingredients', 'INSERT OR UPDATE OR DELETE OR TRUNCATE')
        ) AS t (tracked, events)
    LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I',
                       'analytics_' || spec.tracked || '_dirty', spec.tracked);
        EXECUTE format(
            'CREATE TRIGGER %I BEFORE %s ON %I FOR EACH STATEMENT '
            'WHEN (current_setting(%L, true) IS DISTINCT FROM %L) '
            'EXECUTE FUNCTION mark_analytics_dirty()',
            'analytics_' || spec.tracked || '_dirty', spec.events, spec.tracked,
            'cocktail_assets.logged_' || spec.tracked, 'on');
    END LOOP;
END $$;

-- Ratings on the live site carry no timestamp; activity metrics need one. Existing rows keep
-- NULL (their date is unknown) and only new ratings are stamped.
ALTER TABLE ratings ADD COLUMN IF NOT EXISTS created_at timestamp;
ALTER TABLE ratings ALTER COLUMN created_at SET DEFAULT (now() AT TIME ZONE 'utc');
