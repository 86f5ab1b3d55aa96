package pgstore

import (
	"context"
	"errors"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/megacontext/megacontext/memory/pgstore/pgtest"
	"github.com/megacontext/megacontext/memory/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestMigrateOnceConcurrently: replicas that start together on an empty
// database migrate it once; a second run applies nothing; the schema
// reports this binary's version.
func TestMigrateOnceConcurrently(t *testing.T) {
	dsn := pgtest.NewDB(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	applied := make([]int, 4)
	errs := make([]error, 4)
	for i := range 4 {
		wg.Go(func() {
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				errs[i] = err
				return
			}
			defer conn.Close(ctx)
			ms, err := Migrate(ctx, conn)
			applied[i], errs[i] = len(ms), err
		})
	}
	wg.Wait()
	total := 0
	for i := range 4 {
		if errs[i] != nil {
			t.Fatalf("migrate %d: %v", i, errs[i])
		}
		total += applied[i]
	}
	if want := len(Migrations()); total != want {
		t.Fatalf("%d migrations applied in all, want %d (once each)", total, want)
	}
	conn := connect(t, dsn)
	if ms, err := Migrate(ctx, conn); err != nil || len(ms) != 0 {
		t.Fatalf("second migrate applied %d, err %v", len(ms), err)
	}
	st, err := Status(ctx, conn)
	if err != nil || st[len(st)-1].Version != SchemaVersion() {
		t.Fatalf("status %+v, %v", st, err)
	}
}

// TestSchemaMismatchRefused: a database without the schema, one migrated
// by a newer binary and one whose applied migration was edited are each
// refused with an error that says so.
func TestSchemaMismatchRefused(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, pgtest.NewDB(t))
	if _, err := Status(ctx, conn); !errors.Is(err, ErrSchemaOld) {
		t.Fatalf("empty database: %v, want ErrSchemaOld", err)
	}
	if _, err := Migrate(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO schema_migrations (version, name, checksum) VALUES (99999, '99999_future.sql', 'x')"); err != nil {
		t.Fatal(err)
	}
	if _, err := Status(ctx, conn); !errors.Is(err, ErrSchemaNewer) {
		t.Fatalf("newer schema: %v, want ErrSchemaNewer", err)
	}
	if _, err := Migrate(ctx, conn); !errors.Is(err, ErrSchemaNewer) {
		t.Fatalf("migrate on a newer schema: %v, want ErrSchemaNewer", err)
	}
	if _, err := conn.Exec(ctx, "DELETE FROM schema_migrations WHERE version = 99999; UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := Migrate(ctx, conn); err == nil || errors.Is(err, ErrSchemaNewer) {
		t.Fatalf("edited migration: %v, want a checksum error", err)
	}
}

// TestSchemaTables: the schema is relational, one table per kind of record.
func TestSchemaTables(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, pgtest.NewDB(t))
	if _, err := Migrate(ctx, conn); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"tenants", "contexts", "threads", "messages", "tags", "blocks", "nodes", "vectors", "telemetry", "provenance", "jobs"} {
		if !slices.Contains(tables, want) {
			t.Errorf("no table %s (have %v)", want, tables)
		}
	}
}

