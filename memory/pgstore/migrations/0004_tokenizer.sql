-- A column for the context header's tokenizer (the token counter its
-- stored counts were made with, memory's ctxRecord.Tokenizer), which rows
-- written before carry in extra: it moves to the column.
ALTER TABLE contexts ADD COLUMN tokenizer text NOT NULL DEFAULT '';
UPDATE contexts
   SET tokenizer = coalesce(extra->>'tokenizer', ''),
       extra = nullif(extra - 'tokenizer', '{}'::jsonb)
 WHERE extra ? 'tokenizer';

-- mc_advance_header, as of 0003, with the tokenizer: this binary's guarded
-- header write.
CREATE FUNCTION mc_advance_header(cid bigint, base bigint, p_created bigint, p_updated bigint, p_messages integer,
                                  p_tokens bigint, p_bytes bigint, p_policy text, p_tokenizer text, p_extra jsonb)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v bigint;
BEGIN
    UPDATE contexts SET version = version + 1, header = true, pending_since = NULL, created_ms = p_created,
                        updated_ms = p_updated, messages = p_messages, tokens = p_tokens, bytes = p_bytes,
                        policy = p_policy, tokenizer = p_tokenizer, extra = p_extra
     WHERE id = cid AND version = base
    RETURNING version INTO v;
    IF v IS NULL THEN
        RAISE EXCEPTION 'context % is no longer at version %', cid, base USING ERRCODE = 'MC409';
    END IF;
    RETURN v;
END
$$;

-- A rolling upgrade: replicas of the previous binary keep serving while
-- the new ones start (the first migrates). They still call 0003's
-- mc_advance_header (kept: its nine arguments name it) and write the
-- header with the tokenizer in extra; contexts_tokenizer moves it to the
-- column as they write, so that no header keeps it in two places. The
-- trigger fires only for such a write (its WHEN reads the new row's
-- extra); this binary's writes never put the tokenizer there. A later
-- migration may drop both once no replica of 0003 can remain.
CREATE FUNCTION contexts_tokenizer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.tokenizer := coalesce(NEW.extra->>'tokenizer', '');
    NEW.extra := nullif(NEW.extra - 'tokenizer', '{}'::jsonb);
    RETURN NEW;
END
$$;

CREATE TRIGGER contexts_tokenizer BEFORE INSERT OR UPDATE OF extra ON contexts
    FOR EACH ROW WHEN (NEW.extra ? 'tokenizer') EXECUTE FUNCTION contexts_tokenizer();
