-- The per-day triggers of 003, made cheaper for the site's writes.
--
-- benchmarks/trigger_overhead.py found two costs in 003:
-- * Every statement called a SECURITY DEFINER function with SET search_path. Switching the
--   user and the search path on every call is most of a single-row statement's overhead, though
--   only the rare statement that records a day needs the definer's rights. The trigger
--   functions now run as the writer and read only the statement's own rows and a setting; the
--   recording itself is one SECURITY DEFINER function, activity_record_days, called only when
--   there is a day to record.
-- * Deletes fired once per cascaded statement. PostgreSQL runs the ON DELETE CASCADE of each
--   deleted recipe as a DELETE of its own on ratings, so deleting 5,000 recipes ran the ratings
--   trigger 5,000 times over empty transition tables. Deletes now use row triggers whose WHEN
--   clause the executor evaluates per row without calling any function: it is true only for a
--   row of a day that the transaction has not seen yet for that table. The trigger is BEFORE,
--   so the function runs at once and adds the day to the transaction-local list of 003 (a past
--   day also to activity_day_changes): the next rows of that day fail the WHEN, and a statement
--   deleting 5,000 rows of 30 days calls the function 30 times. Cascades that delete nothing
--   call nothing. The WHEN leaves "is it a past day?" to the function: an expression with
--   now() AT TIME ZONE costs the executor some 15 us to set up for every statement, more than
--   the whole trigger costs otherwise; a transaction's rows of today call the function once.
--
-- Inserts stay statement-level, over a transition table: a BEFORE INSERT row trigger would make
-- COPY give up its multi-row inserts, and bulk imports are how old rows arrive. Updates keep
-- 003's row trigger, which fires only when a row's timestamp or user changes.
--
-- As in 003, the bookkeeping never fails a site write: activity_record_days turns any error
-- into a WARNING, and the everyday path reads nothing but the statement's rows and a setting.

-- Records past days for a table once per transaction: the days to activity_day_changes, and to
-- the setting that the triggers check so that a transaction records each day once.
CREATE OR REPLACE FUNCTION activity_record_days(tracked text, days date[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    setting text := 'cocktail_assets.activity_days_' || tracked;
BEGIN
    INSERT INTO activity_day_changes (day, table_name) SELECT unnest(days), tracked;
    PERFORM set_config(setting, coalesce(current_setting(setting, true), '')
                       || array_to_string(days, ',') || ',', true);
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'activity day tracking skipped for %: %', tracked, SQLERRM;
END $$;

-- A deleted row of a day this transaction has not seen yet (the WHEN clause checked): record
-- a past day; today's is only noted, the nightly run counts it. TG_ARGV[0] names the timestamp
-- column; the row is read generically as this runs once per day and table.
CREATE OR REPLACE FUNCTION activity_mark_deleted_day() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    day date := (to_jsonb(OLD) ->> TG_ARGV[0])::timestamp::date;
    setting text := 'cocktail_assets.activity_days_' || TG_TABLE_NAME;
BEGIN
    IF day < (now() AT TIME ZONE 'utc')::date THEN
        PERFORM public.activity_record_days(TG_TABLE_NAME, ARRAY[day]);
    ELSE
        PERFORM set_config(setting, coalesce(current_setting(setting, true), '')
                           || day::text || ',', true);
    END IF;
    RETURN OLD;
END $$;

DO $do$
DECLARE
    spec record;
    setting text;
BEGIN
    FOR spec IN
        SELECT * FROM (VALUES
            ('recipes', 'created_at'),
            ('ingredients', 'created_at'),
            ('ratings', 'created_at'),
            ('user_ingredients', 'added_at'),
            ('tags', 'created_at')
        ) AS t (tracked, stamp)
    LOOP
        setting := 'cocktail_assets.activity_days_' || spec.tracked;
        -- Inserts: 003's statement trigger and its function keep their names. The function now
        -- runs as the writer (CREATE OR REPLACE drops 003's SECURITY DEFINER and SET clauses),
        -- and only a past day not recorded yet calls the recorder.
        EXECUTE format($f$
            CREATE OR REPLACE FUNCTION %1$I() RETURNS trigger
            LANGUAGE plpgsql SECURITY INVOKER AS $body$
            DECLARE
                fresh date[];
            BEGIN
                SELECT pg_catalog.array_agg(DISTINCT %2$I::date) INTO fresh FROM activity_rows
                WHERE %2$I < (pg_catalog.now() AT TIME ZONE 'utc')::date
                  AND pg_catalog.strpos(coalesce(pg_catalog.current_setting(%3$L, true), ''),
                                        %2$I::date::text) = 0;
                IF fresh IS NOT NULL THEN
                    PERFORM public.activity_record_days(%4$L, fresh);
                END IF;
                RETURN NULL;
            END $body$$f$,
            'activity_' || spec.tracked || '_insert_days', spec.stamp, setting, spec.tracked);

        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I',
                       'activity_' || spec.tracked || '_delete', spec.tracked);
        EXECUTE format('DROP FUNCTION IF EXISTS %I()',
                       'activity_' || spec.tracked || '_delete_days');
        EXECUTE format(
            'CREATE TRIGGER %I BEFORE DELETE ON %I FOR EACH ROW '
            'WHEN (strpos(coalesce(current_setting(%L, true), %L), OLD.%I::date::text) = 0) '
            'EXECUTE FUNCTION activity_mark_deleted_day(%L)',
            'activity_' || spec.tracked || '_delete', spec.tracked,
            setting, '', spec.stamp, spec.stamp);
    END LOOP;
END $do$;