// TestThreadsFollowMessages: the database threads messages as they are
// inserted: a conversation is one thread, an edit forks a new one at its
// parent, a new conversation starts another.
func TestThreadsFollowMessages(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, pgtest.NewDB(t))
	if _, err := Migrate(ctx, conn); err != nil {
		t.Fatal(err)
	}
	var cid int64
	err := conn.QueryRow(ctx, `WITH t AS (INSERT INTO tenants (id) VALUES ('t') RETURNING id)
		INSERT INTO contexts (tenant_id, name, created_ms, updated_ms) SELECT id, 'c', 0, 0 FROM t RETURNING id`).Scan(&cid)
	if err != nil {
		t.Fatal(err)
	}
	// seq: parent. 0-1-2 one conversation; 3 edits 2 (fork at 1); 4
	// continues 3; 5 starts a new conversation; 6 continues 2 (the old
	// branch, now forked from its own head: it extends thread 0).
	parents := []int64{-1, 0, 1, 1, 3, -1, 2}
	for seq, p := range parents {
		_, err := conn.Exec(ctx, `INSERT INTO messages (context_id, seq, parent, chain_hash, role, body, time_ms, version)
			VALUES ($1, $2, $3, 'h', 'user', 'x', $2, 1)`, cid, seq, p)
		if err != nil {
			t.Fatal(err)
		}
	}
	rows, err := conn.Query(ctx, "SELECT thread_id FROM messages WHERE context_id = $1 ORDER BY seq", cid)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	if want := []int32{0, 0, 0, 1, 1, 2, 0}; !slices.Equal(got, want) {
		t.Fatalf("threads %v, want %v", got, want)
	}
	var fork *int64
	var n int
	if err := conn.QueryRow(ctx, "SELECT fork_seq, messages FROM threads WHERE context_id = $1 AND id = 1", cid).Scan(&fork, &n); err != nil {
		t.Fatal(err)
	}
	if fork == nil || *fork != 1 || n != 2 {
		t.Fatalf("thread 1 forks at %v with %d messages, want 1 and 2", fork, n)
	}
	// Deleting the context removes every record under it.
	if _, err := conn.Exec(ctx, "DELETE FROM contexts WHERE id = $1", cid); err != nil {
		t.Fatal(err)
	}
	var left int
	if err := conn.QueryRow(ctx, "SELECT (SELECT count(*) FROM messages) + (SELECT count(*) FROM threads)").Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d rows left after delete, %v", left, err)
	}
}

