-- The statement triggers of 005 take their days in one pass over the transition table, with no
-- grouping.
--
-- 005 grouped the statement's rows by day (a hash aggregate, set up for every statement)
-- before testing the few days. Measured as the trigger's own time (EXPLAIN ANALYZE, median of
-- 30) on a 2,000-row insert of tags over 30 past days, with nothing recorded: reading each
-- row's timestamp once (a max) took about 0.30 ms, 005's grouping 0.60 to 0.67 ms, the three
-- plain aggregates below 0.48 to 0.55 ms. In benchmarks/trigger_overhead.py a single-row
-- statement's activity cost went from 15.5 to 17.6 us under 005 to 12 to 15 us.
--
-- A plain aggregate is cheaper per row than a hash table: the statement's first and last
-- timestamps, and the OR of 1 << (day number mod 64), a set of days modulo 64. When the first
-- and the last day lie fewer than 64 days apart (a single row, a day's import, the last weeks'),
-- every day of that span has its own bit, so the days are exactly those of the span whose bit
-- is set; a wider statement (an import of old history) groups its rows by day as 005 did. A
-- single-row statement, or any statement of one day, tests its day with no second query.
-- Rows of today and later, and rows without a timestamp, record nothing, as before.

DO $do$
DECLARE
    spec record;
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
        EXECUTE format($f$
            CREATE OR REPLACE FUNCTION %1$I() RETURNS trigger
            LANGUAGE plpgsql SECURITY INVOKER AS $body$
            DECLARE
                first_day date;
                last_day date;
                seen bigint;
                today date;
                recorded text;
                fresh date[];
            BEGIN
                SELECT pg_catalog.min(%2$I)::date, pg_catalog.max(%2$I)::date,
                       pg_catalog.bit_or(1::bigint << ((%2$I::date - date '2000-01-01') & 63))
                  INTO first_day, last_day, seen
                  FROM activity_rows;
                today := (pg_catalog.now() AT TIME ZONE 'utc')::date;
                IF first_day IS NULL OR first_day >= today THEN
                    RETURN NULL;  -- no timestamp, or only today's rows (and later)
                END IF;
                recorded := coalesce(pg_catalog.current_setting(%3$L, true), '');
                IF first_day = last_day THEN
                    IF pg_catalog.strpos(recorded, first_day::text) = 0 THEN
                        fresh := ARRAY[first_day];
                    END IF;
                ELSIF last_day - first_day < 64 THEN
                    SELECT pg_catalog.array_agg(d) INTO fresh
                      FROM (SELECT first_day + k AS d
                              FROM pg_catalog.generate_series(
                                  0, LEAST(last_day, today - 1) - first_day) AS k) AS span
                     WHERE (seen >> ((d - date '2000-01-01') & 63)) & 1 = 1
                       AND pg_catalog.strpos(recorded, d::text) = 0;
                ELSE
                    SELECT pg_catalog.array_agg(d) INTO fresh
                      FROM (SELECT %2$I::date AS d FROM activity_rows GROUP BY 1 OFFSET 0) AS days
                     WHERE d < today AND pg_catalog.strpos(recorded, d::text) = 0;
                END IF;
                IF fresh IS NOT NULL THEN
                    PERFORM public.activity_record_days(%4$L, fresh);
                END IF;
                RETURN NULL;
            END $body$$f$,
            'activity_' || spec.tracked || '_statement_days', spec.stamp,
            'cocktail_assets.activity_days_' || spec.tracked, spec.tracked);
    END LOOP;
END $do$;
