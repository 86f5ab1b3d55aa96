package pgstore

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/megacontext/megacontext/memory/store"
	"github.com/megacontext/megacontext/memory/tree"
)

// Options configure Open.
type Options struct {
	// DSN is the PostgreSQL connection string.
	DSN string
	// MaxConns bounds the pool (default 16).
	MaxConns int
	// AutoMigrate brings the schema up to date at Open; off, Open refuses
	// a schema that is behind (ErrSchemaOld).
	AutoMigrate bool
	// ConnectTimeout bounds connecting to the database when the DSN sets
	// none (default 3 s), so that a database that is down fails requests
	// fast instead of hanging them.
	ConnectTimeout time.Duration
	// Timeout bounds each call that takes no context (Put, Get, Scan,
	// Delete; default 10 s).
	Timeout time.Duration
	// Logger receives diagnostics (default: discarded).
	Logger *slog.Logger
	// SynchronousCommit is synchronous_commit for every session ("off":
	// a commit returns before its WAL reaches the disk, so a crash of the
	// database machine may lose the last few hundred milliseconds of
	// commits, never corrupting anything); "" (the default) keeps the
	// database's setting.
	SynchronousCommit string
}

// Store keeps the engine's records in PostgreSQL, one table per kind: a
// store.Shared, written by any number of replicas at once. It is safe for
// concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	log     *slog.Logger
	timeout time.Duration
	// holder names this process in job claims.
	holder string
}

var _ store.Shared = (*Store)(nil)

// Open connects to the database and checks (or, with AutoMigrate, brings
// up to date) its schema.
func Open(ctx context.Context, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(opts.DSN)
	if err != nil {
		return nil, fmt.Errorf("pgstore: store.dsn: %w", err)
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 16
	}
	cfg.MaxConns = int32(opts.MaxConns)
	if opts.SynchronousCommit != "" {
		// A startup parameter of every session: no statement per commit.
		cfg.ConnConfig.RuntimeParams["synchronous_commit"] = opts.SynchronousCommit
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		if opts.ConnectTimeout <= 0 {
			opts.ConnectTimeout = 3 * time.Second
		}
		cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	s := &Store{pool: pool, log: opts.Logger, timeout: opts.Timeout, holder: holderName()}
	if err := s.checkSchema(ctx, opts.AutoMigrate); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// holderName names this process for job claims: host, pid and a random
// suffix (pids repeat across containers).
func holderName() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

func (s *Store) checkSchema(ctx context.Context, migrate bool) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: connect: %w", wrap(err))
	}
	defer conn.Release()
	if migrate {
		done, err := Migrate(ctx, conn.Conn())
		for _, m := range done {
			s.log.Info("database schema migrated", "migration", m.Name)
		}
		return err
	}
	_, err = Status(ctx, conn.Conn())
	return err
}

// Close closes every connection.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Compact makes the space of rewritten and deleted rows reusable (VACUUM
// of the tables that hold text), after an erasure. PostgreSQL keeps no
// file that could be rewritten in place: the old row versions are gone
// from the tables once vacuumed, but the write-ahead log, replicas and
// backups keep them until they are recycled.
func (s *Store) Compact() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	_, err := s.pool.Exec(ctx, "VACUUM messages, tags, blocks, nodes, vectors, responses, provenance, pins")
	return wrap(err)
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error { return wrap(s.pool.Ping(ctx)) }

// FileSize returns the database's size in bytes (0 when it cannot be read).
func (s *Store) FileSize() int64 {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var n int64
	if err := s.pool.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&n); err != nil {
		return 0
	}
	return n
}

// conflictCode is the SQLSTATE mc_create and mc_advance raise.
const conflictCode = "MC409"

// wrap marks errors that mean the database cannot be reached now with
// store.ErrUnavailable (the proxy answers 503 for them) and lost races
// with store.ErrConflict; other errors the server reports stay as they are.
func wrap(err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == conflictCode:
			return fmt.Errorf("%w: %s", store.ErrConflict, pe.Message)
		case len(pe.Code) == 5 && pe.Code[:2] == "08", // connection exception
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", // shutting down, starting up
			pe.Code == "53300": // too many connections
			return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
		}
		return fmt.Errorf("pgstore: %w", err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	if errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) {
		return fmt.Errorf("%w: %w: %w", store.ErrUnavailable, store.ErrTimeout, err)
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || pgconn.SafeToRetry(err) {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return err
}

func (s *Store) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.timeout)
}

// msgColumns are the columns of a message row, as readMessages scans them.
const msgColumns = `seq, parent, chain_hash, raw_key, role, name, body, raw, extra_tokens, tokens, time_ms,
	first_block, last_block, partial, superseded, damaged, origin_context, origin_seq, origin_time_ms, extra,
	pruned, uncounted`

// blockColumns and nodeColumns are the columns of block and gist rows, as
// readBlocks and readNodes scan them.
const (
	blockColumns = `idx, msg_seq, part, role, time_ms, tokens, cost, head, body, hash, spans, extra, details_head, join_cost`
	nodeColumns  = `level, idx, first_block, last_block, msg_seq, tokens, gist, cost, short, short_cost, head,
	                hash, time_ms, time_end_ms, tags, extra, details_head`
)