// TestMarksMoveToColumns: rows written under schema 1, which kept the
// marks added later (pruned, uncounted, dh, j) in their extra column, have
// them in their own columns after migration 2, and read back the same.
func TestMarksMoveToColumns(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDB(t)
	conn := connect(t, dsn)
	if _, err := migrate(ctx, conn, Migrations()[:1]); err != nil {
		t.Fatal(err)
	}
	var cid int64
	if err := conn.QueryRow(ctx, "SELECT mc_context('t', 'C')").Scan(&cid); err != nil {
		t.Fatal(err)
	}
	hash := make([]byte, 32)
	_, err := conn.Exec(ctx, `UPDATE contexts SET header = true, pending_since = NULL, created_ms = 1, updated_ms = 1, messages = 1 WHERE id = $1;`, cid)
	if err != nil {
		t.Fatal(err)
	}
	stmts := []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO messages (context_id, seq, parent, chain_hash, role, body, time_ms, first_block, last_block, extra, version)
			VALUES ($1, 0, -1, 'h', 'user', 'x', 1, 0, 0, '{"pruned":true,"uncounted":true,"later":1}', 1)`, []any{cid}},
		{`INSERT INTO blocks (context_id, idx, msg_seq, part, role, time_ms, tokens, cost, head, body, hash, extra, version)
			VALUES ($1, 0, 0, 0, 'user', 1, 1, 1, 0, 'x', $2, '{"dh":4,"j":-1}', 1)`, []any{cid, hash}},
		{`INSERT INTO nodes (context_id, level, idx, first_block, last_block, msg_seq, tokens, gist, cost, hash, time_ms, time_end_ms, extra, version)
			VALUES ($1, 1, 0, 0, 0, 0, 1, 'x', 1, $2, 1, 1, '{"dh":6}', 1)`, []any{cid, hash}},
	}
	for _, st := range stmts {
		if _, err := conn.Exec(ctx, st.sql, st.args...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Migrate(ctx, conn); err != nil {
		t.Fatal(err)
	}
	var pruned, uncounted bool
	var extra *string
	if err := conn.QueryRow(ctx, "SELECT pruned, uncounted, extra::text FROM messages WHERE context_id = $1", cid).Scan(&pruned, &uncounted, &extra); err != nil {
		t.Fatal(err)
	}
	if !pruned || !uncounted || extra == nil || *extra != `{"later": 1}` {
		t.Errorf("message: pruned %v uncounted %v extra %v", pruned, uncounted, extra)
	}
	var dh, join int
	if err := conn.QueryRow(ctx, "SELECT details_head, join_cost, extra::text FROM blocks WHERE context_id = $1", cid).Scan(&dh, &join, &extra); err != nil {
		t.Fatal(err)
	}
	if dh != 4 || join != -1 || extra != nil {
		t.Errorf("block: dh %d j %d extra %v", dh, join, extra)
	}
	s := openStore(t, dsn)
	got, _, err := s.Get(store.Key("m", "t", "C", "000000000000"))
	if err != nil || !strings.Contains(got, `"pruned":true`) || !strings.Contains(got, `"uncounted":true`) || !strings.Contains(got, `"later"`) {
		t.Errorf("message read back: %s, %v", got, err)
	}
	got, _, err = s.Get(store.Key("n", "t", "C", "01", "0000000000"))
	if err != nil || !strings.Contains(got, `"dh":6`) {
		t.Errorf("node read back: %s, %v", got, err)
	}
}

// The header writes of a binary at schema 3, word for word: the guarded
// one (mc_advance_header of 0003) and the unguarded one (Put). Both carry
// the header's tokenizer in extra.
const (
	advanceHeader3 = `SELECT mc_advance_header($1, $2, $3, $4, $5, $6, $7, $8, $9)`
	putHeader3     = `UPDATE contexts SET header = true, pending_since = NULL, created_ms = $2, updated_ms = $3, messages = $4,
	                  tokens = $5, bytes = $6, policy = $7, extra = $8 WHERE id = $1`
)

// TestTokenizerMovesToColumn: a database at schema 3 with contexts in it,
// their headers written by that binary (the tokenizer in extra, beside a
// field no column holds), is migrated to 4: each tokenizer moves to its
// column, nothing else changes, and the store reads every context back as
// it was. During a rolling upgrade, replicas of the old binary still
// writing (either header write) keep working, and their tokenizer lands
// in the column too, while one that writes none leaves the column as it
// was.
func TestTokenizerMovesToColumn(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDB(t)
	conn := connect(t, dsn)
	if _, err := migrate(ctx, conn, Migrations()[:3]); err != nil {
		t.Fatal(err)
	}
	// Three contexts as the old binary left them: A by a guarded write
	// (with a message), B by Put, C stored before tokenizers were recorded.
	ids := map[string]int64{}
	for _, name := range []string{"A", "B", "C"} {
		var cid int64
		if err := conn.QueryRow(ctx, "SELECT mc_context('t', $1)", name).Scan(&cid); err != nil {
			t.Fatal(err)
		}
		ids[name] = cid
	}
	var v int64
	if err := conn.QueryRow(ctx, advanceHeader3, ids["A"], 1, 1000, 1001, 1, 7, 90, "p1", `{"tokenizer":"vocab:a","later":1}`).Scan(&v); err != nil || v != 2 {
		t.Fatalf("old guarded header write: version %d, %v", v, err)
	}
	_, err := conn.Exec(ctx, `INSERT INTO messages (context_id, seq, parent, chain_hash, role, body, time_ms, first_block, last_block, version)
		VALUES ($1, 0, -1, 'h0', 'user', 'hello', 1001, -1, -1, 2)`, ids["A"])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, putHeader3, ids["B"], 2000, 2001, 0, 0, 0, "", `{"tokenizer":"vocab:b"}`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, putHeader3, ids["C"], 3000, 3001, 0, 0, 0, "p3", nil); err != nil {
		t.Fatal(err)
	}
	before := map[string]string{}
	readBack := func(s *Store) map[string]string {
		t.Helper()
		out := map[string]string{}
		for _, name := range []string{"A", "B", "C"} {
			val, ok, err := s.Get(store.Key("c", "t", name))
			if err != nil || !ok {
				t.Fatalf("header %s: %v %v", name, ok, err)
			}
			out[name] = val
		}
		return out
	}
	versions := func() map[string]int64 {
		t.Helper()
		out := map[string]int64{}
		for name, cid := range ids {
			var v int64
			if err := conn.QueryRow(ctx, "SELECT version FROM contexts WHERE id = $1", cid).Scan(&v); err != nil {
				t.Fatal(err)
			}
			out[name] = v
		}
		return out
	}
	vBefore := versions()

	applied, err := Migrate(ctx, conn)
	if err != nil || len(applied) != len(Migrations())-3 || applied[0].Version != 4 {
		t.Fatalf("migrate from 3: %v, %v", applied, err)
	}
	columns := func(name string) (tokenizer string, extra *string) {
		t.Helper()
		if err := conn.QueryRow(ctx, "SELECT tokenizer, extra::text FROM contexts WHERE id = $1", ids[name]).Scan(&tokenizer, &extra); err != nil {
			t.Fatal(err)
		}
		return
	}
	for _, c := range []struct{ name, tokenizer, extra string }{{"A", "vocab:a", `{"later": 1}`}, {"B", "vocab:b", ""}, {"C", "", ""}} {
		tok, extra := columns(c.name)
		if tok != c.tokenizer || (extra == nil) != (c.extra == "") || (extra != nil && *extra != c.extra) {
			t.Errorf("%s after 0004: tokenizer %q extra %v, want %q and %q", c.name, tok, extra, c.tokenizer, c.extra)
		}
	}
	if got := versions(); !reflect.DeepEqual(got, vBefore) {
		t.Errorf("versions %v after the migration, %v before: the headers' records did not change", got, vBefore)
	}
	s := openStore(t, dsn)
	before = readBack(s)
	for name, want := range map[string]string{
		"A": `{"created":1000,"updated":1001,"messages":1,"tokens":7,"bytes":90,"policy":"p1","tokenizer":"vocab:a","later":1}`,
		"B": `{"created":2000,"updated":2001,"messages":0,"tokens":0,"bytes":0,"tokenizer":"vocab:b"}`,
		"C": `{"created":3000,"updated":3001,"messages":0,"tokens":0,"bytes":0,"policy":"p3"}`,
	} {
		equalJSON(t, "header "+name, before[name], want)
	}
	if ch, err := s.Since(ctx, "t", "A", store.Version{}); err != nil || len(ch.Records) != 2 {
		t.Fatalf("context A read whole: %+v, %v (the header and its message)", ch, err)
	}

	// Old replicas still serving: both header writes of schema 3.
	if err := conn.QueryRow(ctx, advanceHeader3, ids["A"], vBefore["A"], 1000, 1002, 1, 7, 90, "p1", `{"tokenizer":"vocab:a2","later":2}`).Scan(&v); err != nil || v != vBefore["A"]+1 {
		t.Fatalf("old guarded header write after 0004: version %d, %v", v, err)
	}
	if _, err := conn.Exec(ctx, putHeader3, ids["B"], 2000, 2002, 0, 0, 0, "", `{"tokenizer":"vocab:b2"}`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, putHeader3, ids["A"], 1000, 1003, 1, 7, 90, "p1", `{"later":3}`); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, tokenizer, extra string }{{"A", "vocab:a2", `{"later": 3}`}, {"B", "vocab:b2", ""}} {
		tok, extra := columns(c.name)
		if tok != c.tokenizer || (extra == nil) != (c.extra == "") || (extra != nil && *extra != c.extra) {
			t.Errorf("%s after an old replica's write: tokenizer %q extra %v, want %q and %q", c.name, tok, extra, c.tokenizer, c.extra)
		}
	}
	// This binary's guarded write: the new signature.
	va, err := s.Version(ctx, "t", "A")
	if err != nil {
		t.Fatal(err)
	}
	hdr := `{"created":1000,"updated":1004,"messages":1,"tokens":7,"bytes":90,"policy":"p1","tokenizer":"vocab:a3","later":4}`
	if _, err := s.PutAt(ctx, "t", "A", va, store.KV{Key: store.Key("c", "t", "A"), Value: hdr}); err != nil {
		t.Fatal(err)
	}
	if tok, extra := columns("A"); tok != "vocab:a3" || extra == nil || *extra != `{"later": 4}` {
		t.Errorf("A after a guarded write: tokenizer %q extra %v", tok, extra)
	}
	equalJSON(t, "header A written", readBack(s)["A"], hdr)
}
