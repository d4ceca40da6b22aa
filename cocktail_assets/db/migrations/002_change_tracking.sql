-- Per-table change tracking for the analytics refresh.
--
-- The site's old design kept one analytics_refresh_state.dirty_at for every table, so a new
-- rating rebuilt the UMAPs. Each statement on a tracked table now appends one row naming the
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

-- SECURITY DEFINER: the site's own database role may have no rights on the tracking objects,
-- and a write of the site must never fail for want of them. The inner block turns any other
-- failure of the bookkeeping into a WARNING: the site's write always goes through.
CREATE OR REPLACE FUNCTION mark_analytics_dirty() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    BEGIN
        INSERT INTO analytics_change_log (table_name, operation) VALUES (TG_TABLE_NAME, TG_OP);
        UPDATE analytics_refresh_state SET dirty_at = now() AT TIME ZONE 'utc' WHERE id = 1;
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'analytics change tracking skipped for %: %', TG_TABLE_NAME, SQLERRM;
    END;
    RETURN NULL;
END $$;

-- Statement-level triggers (one bookkeeping insert per statement, not per row), named as on the
-- live site so that adopting it replaces its triggers instead of doubling them.
DO $$
DECLARE
    tracked text;
BEGIN
    FOREACH tracked IN ARRAY ARRAY[
        'recipes', 'ingredients', 'recipe_ingredients', 'units', 'ratings', 'tags',
        'recipe_tags', 'user_ingredients'
    ] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', 'analytics_' || tracked || '_dirty', tracked);
        EXECUTE format(
            'CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I '
            'FOR EACH STATEMENT EXECUTE FUNCTION mark_analytics_dirty()',
            'analytics_' || tracked || '_dirty', tracked);
    END LOOP;
END $$;

-- Ratings on the live site carry no timestamp; activity metrics need one. Existing rows keep
-- NULL (their date is unknown) and only new ratings are stamped.
ALTER TABLE ratings ADD COLUMN IF NOT EXISTS created_at timestamp;
ALTER TABLE ratings ALTER COLUMN created_at SET DEFAULT (now() AT TIME ZONE 'utc');