// The queries of the store, each served by an index (TestQueriesUseIndexes).
const (
	qVersion = `SELECT id, version FROM contexts WHERE tenant_id = $1 AND name = $2 AND header`
	qID      = `SELECT id FROM contexts WHERE tenant_id = $1 AND name = $2`
	qHeader  = `SELECT id, version, created_ms, updated_ms, messages, tokens, bytes, policy, tokenizer, extra
	              FROM contexts WHERE tenant_id = $1 AND name = $2 AND header`
	qHeaders = `SELECT name, created_ms, updated_ms, messages, tokens, bytes, policy, tokenizer, extra FROM contexts WHERE tenant_id = $1 AND header`
	qPending = `SELECT tenant_id, name FROM contexts WHERE NOT header AND pending_since < now() - $1::interval`

	// The reads of a context's messages, tags, blocks, gists and vectors
	// come in two shapes. The range reads (a load, a Get or Scan) take the
	// rows whose numbers lie within a span, through the primary keys. The
	// changed reads (a replica's check of its cache, every request) take
	// the rows written after a version, through the *_changed indexes, and
	// only when the context's version moved past it: the guard is an
	// uncorrelated subquery, which PostgreSQL runs once, before the scan,
	// as a one-time filter, so that the check of an unchanged context
	// scans nothing. (The range reads once served both, with the version
	// as a filter: a prepared statement's generic plan then walked every
	// row of the context through the primary key on each request.)
	qMessages = `SELECT ` + msgColumns + ` FROM messages WHERE context_id = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq`
	// qMessageAt and qTagsAt read one message of a context named by tenant
	// and name, in the same round trip as finding the context.
	qMessageAt = `SELECT ` + msgColumns + ` FROM messages
	                WHERE context_id = (SELECT id FROM contexts WHERE tenant_id = $1 AND name = $2) AND seq = $3`
	qTagsAt = `SELECT seq, rule, tagged, whole FROM tags
	             WHERE context_id = (SELECT id FROM contexts WHERE tenant_id = $1 AND name = $2) AND seq = $3 ORDER BY ord`
	qTags    = `SELECT seq, rule, tagged, whole FROM tags WHERE context_id = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq, ord`
	qBlocks  = `SELECT ` + blockColumns + ` FROM blocks WHERE context_id = $1 AND idx >= $2 AND idx <= $3 ORDER BY idx`
	qNodes   = `SELECT ` + nodeColumns + ` FROM nodes WHERE context_id = $1 AND level >= $2::int AND level <= $3::int ORDER BY level, idx`
	qVectors = `SELECT block, scale, data FROM vectors WHERE context_id = $1 AND block >= $2 AND block <= $3 ORDER BY block`

	// changedGuard holds the changed reads' scans off unless the context
	// ($1) moved past version $2.
	changedGuard     = ` AND (SELECT version FROM contexts WHERE id = $1) > $2`
	qMessagesChanged = `SELECT ` + msgColumns + ` FROM messages WHERE context_id = $1 AND version > $2` + changedGuard + ` ORDER BY seq`
	qTagsChanged     = `SELECT t.seq, t.rule, t.tagged, t.whole FROM messages m
	                  JOIN tags t ON t.context_id = m.context_id AND t.seq = m.seq
	                 WHERE m.context_id = $1 AND m.version > $2` + changedGuard + ` ORDER BY t.seq, t.ord`
	qBlocksChanged  = `SELECT ` + blockColumns + ` FROM blocks WHERE context_id = $1 AND version > $2` + changedGuard + ` ORDER BY idx`
	qNodesChanged   = `SELECT ` + nodeColumns + ` FROM nodes WHERE context_id = $1 AND version > $2 AND level >= 1` + changedGuard + ` ORDER BY level, idx`
	qVectorsChanged = `SELECT block, scale, data FROM vectors WHERE context_id = $1 AND version > $2` + changedGuard + ` ORDER BY block`
	qFocus          = `SELECT level, idx, expanded, last_expanded_ms, resident, last_resident_ms, swaps, questions, last_question, extra FROM telemetry WHERE context_id = $1 ORDER BY level, idx`
	qPins           = `SELECT record FROM pins WHERE context_id = $1 AND version > $2`
	qProv           = `SELECT seq, record FROM provenance WHERE context_id = $1 ORDER BY seq`
	qResps          = `SELECT id, record FROM responses WHERE context_id = $1 ORDER BY id`
	qResp           = `SELECT r.record FROM responses r JOIN contexts c ON c.id = r.context_id WHERE r.tenant_id = $1 AND r.id = $2 AND c.name = $3`
	qRespCtx        = `SELECT c.name FROM responses r JOIN contexts c ON c.id = r.context_id WHERE r.tenant_id = $1 AND r.id = $2`
	qSnapshot       = `SELECT record FROM snapshots WHERE context_id = $1`

	// qBeginSnapshot starts the transaction of a batch whose reads must
	// agree (sinceIn).
	qBeginSnapshot = `BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY`

	qNextID  = `SELECT nextval(pg_get_serial_sequence('contexts', 'id'))`
	qContext = `SELECT mc_context($1, $2)`
	qCreate  = `SELECT mc_create($1, $2, $3)`
	qAdvance = `SELECT mc_advance($1, $2)`
	// qAdvanceHeader is qAdvance and qPutHeader in one statement (the
	// signature of migration 0004, with the tokenizer).
	qAdvanceHeader = `SELECT mc_advance_header($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`
	qBump          = `UPDATE contexts SET version = version + 1 WHERE id = $1 RETURNING version`

	qPutHeader = `UPDATE contexts SET header = true, pending_since = NULL, created_ms = $2, updated_ms = $3, messages = $4,
	                  tokens = $5, bytes = $6, policy = $7, tokenizer = $8, extra = $9 WHERE id = $1`
	// qPutMessage writes a message and deletes its tags, in one statement
	// (qPutTags writes them again after it, if any).
	qPutMessage = `WITH untag AS (DELETE FROM tags WHERE context_id = $1 AND seq = $2)
	               INSERT INTO messages (context_id, seq, parent, chain_hash, raw_key, role, name, body, raw, extra_tokens, tokens,
	                   time_ms, first_block, last_block, partial, superseded, damaged, origin_context, origin_seq, origin_time_ms, extra, version,
	                   pruned, uncounted)
	               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)
	               ON CONFLICT (context_id, seq) DO UPDATE SET parent = EXCLUDED.parent, chain_hash = EXCLUDED.chain_hash,
	                   raw_key = EXCLUDED.raw_key, role = EXCLUDED.role, name = EXCLUDED.name, body = EXCLUDED.body, raw = EXCLUDED.raw,
	                   extra_tokens = EXCLUDED.extra_tokens, tokens = EXCLUDED.tokens, time_ms = EXCLUDED.time_ms,
	                   first_block = EXCLUDED.first_block, last_block = EXCLUDED.last_block, partial = EXCLUDED.partial,
	                   superseded = EXCLUDED.superseded, damaged = EXCLUDED.damaged, origin_context = EXCLUDED.origin_context,
	                   origin_seq = EXCLUDED.origin_seq, origin_time_ms = EXCLUDED.origin_time_ms, extra = EXCLUDED.extra,
	                   version = EXCLUDED.version, pruned = EXCLUDED.pruned, uncounted = EXCLUDED.uncounted`
	qPutTags = `INSERT INTO tags (context_id, seq, ord, rule, tagged, whole)
	               SELECT $1, $2, u.ord, u.rule, u.tagged, u.whole
	                 FROM unnest($3::smallint[], $4::text[], $5::boolean[], $6::boolean[]) AS u(ord, rule, tagged, whole)`
	// qPutBlocks writes a write's blocks of one context in one statement,
	// a row of each element of the arrays (blockRows); the context's id
	// and the version are $1 and $2.
	qPutBlocks = `INSERT INTO blocks (context_id, idx, msg_seq, part, role, time_ms, tokens, cost, head, body, hash, spans, extra, version,
	                  details_head, join_cost)
	              SELECT $1, u.idx, u.msg_seq, u.part, u.role, u.time_ms, u.tokens, u.cost, u.head, u.body, u.hash, u.spans, u.extra, $2,
	                  u.details_head, u.join_cost
	                FROM unnest($3::integer[], $4::bigint[], $5::integer[], $6::text[], $7::bigint[], $8::integer[], $9::integer[],
	                            $10::integer[], $11::text[], $12::bytea[], $13::jsonb[], $14::jsonb[], $15::integer[], $16::integer[])
	                  AS u(idx, msg_seq, part, role, time_ms, tokens, cost, head, body, hash, spans, extra, details_head, join_cost)
	              ON CONFLICT (context_id, idx) DO UPDATE SET msg_seq = EXCLUDED.msg_seq, part = EXCLUDED.part,
	                  role = EXCLUDED.role, time_ms = EXCLUDED.time_ms, tokens = EXCLUDED.tokens, cost = EXCLUDED.cost,
	                  head = EXCLUDED.head, body = EXCLUDED.body, hash = EXCLUDED.hash, spans = EXCLUDED.spans,
	                  extra = EXCLUDED.extra, version = EXCLUDED.version, details_head = EXCLUDED.details_head,
	                  join_cost = EXCLUDED.join_cost`
	qPutNode = `INSERT INTO nodes (context_id, level, idx, first_block, last_block, msg_seq, tokens, gist, cost, short,
	                short_cost, head, hash, time_ms, time_end_ms, tags, extra, version, details_head)
	            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
	            ON CONFLICT (context_id, level, idx) DO UPDATE SET first_block = EXCLUDED.first_block,
	                last_block = EXCLUDED.last_block, msg_seq = EXCLUDED.msg_seq, tokens = EXCLUDED.tokens,
	                gist = EXCLUDED.gist, cost = EXCLUDED.cost, short = EXCLUDED.short, short_cost = EXCLUDED.short_cost,
	                head = EXCLUDED.head, hash = EXCLUDED.hash, time_ms = EXCLUDED.time_ms,
	                time_end_ms = EXCLUDED.time_end_ms, tags = EXCLUDED.tags, extra = EXCLUDED.extra, version = EXCLUDED.version,
	                details_head = EXCLUDED.details_head`
	qPutVector = `INSERT INTO vectors (context_id, block, scale, data, version) VALUES ($1, $2, $3, $4, $5)
	              ON CONFLICT (context_id, block) DO UPDATE SET scale = EXCLUDED.scale, data = EXCLUDED.data,
	                  version = EXCLUDED.version`
	qPutFocus = `INSERT INTO telemetry (context_id, level, idx, expanded, last_expanded_ms, resident, last_resident_ms, swaps, questions, last_question, extra)
	             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
	             ON CONFLICT (context_id, level, idx) DO UPDATE SET expanded = EXCLUDED.expanded,
	                 last_expanded_ms = EXCLUDED.last_expanded_ms, resident = EXCLUDED.resident,
	                 last_resident_ms = EXCLUDED.last_resident_ms, swaps = EXCLUDED.swaps, questions = EXCLUDED.questions,
	                 last_question = EXCLUDED.last_question, extra = EXCLUDED.extra`
	// qAddFocus adds telemetry counts to a context's (AddCounts): the
	// counts add up, the times of last use keep the later, the last
	// question is the one added when it names one.
	qAddFocus = `INSERT INTO telemetry AS t (context_id, level, idx, expanded, last_expanded_ms, resident, last_resident_ms, swaps,
	                 questions, last_question, extra)
	             SELECT c.id, u.level, u.idx, u.expanded, u.last_expanded_ms, u.resident, u.last_resident_ms, u.swaps, u.questions,
	                 u.last_question, u.extra
	               FROM contexts c,
	                    unnest($3::smallint[], $4::integer[], $5::integer[], $6::bigint[], $7::integer[], $8::bigint[], $9::integer[],
	                           $10::integer[], $11::bigint[], $12::jsonb[])
	                    AS u(level, idx, expanded, last_expanded_ms, resident, last_resident_ms, swaps, questions, last_question, extra)
	              WHERE c.tenant_id = $1 AND c.name = $2
	             ON CONFLICT (context_id, level, idx) DO UPDATE SET expanded = t.expanded + EXCLUDED.expanded,
	                 last_expanded_ms = greatest(t.last_expanded_ms, EXCLUDED.last_expanded_ms), resident = t.resident + EXCLUDED.resident,
	                 last_resident_ms = greatest(t.last_resident_ms, EXCLUDED.last_resident_ms), swaps = t.swaps + EXCLUDED.swaps,
	                 questions = t.questions + EXCLUDED.questions,
	                 last_question = CASE WHEN EXCLUDED.last_question <> 0 THEN EXCLUDED.last_question ELSE t.last_question END,
	                 extra = coalesce(EXCLUDED.extra, t.extra)
	             RETURNING t.level, t.idx, t.expanded, t.last_expanded_ms, t.resident, t.last_resident_ms, t.swaps, t.questions,
	                 t.last_question, t.extra`
	qPutPins = `INSERT INTO pins (context_id, record, version) VALUES ($1, $2, $3)
	            ON CONFLICT (context_id) DO UPDATE SET record = EXCLUDED.record, version = EXCLUDED.version`
	qPutProv = `INSERT INTO provenance (context_id, seq, kind, time_ms, record) VALUES ($1, $2, $3, $4, $5)
	            ON CONFLICT (context_id, seq) DO UPDATE SET kind = EXCLUDED.kind, time_ms = EXCLUDED.time_ms, record = EXCLUDED.record`
	qPutResp = `INSERT INTO responses (tenant_id, id, context_id, record) VALUES ($1, $2, $3, $4)
	            ON CONFLICT (tenant_id, id) DO UPDATE SET context_id = EXCLUDED.context_id, record = EXCLUDED.record`
	qPutSnapshot = `INSERT INTO snapshots (context_id, record) VALUES ($1, $2)
	                ON CONFLICT (context_id) DO UPDATE SET record = EXCLUDED.record`
	qDropPending = `DELETE FROM contexts WHERE tenant_id = $1 AND name = $2 AND NOT header`

	qDeleteContext = `DELETE FROM contexts WHERE tenant_id = $1 AND name = $2`
	qDeleteResp    = `DELETE FROM responses WHERE tenant_id = $1 AND id = $2`
	qDeleteSnap    = `DELETE FROM snapshots WHERE context_id = $1`

	qLock   = `SELECT pg_advisory_lock(hashtextextended($1 || '/' || $2, 0))`
	qUnlock = `SELECT pg_advisory_unlock(hashtextextended($1 || '/' || $2, 0))`
	qClaim  = `INSERT INTO jobs (context_id, kind, claimed_by, lease_until)
	            SELECT id, $3, $4, now() + make_interval(secs => $5) FROM contexts WHERE tenant_id = $1 AND name = $2
	            ON CONFLICT (context_id, kind) DO UPDATE SET claimed_by = EXCLUDED.claimed_by, lease_until = EXCLUDED.lease_until
	             WHERE jobs.lease_until < now() OR jobs.claimed_by = EXCLUDED.claimed_by
	            RETURNING context_id`
	qRelease = `DELETE FROM jobs WHERE context_id = $1 AND kind = $2 AND claimed_by = $3`
)

