-- The MegaContext store: one row per record, one table per kind of record.
-- Every table below contexts is keyed by the context's numeric id first, so
-- that a context's records are contiguous in each primary key index, and
-- carries the context version that last wrote the row, so that a replica
-- holding a context at version v reads only what changed since.

-- Who calls: the isolation boundary. Nothing of one tenant is reachable
-- from another's rows (every lookup starts from tenants.id).
CREATE TABLE tenants (
    id         text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9._-]{1,64}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One MegaContext: a named memory of a tenant. version is bumped by every
-- write to any of its records (optimistic concurrency, and the freshness
-- check every replica makes before answering from its cache). A context
-- deleted and made again gets a new id, so a cache of the old one can
-- never pass for the new one.
CREATE TABLE contexts (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  text   NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name       text   NOT NULL CHECK (octet_length(name) BETWEEN 1 AND 256),
    version    bigint NOT NULL DEFAULT 1,
    created_ms bigint NOT NULL,
    updated_ms bigint NOT NULL,
    messages   integer NOT NULL DEFAULT 0,
    tokens     bigint  NOT NULL DEFAULT 0,
    bytes      bigint  NOT NULL DEFAULT 0,
    UNIQUE (tenant_id, name)
);

-- Conversations: a new conversation starts a thread; a message that
-- continues a thread's newest message extends it; one that continues an
-- earlier message (an edit, a regenerate) forks a new thread there.
-- Maintained by the database as messages are inserted (messages_thread).
CREATE TABLE threads (
    context_id bigint  NOT NULL REFERENCES contexts (id) ON DELETE CASCADE,
    id         integer NOT NULL,
    -- fork_seq is the message the thread branched from; NULL for a new
    -- conversation.
    fork_seq   bigint,
    first_seq  bigint  NOT NULL,
    head_seq   bigint  NOT NULL,
    messages   integer NOT NULL DEFAULT 1,
    created_ms bigint  NOT NULL,
    updated_ms bigint  NOT NULL,
    PRIMARY KEY (context_id, id)
);
-- Finding the thread a new message continues.
CREATE UNIQUE INDEX threads_head ON threads (context_id, head_seq);

-- Every message, in arrival order (seq). parent is -1 for the first message
-- of a conversation. raw is the client's JSON of it, byte for byte (text,
-- not jsonb, which would normalize it).
CREATE TABLE messages (
    context_id   bigint  NOT NULL REFERENCES contexts (id) ON DELETE CASCADE,
    seq          bigint  NOT NULL CHECK (seq >= 0),
    parent       bigint  NOT NULL CHECK (parent >= -1 AND parent < seq),
    thread_id    integer NOT NULL,
    chain_hash   text    NOT NULL,
    raw_key      bytea   CHECK (octet_length(raw_key) = 16),
    role         text    NOT NULL,
    name         text    NOT NULL DEFAULT '',
    body         text    NOT NULL,
    raw          text,
    extra_tokens integer NOT NULL DEFAULT 0,
    tokens       integer NOT NULL DEFAULT 0,
    time_ms      bigint  NOT NULL,
    first_block  integer NOT NULL DEFAULT -1,
    last_block   integer NOT NULL DEFAULT -1,
    partial      boolean NOT NULL DEFAULT false,
    superseded   boolean NOT NULL DEFAULT false,
    damaged      boolean NOT NULL DEFAULT false,
    version      bigint  NOT NULL,
    PRIMARY KEY (context_id, seq),
    FOREIGN KEY (context_id, thread_id) REFERENCES threads (context_id, id)
);
-- What changed since a version (a replica catching up).
CREATE INDEX messages_changed ON messages (context_id, version);

-- Policy tags of a message: the rules whose spans its text or name holds,
-- and (whole) the rules tagged on the whole message through the admin API.
CREATE TABLE tags (
    context_id bigint  NOT NULL,
    seq        bigint  NOT NULL,
    rule       text    NOT NULL,
    whole      boolean NOT NULL DEFAULT false,
    PRIMARY KEY (context_id, seq, rule),
    FOREIGN KEY (context_id, seq) REFERENCES messages (context_id, seq) ON DELETE CASCADE
);

