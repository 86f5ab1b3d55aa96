-- mc_advance_header is mc_advance and the write of the context's header in
-- one statement: the first statement of a guarded write that carries the
-- header, as a chat turn's two writes do. One call and one new version of
-- the context's row where there were two of each.
CREATE FUNCTION mc_advance_header(cid bigint, base bigint, p_created bigint, p_updated bigint, p_messages integer,
                                  p_tokens bigint, p_bytes bigint, p_policy text, p_extra jsonb)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v bigint;
BEGIN
    UPDATE contexts SET version = version + 1, header = true, pending_since = NULL, created_ms = p_created,
                        updated_ms = p_updated, messages = p_messages, tokens = p_tokens, bytes = p_bytes,
                        policy = p_policy, extra = p_extra
     WHERE id = cid AND version = base
    RETURNING version INTO v;
    IF v IS NULL THEN
        RAISE EXCEPTION 'context % is no longer at version %', cid, base USING ERRCODE = 'MC409';
    END IF;
    RETURN v;
END
$$;