// deleteQueries delete a context's records of one kind.
var deleteQueries = map[string][]string{
	kindMessage:    {`DELETE FROM messages WHERE context_id = $1`},
	kindNode:       {`DELETE FROM blocks WHERE context_id = $1`, `DELETE FROM nodes WHERE context_id = $1`},
	kindVector:     {`DELETE FROM vectors WHERE context_id = $1`},
	kindFocus:      {`DELETE FROM telemetry WHERE context_id = $1`},
	kindProvenance: {`DELETE FROM provenance WHERE context_id = $1`},
	kindResponse:   {`DELETE FROM responses WHERE context_id = $1`},
}

// pendingAge is how long a context may stay without header before a
// replica starting up takes it for an interrupted import (and the engine
// removes it): long enough that no import in progress is taken for one.
const pendingAge = "10 minutes"

// Version returns the context's current version.
func (s *Store) Version(ctx context.Context, tenant, name string) (store.Version, error) {
	var v store.Version
	err := s.pool.QueryRow(ctx, qVersion, tenant, pgName(name)).Scan(&v.Epoch, &v.N)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Version{}, nil
	}
	return v, wrap(err)
}

// span bounds a read of one kind of records: all rows, or one.
type span struct{ lo, hi int64 }

var everything = span{-1, 1<<31 - 1}

