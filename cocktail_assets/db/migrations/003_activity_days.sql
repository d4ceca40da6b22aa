-- Late edits of the daily activity metrics: which UTC days a statement touched.
--
-- activity/daily aggregates one UTC day of recipes, ingredients, ratings, user_ingredients and
-- tags by their creation time. A statement that inserts or deletes such rows for a past day (a
-- rating imported with an old created_at, a recipe deleted) makes that day's partition stale.
-- Statement-level AFTER triggers with transition tables append the distinct past days the
-- statement touched to activity_day_changes, once per statement however many rows it wrote;
-- rows of today are left out (the nightly run aggregates today once it is complete). Updates
-- count only when they change a row's timestamp or user: a row trigger limited to those columns
-- (UPDATE OF ... WHEN ...), so the site's frequent updates (names, avg_rating on every rating)
-- never reach it, while a transition-table trigger would copy every updated row. TRUNCATE
-- records nothing (it has no transition table); rebuild with `cocktail-assets backfill`.
--
-- The materialization of a day deletes the rows visible in the snapshot it read
-- (pg_visible_in_snapshot on the writing transaction's id), so an edit committed during the run
-- stays pending. SECURITY DEFINER and an inner exception block: the site's role needs no rights
-- on this table, and a failure of the bookkeeping is a WARNING, never a failed site write.

CREATE TABLE IF NOT EXISTS activity_day_changes (
    id bigserial PRIMARY KEY,
    day date NOT NULL,
    table_name text NOT NULL,
    changed_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    txid xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX IF NOT EXISTS activity_day_changes_day_idx ON activity_day_changes (day, id);

-- Row trigger for updates of the activity columns: the old and the new day, when past.
CREATE OR REPLACE FUNCTION activity_mark_updated_day() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    today date := (now() AT TIME ZONE 'utc')::date;
    old_day date;
    new_day date;
BEGIN
    BEGIN
        old_day := (to_jsonb(OLD) ->> TG_ARGV[0])::timestamp::date;
        new_day := (to_jsonb(NEW) ->> TG_ARGV[0])::timestamp::date;
        INSERT INTO activity_day_changes (day, table_name)
        SELECT DISTINCT d, TG_TABLE_NAME FROM unnest(ARRAY[old_day, new_day]) AS d
        WHERE d < today;
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'activity day tracking skipped for %: %', TG_TABLE_NAME, SQLERRM;
    END;
    RETURN NULL;
END $$;

-- One function per table and event, with static SQL so that its plan is cached: the single-row
-- statements of the site pay one cached query on a one-row transition table. As in 002, a day is
-- recorded once per table and transaction (a transaction-local setting lists the days already
-- recorded; every statement of a transaction has the same changed_at and txid, so a second row
-- would say nothing new). The first query reads only the statement's transition table and that
-- setting, so it stays outside the exception block.
DO $do$
DECLARE
    spec record;
    ev record;
BEGIN
    FOR spec IN
        SELECT * FROM (VALUES
            ('recipes', 'created_at', 'created_by'),
            ('ingredients', 'created_at', 'created_by'),
            ('ratings', 'created_at', 'cognito_user_id'),
            ('user_ingredients', 'added_at', 'cognito_user_id'),
            ('tags', 'created_at', 'created_by')
        ) AS t (tracked, stamp, actor)
    LOOP
        FOR ev IN
            SELECT * FROM (VALUES ('insert', 'INSERT', 'NEW'), ('delete', 'DELETE', 'OLD'))
                AS e (suffix, event, transition)
        LOOP
            EXECUTE format($f$
                CREATE OR REPLACE FUNCTION %1$I() RETURNS trigger
                LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $body$
                DECLARE
                    fresh date[];
                BEGIN
                    -- past days this transaction has not recorded yet; the everyday case (rows
                    -- of today, a cascade that deleted nothing) stops here, before the
                    -- exception block's subtransaction
                    SELECT array_agg(DISTINCT %2$I::date) INTO fresh FROM activity_rows
                    WHERE %2$I < (now() AT TIME ZONE 'utc')::date
                      AND strpos(coalesce(current_setting(%4$L, true), ''),
                                 %2$I::date::text) = 0;
                    IF fresh IS NULL THEN
                        RETURN NULL;
                    END IF;
                    BEGIN
                        INSERT INTO activity_day_changes (day, table_name)
                        SELECT unnest(fresh), %3$L;
                        PERFORM set_config(%4$L, coalesce(current_setting(%4$L, true), '')
                                           || array_to_string(fresh, ',') || ',', true);
                    EXCEPTION WHEN OTHERS THEN
                        RAISE WARNING 'activity day tracking skipped for %%: %%', %3$L, SQLERRM;
                    END;
                    RETURN NULL;
                END $body$$f$,
                'activity_' || spec.tracked || '_' || ev.suffix || '_days',
                spec.stamp, spec.tracked, 'cocktail_assets.activity_days_' || spec.tracked);
            EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I',
                           'activity_' || spec.tracked || '_' || ev.suffix, spec.tracked);
            EXECUTE format(
                'CREATE TRIGGER %I AFTER %s ON %I REFERENCING %s TABLE AS activity_rows '
                'FOR EACH STATEMENT EXECUTE FUNCTION %I()',
                'activity_' || spec.tracked || '_' || ev.suffix, ev.event, spec.tracked,
                ev.transition, 'activity_' || spec.tracked || '_' || ev.suffix || '_days');
        END LOOP;
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I',
                       'activity_' || spec.tracked || '_update', spec.tracked);
        EXECUTE format(
            'CREATE TRIGGER %I AFTER UPDATE OF %I, %I ON %I FOR EACH ROW '
            'WHEN (OLD.%I IS DISTINCT FROM NEW.%I OR OLD.%I IS DISTINCT FROM NEW.%I) '
            'EXECUTE FUNCTION activity_mark_updated_day(%L)',
            'activity_' || spec.tracked || '_update', spec.stamp, spec.actor, spec.tracked,
            spec.stamp, spec.stamp, spec.actor, spec.actor, spec.stamp);
    END LOOP;
END $do$;
