-- The per-day triggers of 004, with the per-row work of bulk statements taken out.
--
-- benchmarks/trigger_overhead.py (the backend's CPU time) read about +5 % under 004 on bulk
-- inserts of past days into user_ingredients and their COPY, and +12.5 % on a bulk delete of
-- recipes. The cost was per row: 004 tested every row against the transaction's
-- list of recorded days (a date-to-text conversion, a setting read and a string search, some
-- 0.5 us a row), before taking the distinct days; the delete's row trigger evaluated that same
-- test in its WHEN clause. Both now take the statement's distinct days first (a date cast and a
-- hash a row) and test only those, at most a few dozen per statement.
--
-- Deletes of recipes, ingredients, user_ingredients and tags go back to statement triggers over
-- a transition table, one function per table shared with the inserts: no other table's cascade
-- deletes from them, so a statement fires them once. ratings keeps 004's BEFORE row trigger: a
-- recipe's deletion cascades to its ratings as one DELETE per recipe, which would fire a
-- statement trigger once per recipe. Its WHEN clause costs the 0.5 us a row only there, where
-- every deleted rating also runs the site's own average-rating row trigger.

DO $do$
DECLARE
    spec record;
    setting text;
    fn text;
BEGIN
    FOR spec IN
        SELECT * FROM (VALUES
            ('recipes', 'created_at', true),
            ('ingredients', 'created_at', true),
            ('ratings', 'created_at', false),
            ('user_ingredients', 'added_at', true),
            ('tags', 'created_at', true)
        ) AS t (tracked, stamp, statement_delete)
    LOOP
        setting := 'cocktail_assets.activity_days_' || spec.tracked;
        fn := 'activity_' || spec.tracked || '_statement_days';
        -- Past days of the statement's rows not recorded yet by this transaction; the everyday
        -- statement (rows of today) reads its transition table once and calls nothing. OFFSET 0
        -- keeps the planner from pushing the per-day test below the grouping, back onto every
        -- row (it does so with a plain DISTINCT subquery).
        EXECUTE format($f$
            CREATE OR REPLACE FUNCTION %1$I() RETURNS trigger
            LANGUAGE plpgsql SECURITY INVOKER AS $body$
            DECLARE
                fresh date[];
            BEGIN
                SELECT pg_catalog.array_agg(d) INTO fresh
                FROM (SELECT %2$I::date AS d FROM activity_rows GROUP BY 1 OFFSET 0) AS days
                WHERE d < (pg_catalog.now() AT TIME ZONE 'utc')::date
                  AND pg_catalog.strpos(coalesce(pg_catalog.current_setting(%3$L, true), ''),
                                        d::text) = 0;
                IF fresh IS NOT NULL THEN
                    PERFORM public.activity_record_days(%4$L, fresh);
                END IF;
                RETURN NULL;
            END $body$$f$,
            fn, spec.stamp, setting, spec.tracked);

        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I',
                       'activity_' || spec.tracked || '_insert', spec.tracked);
        EXECUTE format(
            'CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS activity_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION %I()',
            'activity_' || spec.tracked || '_insert', spec.tracked, fn);
        EXECUTE format('DROP FUNCTION IF EXISTS %I()',
                       'activity_' || spec.tracked || '_insert_days');

        IF spec.statement_delete THEN
            EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I',
                           'activity_' || spec.tracked || '_delete', spec.tracked);
            EXECUTE format(
                'CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS activity_rows '
                'FOR EACH STATEMENT EXECUTE FUNCTION %I()',
                'activity_' || spec.tracked || '_delete', spec.tracked, fn);
        END IF;
    END LOOP;
END $do$;