// Since reads a context's header, messages, tree and vectors written after
// since (all of them, when since is zero or of another epoch), in one
// repeatable-read snapshot so that they agree.
func (s *Store) Since(ctx context.Context, tenant, name string, since store.Version) (*store.Changes, error) {
	if !since.IsZero() {
		out, err := s.sinceIn(ctx, tenant, name, since)
		if err != nil || !out.Full || out.Version.IsZero() {
			return out, err
		}
		// Made again since (another epoch): read it whole.
	}
	out := &store.Changes{}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var h headerJSON
		var v store.Version
		var extra []byte
		err := tx.QueryRow(ctx, qHeader, tenant, pgName(name)).Scan(append([]any{&v.Epoch, &v.N}, h.columns(&extra)...)...)
		if errors.Is(err, pgx.ErrNoRows) {
			out.Full = true
			return nil
		}
		if err != nil {
			return err
		}
		out.Version = v
		after := since.N
		if since.Epoch != v.Epoch {
			after, out.Full = 0, true
		}
		k := key{tenant: tenant, context: name}
		emit := func(kk key, val string) { out.Records = append(out.Records, store.KV{Key: kk.String(), Value: val}) }
		ck := k
		ck.kind = kindContext
		emit(ck, h.value(extra))
		var pins string
		switch err := tx.QueryRow(ctx, qPins, v.Epoch, after).Scan(&pins); {
		case err == nil:
			pk := k
			pk.kind = kindPins
			emit(pk, goText(pins))
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		return s.readTree(ctx, tx, k, v.Epoch, after, everything, emit)
	})
	if err != nil {
		return nil, wrap(err)
	}
	return out, nil
}

// sinceIn is Since from a version of the context's current epoch, in one
// round trip: the header, the pins and the records written since, read in
// one repeatable-read transaction sent as one batch. Full (without
// records) means the context is now of another epoch; a zero Version, that
// it is gone. This is the request path of every replica (refresh): one
// round trip whether the context changed or not.
func (s *Store) sinceIn(ctx context.Context, tenant, name string, since store.Version) (*store.Changes, error) {
	out := &store.Changes{}
	b := &pgx.Batch{}
	b.Queue(qBeginSnapshot)
	b.Queue(qHeader, tenant, pgName(name))
	b.Queue(qPins, since.Epoch, since.N)
	queueTree(b, since.Epoch, since.N, everything)
	b.Queue("COMMIT")
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	err := func() error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		var h headerJSON
		var v store.Version
		var extra []byte
		err := br.QueryRow().Scan(append([]any{&v.Epoch, &v.N}, h.columns(&extra)...)...)
		if errors.Is(err, pgx.ErrNoRows) {
			out.Full = true
			return nil
		}
		if err != nil {
			return err
		}
		out.Version = v
		if v.Epoch != since.Epoch {
			out.Full = true
			return nil
		}
		k := key{tenant: tenant, context: name}
		emit := func(kk key, val string) { out.Records = append(out.Records, store.KV{Key: kk.String(), Value: val}) }
		ck := k
		ck.kind = kindContext
		emit(ck, h.value(extra))
		var pins string
		switch err := br.QueryRow().Scan(&pins); {
		case err == nil:
			pk := k
			pk.kind = kindPins
			emit(pk, goText(pins))
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		if err := readTreeResults(br, k, emit); err != nil {
			return err
		}
		_, err = br.Exec()
		return err
	}()
	if err != nil {
		return nil, wrap(err)
	}
	return out, wrap(br.Close())
}

// querier is a pool or a transaction.
type querier interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// readTree reads a context's messages, blocks, nodes and vectors written
// after version after, within sp (of each kind's numbers), and emits them
// in key order.
func (s *Store) readTree(ctx context.Context, q querier, k key, id, after int64, sp span, emit func(key, string)) error {
	b := &pgx.Batch{}
	queueTree(b, id, after, sp)
	br := q.SendBatch(ctx, b)
	defer br.Close()
	if err := readTreeResults(br, k, emit); err != nil {
		return err
	}
	return br.Close()
}

// queueTree queues the reads of readTree: the rows within sp when after
// is 0 (every row is of a version above 0), else the rows written after
// version after (sp must then be everything).
func queueTree(b *pgx.Batch, id, after int64, sp span) {
	if after > 0 {
		b.Queue(qMessagesChanged, id, after)
		b.Queue(qTagsChanged, id, after)
		b.Queue(qBlocksChanged, id, after)
		b.Queue(qNodesChanged, id, after)
		b.Queue(qVectorsChanged, id, after)
		return
	}
	b.Queue(qMessages, id, sp.lo, sp.hi)
	b.Queue(qTags, id, sp.lo, sp.hi)
	b.Queue(qBlocks, id, sp.lo, sp.hi)
	b.Queue(qNodes, id, max(sp.lo, 1), sp.hi)
	b.Queue(qVectors, id, sp.lo, sp.hi)
}

// readTreeResults reads the results of queueTree's queries and emits the
// records in key order.
func readTreeResults(br pgx.BatchResults, k key, emit func(key, string)) error {
	msgs, err := readMessages(br)
	if err != nil {
		return err
	}
	if err := readTags(br, msgs); err != nil {
		return err
	}
	for _, m := range msgs {
		mk := k
		mk.kind, mk.a = kindMessage, m.Seq
		emit(mk, withExtra(encode(m), m.extra))
	}
	rows, err := br.Query()
	blocks, err := rowsOf(rows, err, scanBlock)
	if err != nil {
		return err
	}
	rows, err = br.Query()
	gists, err := rowsOf(rows, err, scanGist)
	if err != nil {
		return err
	}
	for _, n := range append(blocks, gists...) {
		nk := k
		nk.kind, nk.a, nk.b = kindNode, int64(n.Level), int64(n.Index)
		emit(nk, withExtra(encode(n.Node), n.extra))
	}
	var block int64
	var scale float32
	var data []byte
	rows, err = br.Query()
	return eachRow(rows, err, []any{&block, &scale, &data}, func() error {
		vk := k
		vk.kind, vk.a = kindVector, block
		emit(vk, vectorValue(scale, data))
		return nil
	})
}

// rowsOf reads every row of a result (rows and err, as a query returns
// them) with scan, which makes a fresh value of each row.
func rowsOf[T any](rows pgx.Rows, err error, scan pgx.RowToFunc[T]) ([]T, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scan)
}

// eachRow scans every row of a result (rows and err, as a query returns
// them) into dst, the same destinations each time, and calls fn after
// each: fn must copy out what it keeps that a destination points into
// (pgx gives every scanned []byte and string storage of its own).
func eachRow(rows pgx.Rows, err error, dst []any, fn func() error) error {
	if err != nil {
		return err
	}
	_, err = pgx.ForEachRow(rows, dst, fn)
	return err
}

