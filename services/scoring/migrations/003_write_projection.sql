-- A batch's write in one statement, so one round trip (docs/scoring.md): the facts upsert with its version check,
-- the counts, the durations removed and added, the epochs. The same statements the store sent one by one, with the
-- same parameters; a null part (nothing of that kind in the batch) is skipped. Unqualified names: the function runs
-- on the caller's search_path, the service's schema (or a rebuild's shadow).
--
-- Returns how many case rows the facts upsert wrote. Fewer than cases_: a case was not at the version it was read at
-- (the store raises ConcurrentUpdate); then nothing of the write is left, the facts rows written before the check
-- rolled back by the block's own subtransaction, with no savepoint from the client, and the caller's transaction
-- stays usable. Any other error aborts the caller's transaction, as a statement's error always did.
CREATE FUNCTION write_projection(
    facts_ jsonb,  -- the case rows but their states, as a JSON array of arrays
    states_ bytea[],  -- their states, in the same order
    cases_ integer,
    units_ text[],
    months_ text[],
    complained_ integer[],
    assigned_ integer[],
    acknowledged_ integer[],
    ack_on_time_ integer[],
    closed_ integer[],
    closed_on_time_ integer[],
    open_overdue_ integer[],
    inspected_ integer[],
    first_pass_ integer[],
    resolved_ integer[],
    rated_ integer[],
    satisfied_ integer[],
    basically_satisfied_ integer[],
    redo_ integer[],
    reopened_ integer[],
    exposed_ integer[],
    overdue_ integer[],
    transferred_out_ integer[],
    removed_ jsonb,  -- duration rows, as a JSON array of arrays
    added_ jsonb,
    epochs_ text[],
    events_ bigint[],
    id_hash_sums_ numeric[],
    last_recorded_ats_ timestamptz[]
) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    written integer := 0;
BEGIN
    IF facts_ IS NOT NULL THEN
        BEGIN
            INSERT INTO case_facts AS f (case_id, version, previous_version, recorded_at, unit_id, month, state)
            SELECT r->>0, (r->>1)::int, (r->>2)::int, (r->>3)::timestamptz, r->>4, r->>5, state
            FROM (SELECT jsonb_array_elements(facts_) AS r, unnest(states_) AS state) AS rows
            ON CONFLICT (case_id) DO UPDATE SET version = EXCLUDED.version,
                previous_version = EXCLUDED.previous_version, recorded_at = EXCLUDED.recorded_at,
                unit_id = EXCLUDED.unit_id, month = EXCLUDED.month, state = EXCLUDED.state
            WHERE f.version = EXCLUDED.previous_version;
            GET DIAGNOSTICS written = ROW_COUNT;
            IF written <> cases_ THEN
                RAISE SQLSTATE 'RX409';  -- private: caught just below, it undoes the upsert
            END IF;
        EXCEPTION WHEN SQLSTATE 'RX409' THEN
            RETURN written;
        END;
    END IF;
    IF units_ IS NOT NULL THEN
        INSERT INTO unit_month AS t (unit_id, month, complained, assigned, acknowledged, ack_on_time, closed,
            closed_on_time, open_overdue, inspected, first_pass, resolved, rated, satisfied, basically_satisfied, redo,
            reopened, exposed, overdue, transferred_out)
        SELECT * FROM unnest(units_, months_, complained_, assigned_, acknowledged_, ack_on_time_, closed_,
            closed_on_time_, open_overdue_, inspected_, first_pass_, resolved_, rated_, satisfied_,
            basically_satisfied_, redo_, reopened_, exposed_, overdue_, transferred_out_)
        ON CONFLICT (unit_id, month) DO UPDATE SET complained = t.complained + EXCLUDED.complained,
            assigned = t.assigned + EXCLUDED.assigned, acknowledged = t.acknowledged + EXCLUDED.acknowledged,
            ack_on_time = t.ack_on_time + EXCLUDED.ack_on_time, closed = t.closed + EXCLUDED.closed,
            closed_on_time = t.closed_on_time + EXCLUDED.closed_on_time,
            open_overdue = t.open_overdue + EXCLUDED.open_overdue, inspected = t.inspected + EXCLUDED.inspected,
            first_pass = t.first_pass + EXCLUDED.first_pass, resolved = t.resolved + EXCLUDED.resolved,
            rated = t.rated + EXCLUDED.rated, satisfied = t.satisfied + EXCLUDED.satisfied,
            basically_satisfied = t.basically_satisfied + EXCLUDED.basically_satisfied,
            redo = t.redo + EXCLUDED.redo, reopened = t.reopened + EXCLUDED.reopened,
            exposed = t.exposed + EXCLUDED.exposed, overdue = t.overdue + EXCLUDED.overdue,
            transferred_out = t.transferred_out + EXCLUDED.transferred_out;
    END IF;
    IF removed_ IS NOT NULL THEN
        DELETE FROM unit_durations d
        USING (SELECT r->>0 AS month, r->>1 AS unit_id, r->>2 AS kind, r->>3 AS case_id,
                      (r->>4)::timestamptz AS started_at, (r->>5)::timestamptz AS ended_at
               FROM jsonb_array_elements(removed_) AS r) AS r
        WHERE (d.month, d.unit_id, d.kind, d.case_id, d.started_at, d.ended_at) =
              (r.month, r.unit_id, r.kind, r.case_id, r.started_at, r.ended_at);
    END IF;
    IF added_ IS NOT NULL THEN
        INSERT INTO unit_durations (month, unit_id, kind, case_id, started_at, ended_at)
        SELECT r->>0, r->>1, r->>2, r->>3, (r->>4)::timestamptz, (r->>5)::timestamptz
        FROM jsonb_array_elements(added_) AS r;
    END IF;
    IF epochs_ IS NOT NULL THEN
        INSERT INTO log_epochs AS e (epoch, events, id_hash_sum, last_recorded_at)
        SELECT * FROM unnest(epochs_, events_, id_hash_sums_, last_recorded_ats_)
        ON CONFLICT (epoch) DO UPDATE SET events = e.events + EXCLUDED.events,
            id_hash_sum = mod(e.id_hash_sum + EXCLUDED.id_hash_sum,
                              115792089237316195423570985008687907853269984665640564039457584007913129639936),  -- 2^256
            last_recorded_at = greatest(e.last_recorded_at, EXCLUDED.last_recorded_at);
    END IF;
    RETURN written;
END;
$$;
