-- Columns for the fields the engine's records gained after 0001: a
-- message's pruned mark (its text dropped by retention, its chain hash and
-- token count kept) and uncounted mark (its blocks keep estimated costs
-- until the next request's batch counts them); a node's details header
-- cost (the outline layout's "Details of [span]:") and a block's join
-- cost (what it adds written right after the previous block of its
-- message). Rows written before carry these in extra: they move to the
-- columns.
ALTER TABLE messages
    ADD COLUMN pruned    boolean NOT NULL DEFAULT false,
    ADD COLUMN uncounted boolean NOT NULL DEFAULT false;
UPDATE messages
   SET pruned = coalesce((extra->>'pruned')::boolean, false),
       uncounted = coalesce((extra->>'uncounted')::boolean, false),
       extra = nullif(extra - 'pruned' - 'uncounted', '{}'::jsonb)
 WHERE extra ?| ARRAY['pruned', 'uncounted'];

ALTER TABLE blocks
    ADD COLUMN details_head integer NOT NULL DEFAULT 0,
    ADD COLUMN join_cost    integer NOT NULL DEFAULT 0;
UPDATE blocks
   SET details_head = coalesce((extra->>'dh')::integer, 0),
       join_cost = coalesce((extra->>'j')::integer, 0),
       extra = nullif(extra - 'dh' - 'j', '{}'::jsonb)
 WHERE extra ?| ARRAY['dh', 'j'];

ALTER TABLE nodes
    ADD COLUMN details_head integer NOT NULL DEFAULT 0;
UPDATE nodes
   SET details_head = coalesce((extra->>'dh')::integer, 0),
       extra = nullif(extra - 'dh', '{}'::jsonb)
 WHERE extra ? 'dh';