func readMessages(br pgx.BatchResults) ([]*msgJSON, error) {
	rows, err := br.Query()
	return rowsOf(rows, err, scanMessage)
}

// scanMessage reads a message row (msgColumns).
func scanMessage(row pgx.CollectableRow) (*msgJSON, error) {
	m := &msgJSON{}
	var rk, raw []byte
	var oc *string
	var os, ot *int64
	if err := row.Scan(&m.Seq, &m.Parent, &m.Hash, &rk, &m.Role, &m.Name, &m.Text, &raw, &m.Extra, &m.Tokens, &m.Time,
		&m.First, &m.Last, &m.Partial, &m.Superseded, &m.Damaged, &oc, &os, &ot, &m.extra, &m.Pruned, &m.Uncounted); err != nil {
		return nil, err
	}
	if len(rk) > 0 {
		m.RawKey = hex.EncodeToString(rk)
	}
	if len(raw) > 0 {
		m.Raw = raw
	}
	if oc != nil {
		m.Origin = &originJSON{Context: goName(*oc), Seq: deref(os), Time: deref(ot)}
	}
	m.Role, m.Name, m.Text = goText(m.Role), goText(m.Name), goText(m.Text)
	return m, nil
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// readTags puts each tag row on its message (rows come in the messages'
// order).
func readTags(br pgx.BatchResults, msgs []*msgJSON) error {
	var seq int64
	var rule string
	var tagged, whole bool
	i := 0
	rows, err := br.Query()
	return eachRow(rows, err, []any{&seq, &rule, &tagged, &whole}, func() error {
		for i < len(msgs) && msgs[i].Seq < seq {
			i++
		}
		if i == len(msgs) || msgs[i].Seq != seq {
			return fmt.Errorf("tag of message %d, which was not read", seq)
		}
		if tagged {
			msgs[i].Tags = append(msgs[i].Tags, goText(rule))
		}
		if whole {
			msgs[i].Whole = append(msgs[i].Whole, goText(rule))
		}
		return nil
	})
}

// treeRow is a block or gist read, with the fields no column holds.
type treeRow struct {
	*tree.Node
	extra []byte
}

// scanBlock reads a block row (blockColumns).
func scanBlock(row pgx.CollectableRow) (treeRow, error) {
	n := &tree.Node{}
	var hash, spans, extra []byte
	if err := row.Scan(&n.Index, &n.Msg, &n.Part, &n.Role, &n.Time, &n.Tokens, &n.Cost, &n.Head, &n.Text, &hash, &spans, &extra,
		&n.DetailsHead, &n.Join); err != nil {
		return treeRow{}, err
	}
	n.First, n.Last, n.TimeEnd = n.Index, n.Index, n.Time
	n.Role, n.Text = goText(n.Role), goText(n.Text)
	copy(n.Hash[:], hash)
	if len(spans) > 0 {
		if err := json.Unmarshal(spans, &n.Spans); err != nil {
			return treeRow{}, fmt.Errorf("spans of block %d: %w", n.Index, err)
		}
	}
	n.Tags = blockTags(n.Spans)
	return treeRow{n, extra}, nil
}

// scanGist reads a gist node row (nodeColumns).
func scanGist(row pgx.CollectableRow) (treeRow, error) {
	n := &tree.Node{}
	var hash, extra []byte
	if err := row.Scan(&n.Level, &n.Index, &n.First, &n.Last, &n.Msg, &n.Tokens, &n.Text, &n.Cost, &n.Short, &n.ShortCost,
		&n.Head, &hash, &n.Time, &n.TimeEnd, &n.Tags, &extra, &n.DetailsHead); err != nil {
		return treeRow{}, err
	}
	n.Text, n.Short, n.Tags = goText(n.Text), goText(n.Short), goTexts(n.Tags)
	copy(n.Hash[:], hash)
	return treeRow{n, extra}, nil
}

// Get returns the record of key.
func (s *Store) Get(k string) (string, bool, error) {
	pk, err := parseKey(k)
	if err != nil {
		return "", false, err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	var val string
	switch pk.kind {
	case kindResponseIndex:
		err = s.pool.QueryRow(ctx, qRespCtx, pk.tenant, pk.id).Scan(&val)
		val = goName(val)
	case kindResponse:
		err = s.pool.QueryRow(ctx, qResp, pk.tenant, pk.id, pgName(pk.context)).Scan(&val)
	case kindContext:
		var h headerJSON
		var v store.Version
		var extra []byte
		err = s.pool.QueryRow(ctx, qHeader, pk.tenant, pgName(pk.context)).Scan(append([]any{&v.Epoch, &v.N}, h.columns(&extra)...)...)
		val = h.value(extra)
	case kindImport:
		var id int64
		if err = s.pool.QueryRow(ctx, qID, pk.tenant, pgName(pk.context)).Scan(&id); err == nil {
			if v, verr := s.Version(ctx, pk.tenant, pk.context); verr == nil && v.IsZero() {
				val = "{}" // being written
			} else {
				err = pgx.ErrNoRows
			}
		}
	case kindMessage:
		val, err = s.message(ctx, pk)
	default:
		found := false
		err = s.scan(ctx, pk, span{pk.a, pk.a}, func(kk key, v string) bool {
			if kk == pk {
				val, found = v, true
			}
			return true
		})
		if err == nil && !found {
			err = pgx.ErrNoRows
		}
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, wrap(err)
	}
	return val, true, nil
}

// message reads one message record in one round trip (pgx.ErrNoRows when
// there is none): the engine reads a message back to rewrite it (its raw
// key learned, superseded), on the request path.
func (s *Store) message(ctx context.Context, k key) (string, error) {
	b := &pgx.Batch{}
	b.Queue(qMessageAt, k.tenant, pgName(k.context), k.a)
	b.Queue(qTagsAt, k.tenant, pgName(k.context), k.a)
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	msgs, err := readMessages(br)
	if err != nil {
		return "", err
	}
	if err := readTags(br, msgs); err != nil {
		return "", err
	}
	if err := br.Close(); err != nil {
		return "", err
	}
	if len(msgs) == 0 {
		return "", pgx.ErrNoRows
	}
	return withExtra(encode(msgs[0]), msgs[0].extra), nil
}

// Scan calls fn for every record under prefix, in key order.
func (s *Store) Scan(prefix string, fn func(key, value string) bool) error {
	sc, err := parsePrefix(prefix)
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	var out []store.KV
	emit := func(k key, v string) bool {
		out = append(out, store.KV{Key: k.String(), Value: v})
		return true
	}
	switch {
	case sc.kind == kindImport:
		rows, qerr := s.pool.Query(ctx, qPending, pendingAge)
		kvs, qerr := rowsOf(rows, qerr, func(r pgx.CollectableRow) (store.KV, error) {
			var t, n string
			err := r.Scan(&t, &n)
			return store.KV{Key: key{kind: kindImport, tenant: t, context: goName(n)}.String(), Value: "{}"}, err
		})
		if qerr != nil {
			return wrap(qerr)
		}
		out = kvs
	case sc.tenantOnly:
		rows, qerr := s.pool.Query(ctx, qHeaders, sc.tenant)
		kvs, qerr := rowsOf(rows, qerr, func(r pgx.CollectableRow) (store.KV, error) {
			var n string
			var h headerJSON
			var extra []byte
			err := r.Scan(append([]any{&n}, h.columns(&extra)...)...)
			return store.KV{Key: key{kind: kindContext, tenant: sc.tenant, context: goName(n)}.String(), Value: h.value(extra)}, err
		})
		if qerr != nil {
			return wrap(qerr)
		}
		out = kvs
	default:
		err = s.scan(ctx, key{kind: sc.kind, tenant: sc.tenant, context: sc.context}, everything, emit)
		if err != nil {
			return wrap(err)
		}
	}
	slices.SortFunc(out, func(a, b store.KV) int { return cmp.Compare(a.Key, b.Key) })
	for _, kv := range out {
		if !fn(kv.Key, kv.Value) {
			break
		}
	}
	return nil
}

// scan reads one kind of a context's records within sp.
func (s *Store) scan(ctx context.Context, k key, sp span, emit func(key, string) bool) error {
	var id int64
	if err := s.pool.QueryRow(ctx, qID, k.tenant, pgName(k.context)).Scan(&id); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	}
	base := key{tenant: k.tenant, context: k.context}
	switch k.kind {
	case kindMessage, kindVector:
		return s.readTree(ctx, s.pool, base, id, 0, sp, func(kk key, v string) {
			if kk.kind == k.kind {
				emit(kk, v)
			}
		})
	case kindNode:
		// A node key's first number is its level: read the whole tree's
		// nodes (blocks and gists), keep the ones asked for.
		return s.readTree(ctx, s.pool, base, id, 0, everything, func(kk key, v string) {
			if kk.kind == kindNode && (sp == everything || (kk.a == k.a && kk.b == k.b)) {
				emit(kk, v)
			}
		})
	case kindFocus:
		var f focusJSON
		var l, i, lq int64
		var extra []byte
		rows, err := s.pool.Query(ctx, qFocus, id)
		return eachRow(rows, err, []any{&l, &i, &f.Expanded, &f.LastExpanded, &f.Resident, &f.LastResident, &f.Swaps, &f.Questions, &lq, &extra}, func() error {
			f.LastQuestion = uint64(lq)
			fk := base
			fk.kind, fk.a, fk.b = kindFocus, l, i
			if sp == everything || (fk.a == k.a && fk.b == k.b) {
				emit(fk, withExtra(encode(f), extra))
			}
			return nil
		})
	case kindProvenance:
		var seq int64
		var rec string
		rows, err := s.pool.Query(ctx, qProv, id)
		return eachRow(rows, err, []any{&seq, &rec}, func() error {
			pk := base
			pk.kind, pk.a = kindProvenance, seq
			if sp == everything || seq == k.a {
				emit(pk, rec)
			}
			return nil
		})
	case kindResponse:
		var rid, rec string
		rows, err := s.pool.Query(ctx, qResps, id)
		return eachRow(rows, err, []any{&rid, &rec}, func() error {
			rk := base
			rk.kind, rk.id = kindResponse, rid
			emit(rk, rec)
			return nil
		})
	case kindPins:
		var rec string
		err := s.pool.QueryRow(ctx, qPins, id, 0).Scan(&rec)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		pk := base
		pk.kind = kindPins
		emit(pk, goText(rec))
		return nil
	case kindSnapshot:
		var rec string
		err := s.pool.QueryRow(ctx, qSnapshot, id).Scan(&rec)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		sk := base
		sk.kind = kindSnapshot
		emit(sk, rec)
		return nil
	}
	return fmt.Errorf("pgstore: cannot scan records of kind %q", k.kind)
}

// record is a parsed record to write.
type record struct {
	k   key
	val string
}

// rank orders a write: a context's header before its records, messages
// before the blocks of them, blocks before gists and vectors.
func rank(k key) int {
	return slices.Index([]string{kindImport, kindContext, kindPins, kindMessage, kindNode, kindVector, kindFocus, kindProvenance, kindResponse, kindResponseIndex, kindSnapshot}, k.kind)
}

// core reports kinds whose writes move a context's version (the records a
// replica caches).
func core(kind string) bool {
	return kind == kindContext || kind == kindMessage || kind == kindNode || kind == kindVector || kind == kindPins
}

// parseAll parses and orders the records of a write. A key written twice
// in one write (a message the engine rewrote twice in one operation) is
// written once, with its last value, as the embedded store would leave it.
func parseAll(kvs []store.KV) ([]record, error) {
	out := make([]record, 0, len(kvs))
	last := make(map[string]int, len(kvs))
	for i, kv := range kvs {
		last[kv.Key] = i
	}
	for i, kv := range kvs {
		if last[kv.Key] != i {
			continue
		}
		k, err := parseKey(kv.Key)
		if err != nil {
			return nil, err
		}
		out = append(out, record{k, kv.Value})
	}
	slices.SortStableFunc(out, func(a, b record) int {
		if c := rank(a.k) - rank(b.k); c != 0 {
			return c
		}
		if a.k.kind == kindNode {
			return cmp.Compare(a.k.a, b.k.a) // blocks before gists
		}
		return 0
	})
	return out, nil
}

// Put writes records atomically. Each context whose header, messages, tree
// or vectors it writes moves to its next version (no guard: see PutAt); a
// context that does not exist yet is made without header (being written)
// until its header is written.
func (s *Store) Put(kvs ...store.KV) error {
	recs, err := parseAll(kvs)
	if err != nil || len(recs) == 0 {
		return err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		type target struct{ id, version int64 }
		targets := map[[2]string]*target{}
		hasCore := map[[2]string]bool{}
		for _, r := range recs {
			if core(r.k.kind) {
				hasCore[[2]string{r.k.tenant, r.k.context}] = true
			}
		}
		for _, r := range recs {
			ck := [2]string{r.k.tenant, r.k.context}
			if r.k.kind == kindResponseIndex || targets[ck] != nil {
				continue
			}
			if r.k.kind == kindImport {
				// A new context is being written: what an earlier attempt
				// left goes first.
				if _, err := tx.Exec(ctx, qDropPending, r.k.tenant, pgName(r.k.context)); err != nil {
					return err
				}
				continue
			}
			t := &target{}
			if hasCore[ck] {
				if err := tx.QueryRow(ctx, qContext, r.k.tenant, pgName(r.k.context)).Scan(&t.id); err != nil {
					return err
				}
				if err := tx.QueryRow(ctx, qBump, t.id).Scan(&t.version); err != nil {
					return err
				}
			} else if err := tx.QueryRow(ctx, qID, r.k.tenant, pgName(r.k.context)).Scan(&t.id); errors.Is(err, pgx.ErrNoRows) {
				// Telemetry or a response of a context deleted meanwhile:
				// nothing to keep it under.
				s.log.Debug("records of a context that no longer exists dropped", "context", r.k.context, "kind", r.k.kind)
				t = nil
			} else if err != nil {
				return err
			}
			targets[ck] = t
		}
		b := &writeBatch{}
		for _, r := range recs {
			t := targets[[2]string{r.k.tenant, r.k.context}]
			if t == nil || r.k.kind == kindImport || r.k.kind == kindResponseIndex {
				continue
			}
			if err := b.add(t.id, t.version, r); err != nil {
				return err
			}
		}
		return tx.SendBatch(ctx, b.done()).Close()
	})
	return wrap(err)
}