-- Level 0 of the gist tree: blocks of at most K tokens, never crossing a
-- message. A block's text is its message's body from text_start on, for
-- text_len bytes; body holds it only when it is not (a block rebuilt from
-- damage). spans are the sensitive spans found at ingest ([{s, e, r}],
-- byte offsets into the block's text), in the order they apply.
CREATE TABLE blocks (
    context_id bigint  NOT NULL,
    idx        integer NOT NULL CHECK (idx >= 0),
    msg_seq    bigint  NOT NULL,
    part       integer NOT NULL,
    role       text    NOT NULL,
    time_ms    bigint  NOT NULL,
    tokens     integer NOT NULL,
    cost       integer NOT NULL,
    head       integer NOT NULL,
    text_start integer NOT NULL,
    text_len   integer NOT NULL,
    body       text,
    hash       bytea   NOT NULL CHECK (octet_length(hash) = 32),
    spans      jsonb,
    version    bigint  NOT NULL,
    PRIMARY KEY (context_id, idx),
    FOREIGN KEY (context_id, msg_seq) REFERENCES messages (context_id, seq) ON DELETE CASCADE
);
CREATE INDEX blocks_changed ON blocks (context_id, version);

-- Levels 1 and up: gist nodes over F consecutive children, with a Merkle
-- hash of their children's hashes.
CREATE TABLE nodes (
    context_id  bigint   NOT NULL REFERENCES contexts (id) ON DELETE CASCADE,
    level       smallint NOT NULL CHECK (level >= 1),
    idx         integer  NOT NULL CHECK (idx >= 0),
    first_block integer  NOT NULL,
    last_block  integer  NOT NULL,
    msg_seq     bigint   NOT NULL,
    tokens      integer  NOT NULL,
    gist        text     NOT NULL,
    cost        integer  NOT NULL,
    short       text     NOT NULL DEFAULT '',
    short_cost  integer  NOT NULL DEFAULT 0,
    head        integer  NOT NULL DEFAULT 0,
    hash        bytea    NOT NULL CHECK (octet_length(hash) = 32),
    time_ms     bigint   NOT NULL,
    time_end_ms bigint   NOT NULL,
    tags        text[],
    version     bigint   NOT NULL,
    PRIMARY KEY (context_id, level, idx)
);
CREATE INDEX nodes_changed ON nodes (context_id, version);

-- Embeddings of blocks (the semantic lens), int8 with one scale each.
CREATE TABLE vectors (
    context_id bigint  NOT NULL,
    block      integer NOT NULL,
    scale      real    NOT NULL,
    data       bytea   NOT NULL,
    version    bigint  NOT NULL,
    PRIMARY KEY (context_id, block),
    FOREIGN KEY (context_id, block) REFERENCES blocks (context_id, idx) ON DELETE CASCADE
);
CREATE INDEX vectors_changed ON vectors (context_id, version);

-- Focus telemetry of tree nodes (level 0 for blocks): how often a node was
-- shown, expanded or collapsed, and when last. Counters are added to, never
-- overwritten, so replicas' increments merge.
CREATE TABLE telemetry (
    context_id     bigint   NOT NULL REFERENCES contexts (id) ON DELETE CASCADE,
    level          smallint NOT NULL,
    idx            integer  NOT NULL,
    accesses       bigint   NOT NULL DEFAULT 0,
    expanded       bigint   NOT NULL DEFAULT 0,
    collapsed      bigint   NOT NULL DEFAULT 0,
    resident_turns bigint   NOT NULL DEFAULT 0,
    last_access_ms bigint   NOT NULL DEFAULT 0,
    PRIMARY KEY (context_id, level, idx)
);

-- Where a context's records came from: imports, forks and merges of
-- snapshots, with the Merkle root they were verified against.
CREATE TABLE provenance (
    context_id bigint NOT NULL REFERENCES contexts (id) ON DELETE CASCADE,
    id         bigint GENERATED ALWAYS AS IDENTITY,
    kind       text   NOT NULL,
    root       bytea,
    source     text   NOT NULL DEFAULT '',
    signer     text   NOT NULL DEFAULT '',
    at_ms      bigint NOT NULL,
    detail     jsonb,
    PRIMARY KEY (context_id, id)
);

-- Background work (embedding a context's new blocks, rebuilding gists,
-- flushing telemetry) claimed by one replica at a time: a claim is a lease
-- that another replica may take over once it expires (its holder died).
CREATE TABLE jobs (
    context_id  bigint NOT NULL REFERENCES contexts (id) ON DELETE CASCADE,
    kind        text   NOT NULL,
    claimed_by  text   NOT NULL,
    lease_until timestamptz NOT NULL,
    PRIMARY KEY (context_id, kind)
);

-- messages_thread assigns a new message its thread: the thread whose newest
-- message is its parent, else a new one (a new conversation, or a fork).
CREATE FUNCTION messages_thread() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    tid integer;
BEGIN
    IF NEW.parent >= 0 THEN
        UPDATE threads SET head_seq = NEW.seq, messages = messages + 1, updated_ms = NEW.time_ms
         WHERE context_id = NEW.context_id AND head_seq = NEW.parent
        RETURNING id INTO tid;
    END IF;
    IF tid IS NULL THEN
        SELECT coalesce(max(id) + 1, 0) INTO tid FROM threads WHERE context_id = NEW.context_id;
        INSERT INTO threads (context_id, id, fork_seq, first_seq, head_seq, created_ms, updated_ms)
        VALUES (NEW.context_id, tid, CASE WHEN NEW.parent >= 0 THEN NEW.parent END, NEW.seq, NEW.seq, NEW.time_ms, NEW.time_ms);
    END IF;
    NEW.thread_id := tid;
    RETURN NEW;
END
$$;

CREATE TRIGGER messages_thread BEFORE INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_thread();