// PutAt writes records of one context provided it is still at version
// base, in one round trip: the first statement of the pipeline moves the
// context from base to its next version (or creates it, from a zero base)
// and fails when another writer got there first, which rolls back the rest.
func (s *Store) PutAt(ctx context.Context, tenant, name string, base store.Version, kvs ...store.KV) (store.Version, error) {
	recs, err := parseAll(kvs)
	if err != nil {
		return store.Version{}, err
	}
	for _, r := range recs {
		if r.k.kind != kindResponseIndex && (r.k.tenant != tenant || r.k.context != name) {
			return store.Version{}, fmt.Errorf("pgstore: a guarded write of %s/%s holds a record of %s/%s", tenant, name, r.k.tenant, r.k.context)
		}
	}
	id, next := base.Epoch, base.N+1
	b := &writeBatch{}
	header := slices.IndexFunc(recs, func(r record) bool { return r.k.kind == kindContext })
	switch {
	case base.IsZero():
		if err := s.pool.QueryRow(ctx, qNextID).Scan(&id); err != nil {
			return store.Version{}, wrap(err)
		}
		next = 1
		b.Queue(qCreate, id, tenant, pgName(name))
		header = -1
	case header >= 0:
		args, err := headerArgs(recs[header])
		if err != nil {
			return store.Version{}, err
		}
		b.Queue(qAdvanceHeader, append([]any{id, base.N}, args...)...)
	default:
		b.Queue(qAdvance, id, base.N)
	}
	for i, r := range recs {
		if r.k.kind == kindImport || r.k.kind == kindResponseIndex || i == header {
			continue
		}
		if err := b.add(id, next, r); err != nil {
			return store.Version{}, err
		}
	}
	if err := s.pool.SendBatch(ctx, b.done()).Close(); err != nil {
		return store.Version{}, wrap(err)
	}
	return store.Version{Epoch: id, N: next}, nil
}

// headerArgs are the values of a header record's columns, in the order of
// qPutHeader's parameters after the context's id.
func headerArgs(r record) ([]any, error) {
	var h headerJSON
	if err := decode(r.k, r.val, &h); err != nil {
		return nil, err
	}
	extra, err := extraFields(r.val, headerFields)
	if err != nil {
		return nil, err
	}
	return []any{h.Created, h.Updated, h.Messages, h.Tokens, h.Bytes, h.Policy, pgText(h.Tokenizer), extra}, nil
}

// writeBatch is the statements of one write, sent as one pipeline: each
// record's own, but for blocks, which are gathered by context and written
// with one statement for all of them (a turn writes several).
type writeBatch struct {
	pgx.Batch
	// blocks are the blocks gathered of each context (by id), queued by
	// done.
	blocks map[int64]*blockRows
	// order is the contexts of blocks in the order their first block came.
	order []int64
}

// blockRows are blocks of one context as the columns of qPutBlocks, one
// element of each slice a block.
type blockRows struct {
	version                       int64
	idx, part, tokens, cost, head []int
	detailsHead, join             []int
	msg, time                     []int64
	role, body                    []string
	hash, spans, extra            [][]byte
}

// block gathers a block of context id, written at version.
func (b *writeBatch) block(id, version int64, n *tree.Node, extra []byte) {
	rows := b.blocks[id]
	if rows == nil {
		if b.blocks == nil {
			b.blocks = map[int64]*blockRows{}
		}
		rows = &blockRows{version: version}
		b.blocks[id] = rows
		b.order = append(b.order, id)
	}
	rows.idx, rows.msg, rows.part = append(rows.idx, n.Index), append(rows.msg, n.Msg), append(rows.part, n.Part)
	rows.role, rows.time = append(rows.role, pgText(n.Role)), append(rows.time, n.Time)
	rows.tokens, rows.cost, rows.head = append(rows.tokens, n.Tokens), append(rows.cost, n.Cost), append(rows.head, n.Head)
	rows.body, rows.hash = append(rows.body, pgText(n.Text)), append(rows.hash, n.Hash[:])
	rows.spans, rows.extra = append(rows.spans, blockSpans(n)), append(rows.extra, extra)
	rows.detailsHead, rows.join = append(rows.detailsHead, n.DetailsHead), append(rows.join, n.Join)
}

// done queues the gathered blocks and returns the batch to send.
func (b *writeBatch) done() *pgx.Batch {
	for _, id := range b.order {
		r := b.blocks[id]
		b.Queue(qPutBlocks, id, r.version, r.idx, r.msg, r.part, r.role, r.time, r.tokens, r.cost, r.head, r.body, r.hash,
			r.spans, r.extra, r.detailsHead, r.join)
	}
	b.blocks, b.order = nil, nil
	return &b.Batch
}

// add queues the statements that write one record of context id at
// version (a block's, by done).
func (b *writeBatch) add(id, version int64, r record) error {
	k := r.k
	switch k.kind {
	case kindContext:
		args, err := headerArgs(r)
		if err != nil {
			return err
		}
		b.Queue(qPutHeader, append([]any{id}, args...)...)
	case kindPins:
		b.Queue(qPutPins, id, pgText(r.val), version)
	case kindMessage:
		var m msgJSON
		if err := decode(k, r.val, &m); err != nil {
			return err
		}
		if m.Seq != k.a {
			return fmt.Errorf("pgstore: record %s holds message %d", k, m.Seq)
		}
		rk, err := m.rawKey()
		if err != nil {
			return err
		}
		var raw []byte
		if len(m.Raw) > 0 {
			raw = m.Raw
		}
		var oc *string
		var os, ot *int64
		if m.Origin != nil {
			c := pgName(m.Origin.Context)
			oc, os, ot = &c, &m.Origin.Seq, &m.Origin.Time
		}
		extra, err := extraFields(r.val, msgFields)
		if err != nil {
			return err
		}
		b.Queue(qPutMessage, id, m.Seq, m.Parent, m.Hash, rk, pgText(m.Role), pgText(m.Name), pgText(m.Text), raw, m.Extra, m.Tokens,
			m.Time, m.First, m.Last, m.Partial, m.Superseded, m.Damaged, oc, os, ot, extra, version, m.Pruned, m.Uncounted)
		if ords, rules, tagged, whole := m.tagRows(); len(ords) > 0 {
			b.Queue(qPutTags, id, m.Seq, ords, pgTexts(rules), tagged, whole)
		}
	case kindNode:
		n, err := tree.DecodeNode(r.val)
		if err != nil {
			return fmt.Errorf("pgstore: record %s: %w", k, err)
		}
		if int64(n.Level) != k.a || int64(n.Index) != k.b {
			return fmt.Errorf("pgstore: record %s holds node %d/%d", k, n.Level, n.Index)
		}
		extra, err := extraFields(r.val, nodeFields)
		if err != nil {
			return err
		}
		if n.Level == 0 {
			b.block(id, version, n, extra)
		} else {
			b.Queue(qPutNode, id, n.Level, n.Index, n.First, n.Last, n.Msg, n.Tokens, pgText(n.Text), n.Cost, pgText(n.Short), n.ShortCost,
				n.Head, n.Hash[:], n.Time, n.TimeEnd, pgTexts(n.Tags), extra, version, n.DetailsHead)
		}
	case kindVector:
		scale, data, err := vectorRow(r.val)
		if err != nil {
			return fmt.Errorf("pgstore: record %s: %w", k, err)
		}
		b.Queue(qPutVector, id, k.a, scale, data, version)
	case kindFocus:
		var f focusJSON
		if err := decode(k, r.val, &f); err != nil {
			return err
		}
		extra, err := extraFields(r.val, focusFields)
		if err != nil {
			return err
		}
		b.Queue(qPutFocus, id, k.a, k.b, f.Expanded, f.LastExpanded, f.Resident, f.LastResident, f.Swaps, f.Questions, int64(f.LastQuestion), extra)
	case kindProvenance:
		var p provJSON
		if err := decode(k, r.val, &p); err != nil {
			return err
		}
		b.Queue(qPutProv, id, k.a, pgText(p.Kind), p.Time, pgText(r.val))
	case kindResponse:
		b.Queue(qPutResp, k.tenant, k.id, id, pgText(r.val))
	case kindSnapshot:
		b.Queue(qPutSnapshot, id, pgText(r.val))
	default:
		return fmt.Errorf("pgstore: cannot write records of kind %q", k.kind)
	}
	return nil
}

// Delete removes records, and every record under each prefix (a context's
// records of one kind), in one transaction. The header's key removes the
// whole context with every record under it.
func (s *Store) Delete(exact []string, prefixes []string) (int, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	n := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		deleted := map[string]bool{}
		for _, e := range exact {
			k, err := parseKey(e)
			if err != nil {
				return err
			}
			var tag pgconn.CommandTag
			switch k.kind {
			case kindContext:
				tag, err = tx.Exec(ctx, qDeleteContext, k.tenant, pgName(k.context))
			case kindResponse, kindResponseIndex:
				if deleted[k.tenant+"\x00"+k.id] {
					n++ // one row stands for both keys
					continue
				}
				tag, err = tx.Exec(ctx, qDeleteResp, k.tenant, k.id)
				if tag.RowsAffected() > 0 {
					deleted[k.tenant+"\x00"+k.id] = true
				}
			case kindSnapshot:
				tag, err = tx.Exec(ctx, `DELETE FROM snapshots WHERE context_id = (`+qID+`)`, k.tenant, pgName(k.context))
			case kindPins:
				tag, err = tx.Exec(ctx, `DELETE FROM pins WHERE context_id = (`+qID+`)`, k.tenant, pgName(k.context))
			case kindImport:
				continue // a marker: contexts being written are those without header
			default:
				return fmt.Errorf("pgstore: cannot delete the record %s alone", e)
			}
			if err != nil {
				return err
			}
			n += int(tag.RowsAffected())
		}
		for _, p := range prefixes {
			sc, err := parsePrefix(p)
			if err != nil {
				return err
			}
			q, ok := deleteQueries[sc.kind]
			if !ok || sc.context == "" {
				return fmt.Errorf("pgstore: cannot delete by the prefix %q", p)
			}
			var id int64
			if err := tx.QueryRow(ctx, qID, sc.tenant, pgName(sc.context)).Scan(&id); errors.Is(err, pgx.ErrNoRows) {
				continue
			} else if err != nil {
				return err
			}
			for _, stmt := range q {
				tag, err := tx.Exec(ctx, stmt, id)
				if err != nil {
					return err
				}
				n += int(tag.RowsAffected())
			}
			if core(sc.kind) {
				if _, err := tx.Exec(ctx, qBump, id); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return n, wrap(err)
}

// AddCounts adds focus telemetry records to the context's stored ones, in
// one statement (see store.Shared).
func (s *Store) AddCounts(ctx context.Context, tenant, name string, kvs ...store.KV) ([]store.KV, error) {
	n := len(kvs)
	level, idx, expanded, resident, swaps, questions := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	lastExpanded, lastResident, lastQuestion := make([]int64, n), make([]int64, n), make([]int64, n)
	extras := make([][]byte, n)
	for i, kv := range kvs {
		k, err := parseKey(kv.Key)
		if err != nil {
			return nil, err
		}
		if k.kind != kindFocus || k.tenant != tenant || k.context != name {
			return nil, fmt.Errorf("pgstore: counts of %s/%s hold the record %s", tenant, name, kv.Key)
		}
		var f focusJSON
		if err := decode(k, kv.Value, &f); err != nil {
			return nil, err
		}
		extra, err := extraFields(kv.Value, focusFields)
		if err != nil {
			return nil, err
		}
		level[i], idx[i], extras[i] = k.a, k.b, extra
		expanded[i], lastExpanded[i], resident[i], lastResident[i] = int64(f.Expanded), f.LastExpanded, int64(f.Resident), f.LastResident
		swaps[i], questions[i], lastQuestion[i] = int64(f.Swaps), int64(f.Questions), int64(f.LastQuestion)
	}
	rows, err := s.pool.Query(ctx, qAddFocus, tenant, pgName(name), level, idx, expanded, lastExpanded, resident, lastResident, swaps,
		questions, lastQuestion, extras)
	var out []store.KV
	var f focusJSON
	var l, i, lq int64
	var extra []byte
	err = eachRow(rows, err, []any{&l, &i, &f.Expanded, &f.LastExpanded, &f.Resident, &f.LastResident, &f.Swaps, &f.Questions, &lq, &extra}, func() error {
		f.LastQuestion = uint64(lq)
		out = append(out, store.KV{Key: key{kind: kindFocus, tenant: tenant, context: name, a: l, b: i}.String(), Value: withExtra(encode(f), extra)})
		return nil
	})
	if err != nil {
		return nil, wrap(err)
	}
	return out, nil
}

// Lock takes a session advisory lock named by the context (on a
// connection held until unlock): replicas that lost a race for the
// context take turns. A replica that dies holding it releases it with its
// connection.
func (s *Store) Lock(ctx context.Context, tenant, name string) (func(), error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	if _, err := conn.Exec(ctx, qLock, tenant, pgName(name)); err != nil {
		conn.Release()
		return nil, wrap(err)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, qUnlock, tenant, pgName(name)); err != nil {
			// The lock dies with the session: drop the connection.
			conn.Conn().Close(ctx)
		}
		conn.Release()
	}, nil
}

// Claim takes job kind of the context for lease, unless another process
// holds an unexpired claim on it.
func (s *Store) Claim(ctx context.Context, tenant, name, kind string, lease time.Duration) (func(), bool, error) {
	var id int64
	err := s.pool.QueryRow(ctx, qClaim, tenant, pgName(name), kind, s.holder, lease.Seconds()).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return func() {}, false, nil
	}
	if err != nil {
		return func() {}, false, wrap(err)
	}
	release := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := s.pool.Exec(ctx, qRelease, id, kind, s.holder); err != nil {
			s.log.Warn("release job claim", "kind", kind, "context", name, "err", err)
		}
	}
	return release, true, nil
}
