package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/megacontext/megacontext/memory/pgstore/pgtest"
	"github.com/megacontext/megacontext/memory/qvec"
	"github.com/megacontext/megacontext/memory/store"
	"github.com/megacontext/megacontext/memory/tree"
)

func openStore(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{DSN: dsn, AutoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// kv builds a record of the engine's schema for context C of tenant t.
func kv(kind string, parts ...string) string {
	return store.Key(append([]string{kind, "t", "C"}, parts...)...)
}

func node(level, index int, text string) string {
	n := &tree.Node{Level: level, Index: index, First: index, Last: index, Tokens: 3, Text: text, Cost: 3, Msg: 1, Role: "user", Time: 1001, TimeEnd: 1001}
	if level > 0 {
		n.First, n.Last, n.Short, n.ShortCost, n.Head, n.Tags, n.Role = 0, 1, "~ "+text, 2, 5, []string{"secret"}, ""
		n.DetailsHead = 6
	} else if index == 0 {
		n.Spans, n.Tags = []tree.Span{{Start: 0, End: len(text), Rule: "secret"}, {Start: 1, End: 3, Rule: "email"}}, []string{"secret", "email"}
	} else {
		n.Part, n.Join, n.DetailsHead = 1, -1, 4
	}
	n.Hash[0], n.Hash[31] = byte(level), byte(index)
	b, _ := json.Marshal(n)
	return string(b)
}

// sample is a context's records as the engine writes them: every kind,
// texts with a NUL and a \x01, a whole tag that names no detected rule, a
// merged message's origin, raw JSON, a vector, telemetry, provenance, a
// response, pins and snapshot facts, and fields no column holds (written
// by a newer engine).
func sample() []store.KV {
	vec := qvec.Vector{Scale: 0.5, Data: []int8{-128, 0, 127}}
	return []store.KV{
		{Key: kv("c"), Value: `{"created":1000,"updated":1001,"messages":2,"tokens":9,"bytes":120,"policy":"p1","tokenizer":"vocab:stories\u0000260K","later":{"a":[1,2]}}`},
		{Key: kv("k"), Value: `{"next":2,"pins":[{"id":1,"msg":0}]}`},
		{Key: kv("m", "000000000000"), Value: `{"seq":0,"parent":-1,"hash":"h0","role":"system","text":"be brief\u0000\u0001 é","time":1000,"pruned":true,"first":-1,"last":-1,"tokens":2,"raw":{"role":"system","content":"be brief"}}`},
		{Key: kv("m", "000000000001"), Value: `{"seq":1,"parent":0,"hash":"h1","rk":"07000000000000000000000000000009","extra":3,"role":"user","name":"ann","text":"mail me","time":1001,"superseded":true,"tags":["email","secret"],"whole":["secret","orphan"],"origin":{"context":"other","seq":4,"time":999},"first":0,"last":1,"tokens":7,"uncounted":true,"raw":{"role":"user","content":"mail me"}}`},
		{Key: kv("n", "00", "0000000000"), Value: node(0, 0, "mail")},
		{Key: kv("n", "00", "0000000001"), Value: node(0, 1, " me")},
		{Key: kv("n", "01", "0000000000"), Value: node(1, 0, "mail")},
		{Key: kv("v", "0000000000"), Value: string(vec.Encode())},
		{Key: kv("f", "01", "0000000000"), Value: `{"expanded":2,"last_expanded":5,"resident":3,"last_resident":6,"swaps":1,"questions":2,"last_question":18446744073709551615}`},
		{Key: kv("p", "000000000000"), Value: `{"type":"provenance","seq":0,"kind":"fork","time":7,"from":"x","first_block":-1,"last_block":-1}`},
		{Key: kv("r", "resp_1"), Value: `{"id":"resp_1","seq":1,"object":{"id":"resp_1","a":[1, 2]},"time":8}`},
		{Key: store.Key("ri", "t", "resp_1"), Value: "C"},
		{Key: kv("s"), Value: `{"imported":{"root":"ab","time":3}}`},
	}
}

// equalJSON compares two JSON values as values.
func equalJSON(t *testing.T, what, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("%s: %v: %s", what, err, got)
	}
	json.Unmarshal([]byte(want), &w)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %s\nwant %s", what, got, want)
	}
}

// TestRecordsRoundTrip: every kind of record reads back as written, by key
// and by scan, in key order; byte-exact kinds (provenance, responses,
// snapshot facts, vectors, raw JSON) byte for byte.
func TestRecordsRoundTrip(t *testing.T) {
	s := openStore(t, pgtest.NewDB(t))
	recs := sample()
	if err := s.Put(recs...); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		got, ok, err := s.Get(r.Key)
		if err != nil || !ok {
			t.Fatalf("get %s: %v %v", r.Key, ok, err)
		}
		switch r.Key[0] {
		case 'p', 'r', 's', 'v', 'k':
			if got != r.Value {
				t.Errorf("%s: got %q, want %q byte for byte", r.Key, got, r.Value)
			}
		default:
			equalJSON(t, r.Key, got, r.Value)
		}
	}
	var keys []string
	for _, kind := range []string{"m", "n", "v", "f", "p", "r"} {
		if err := s.Scan(kv(kind)+":", func(k, v string) bool { keys = append(keys, k); return true }); err != nil {
			t.Fatal(err)
		}
	}
	var want []string
	for _, r := range recs {
		if !strings.HasPrefix(r.Key, "c:") && !strings.HasPrefix(r.Key, "s:") && !strings.HasPrefix(r.Key, "ri:") && !strings.HasPrefix(r.Key, "k:") {
			want = append(want, r.Key)
		}
	}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("scanned keys\n %q\nwant %q", keys, want)
	}
	var headers []string
	s.Scan(store.Prefix("c", "t"), func(k, v string) bool { headers = append(headers, k); return true })
	if len(headers) != 1 || headers[0] != kv("c") {
		t.Errorf("headers of tenant t: %q", headers)
	}
}

// TestEngineFieldsHaveColumns: every field of the engine's headers,
// messages, blocks and nodes (the sample sets each) is kept in a column of
// its own, none in the extra column that holds fields this schema does not
// know (the sample header's "later" stands for a newer engine's field).
func TestEngineFieldsHaveColumns(t *testing.T) {
	dsn := pgtest.NewDB(t)
	s := openStore(t, dsn)
	if err := s.Put(sample()...); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, table := range []string{"messages", "blocks", "nodes", "telemetry"} {
		var extras []string
		err := conn.QueryRow(context.Background(), "SELECT coalesce(array_agg(extra::text), '{}') FROM "+table+" WHERE extra IS NOT NULL").Scan(&extras)
		if err != nil {
			t.Fatal(err)
		}
		if len(extras) > 0 {
			t.Errorf("%s: fields without a column: %q", table, extras)
		}
	}
	var extra string
	if err := conn.QueryRow(context.Background(), "SELECT extra::text FROM contexts").Scan(&extra); err != nil || extra != `{"later": {"a": [1, 2]}}` {
		t.Errorf("contexts: extra %s (%v), want only the field no column holds", extra, err)
	}
}

// TestSinceReadsOnlyChanges: a replica at version v reads only what was
// written after it; a guarded write moves the version by one.
func TestSinceReadsOnlyChanges(t *testing.T) {
	s := openStore(t, pgtest.NewDB(t))
	ctx := context.Background()
	if err := s.Put(sample()...); err != nil {
		t.Fatal(err)
	}
	v1, err := s.Version(ctx, "t", "C")
	if err != nil || v1.IsZero() {
		t.Fatalf("version %+v, %v", v1, err)
	}
	full, err := s.Since(ctx, "t", "C", store.Version{})
	if err != nil || !full.Full || full.Version != v1 || len(full.Records) != 1+1+2+3+1 {
		t.Fatalf("full: %+v, %v", full, err)
	}
	upd := []store.KV{
		{Key: kv("c"), Value: `{"created":1000,"updated":1002,"messages":3,"tokens":10,"bytes":150,"policy":"p1"}`},
		{Key: kv("m", "000000000001"), Value: `{"seq":1,"parent":0,"hash":"h1","role":"user","text":"mail me","time":1001,"tags":["email"],"first":0,"last":1,"tokens":7}`},
		{Key: kv("m", "000000000002"), Value: `{"seq":2,"parent":0,"hash":"h2","role":"user","text":"again","time":1002,"first":2,"last":2,"tokens":1}`},
		{Key: kv("n", "00", "0000000002"), Value: node(0, 2, "again")},
	}
	v2, err := s.PutAt(ctx, "t", "C", v1, upd...)
	if err != nil || v2.Epoch != v1.Epoch || v2.N != v1.N+1 {
		t.Fatalf("v2 %+v after %+v, %v", v2, v1, err)
	}
	d, err := s.Since(ctx, "t", "C", v1)
	if err != nil || d.Full || d.Version != v2 {
		t.Fatalf("delta: %+v, %v", d, err)
	}
	var keys []string
	for _, r := range d.Records {
		keys = append(keys, r.Key)
	}
	if want := []string{kv("c"), kv("m", "000000000001"), kv("m", "000000000002"), kv("n", "00", "0000000002")}; !reflect.DeepEqual(keys, want) {
		t.Fatalf("delta keys %q, want %q", keys, want)
	}
	equalJSON(t, "updated message", d.Records[1].Value, upd[1].Value)
	if d, err := s.Since(ctx, "t", "C", v2); err != nil || len(d.Records) != 1 {
		t.Fatalf("since the current version: %d records (the header only), %v", len(d.Records), err)
	}
}

// TestGuardedWritesOneWins: two replicas writing from one version: one
// commits, the other gets ErrConflict and none of its records are stored;
// the same for two replicas creating a context.
func TestGuardedWritesOneWins(t *testing.T) {
	dsn := pgtest.NewDB(t)
	a, b := openStore(t, dsn), openStore(t, dsn)
	ctx := context.Background()
	race := func(base store.Version, seq int) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, s := range []*Store{a, b} {
			wg.Go(func() {
				text := fmt.Sprintf("from %d", i)
				_, errs[i] = s.PutAt(ctx, "t", "C", base,
					store.KV{Key: kv("c"), Value: fmt.Sprintf(`{"created":1,"updated":1,"messages":%d}`, seq+1)},
					store.KV{Key: kv("m", fmt.Sprintf("%012d", seq)), Value: fmt.Sprintf(`{"seq":%d,"parent":%d,"hash":%q,"role":"user","text":%q,"time":1,"first":-1,"last":-1}`, seq, seq-1, text, text)})
			})
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("loser's error %v, want ErrConflict", err)
			}
		}
		var n int
		if err := a.pool.QueryRow(ctx, "SELECT count(*) FROM messages WHERE seq = $1", seq).Scan(&n); err != nil || ok != 1 || n != 1 {
			t.Fatalf("message %d: %d writers committed, %d rows (%v)", seq, ok, n, err)
		}
	}
	race(store.Version{}, 0)
	for seq := 1; seq < 20; seq++ {
		v, err := a.Version(ctx, "t", "C")
		if err != nil || v.N != int64(seq) {
			t.Fatalf("version %+v after %d writes, %v", v, seq, err)
		}
		race(v, seq)
	}
}

// TestWriteAllOrNothing: a write one of whose records is refused stores
// nothing, not even the version bump that came first.
func TestWriteAllOrNothing(t *testing.T) {
	s := openStore(t, pgtest.NewDB(t))
	ctx := context.Background()
	if err := s.Put(sample()...); err != nil {
		t.Fatal(err)
	}
	v, _ := s.Version(ctx, "t", "C")
	bad := []store.KV{
		{Key: kv("m", "000000000002"), Value: `{"seq":2,"parent":1,"hash":"x","role":"user","text":"x","time":1,"first":-1,"last":-1}`},
		{Key: kv("m", "000000000003"), Value: `{"seq":3,"parent":7,"hash":"y","role":"user","text":"y","time":1,"first":-1,"last":-1}`}, // parent after it
	}
	if _, err := s.PutAt(ctx, "t", "C", v, bad...); err == nil {
		t.Fatal("a message following a later one was stored")
	}
	if err := s.Put(bad...); err == nil {
		t.Fatal("a message following a later one was stored (unguarded)")
	}
	if after, err := s.Version(ctx, "t", "C"); err != nil || after != v {
		t.Fatalf("version %+v after refused writes, want %+v (%v)", after, v, err)
	}
	if _, ok, _ := s.Get(kv("m", "000000000002")); ok {
		t.Fatal("part of a refused write was stored")
	}
}

// TestDeleteContextAndResponses: deleting a context removes every record
// under it and its responses; a response is deleted alone by its keys
// (one row stands for the record and its index); a context made again
// has a new epoch.
func TestDeleteContextAndResponses(t *testing.T) {
	s := openStore(t, pgtest.NewDB(t))
	ctx := context.Background()
	if err := s.Put(sample()...); err != nil {
		t.Fatal(err)
	}
	other := strings.ReplaceAll(sample()[0].Key, ":C", ":C2")
	if err := s.Put(store.KV{Key: other, Value: `{"created":1,"updated":1}`}); err != nil {
		t.Fatal(err)
	}
	old, _ := s.Version(ctx, "t", "C")
	n, err := s.Delete([]string{kv("r", "resp_1"), store.Key("ri", "t", "resp_1")}, nil)
	if err != nil || n == 0 {
		t.Fatalf("delete response: %d, %v", n, err)
	}
	if _, ok, _ := s.Get(store.Key("ri", "t", "resp_1")); ok {
		t.Fatal("response index left")
	}
	if n, err := s.Delete([]string{kv("r", "resp_1"), store.Key("ri", "t", "resp_1")}, nil); err != nil || n != 0 {
		t.Fatalf("deleting it again: %d, %v", n, err)
	}
	if _, err := s.Delete([]string{kv("c"), kv("s"), kv("k")}, []string{kv("m") + ":", kv("n") + ":", kv("v") + ":", kv("f") + ":", kv("p") + ":"}); err != nil {
		t.Fatal(err)
	}
	var left int
	err = s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM messages) + (SELECT count(*) FROM blocks) + (SELECT count(*) FROM nodes)
		+ (SELECT count(*) FROM vectors) + (SELECT count(*) FROM tags) + (SELECT count(*) FROM threads) + (SELECT count(*) FROM telemetry)
		+ (SELECT count(*) FROM provenance) + (SELECT count(*) FROM snapshots) + (SELECT count(*) FROM pins) + (SELECT count(*) FROM contexts)`).Scan(&left)
	if err != nil || left != 1 {
		t.Fatalf("%d rows left, want only the other context's header (%v)", left, err)
	}
	if err := s.Put(sample()...); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Version(ctx, "t", "C"); v.Epoch == old.Epoch {
		t.Fatalf("made again with the epoch %d of the deleted one", v.Epoch)
	}
}

// TestContextBeingWritten: records written before their context's header
// (an import, a fork) make a context that is neither listed nor loaded; it
// shows as an interrupted import only once it is old; writing the header
// makes it a context.
func TestContextBeingWritten(t *testing.T) {
	s := openStore(t, pgtest.NewDB(t))
	ctx := context.Background()
	recs := sample()
	if err := s.Put(store.KV{Key: kv("i"), Value: `{"started":1}`}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(recs[1:4]...); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Version(ctx, "t", "C"); err != nil || !v.IsZero() {
		t.Fatalf("a context without header has version %+v (%v)", v, err)
	}
	if _, ok, _ := s.Get(kv("c")); ok {
		t.Fatal("a context without header has one")
	}
	pending := func() (n int) {
		s.Scan("i:", func(string, string) bool { n++; return true })
		return n
	}
	if pending() != 0 {
		t.Fatal("an import in progress shows as interrupted")
	}
	if _, err := s.pool.Exec(ctx, "UPDATE contexts SET pending_since = now() - interval '1 hour'"); err != nil {
		t.Fatal(err)
	}
	if pending() != 1 {
		t.Fatal("an old context without header is not shown as an interrupted import")
	}
	if err := s.Put(recs[0]); err != nil {
		t.Fatal(err)
	}
	if pending() != 0 {
		t.Fatal("a context with header shows as interrupted")
	}
	if _, ok, _ := s.Get(kv("c")); !ok {
		t.Fatal("header not stored")
	}
}

// TestClaimOnceAcrossReplicas: a job is held by one replica at a time; a
// released or expired claim can be taken by another.
func TestClaimOnceAcrossReplicas(t *testing.T) {
	dsn := pgtest.NewDB(t)
	a, b := openStore(t, dsn), openStore(t, dsn)
	ctx := context.Background()
	if err := a.Put(sample()...); err != nil {
		t.Fatal(err)
	}
	release, ok, err := a.Claim(ctx, "t", "C", "embed", time.Minute)
	if err != nil || !ok {
		t.Fatalf("first claim: %v %v", ok, err)
	}
	if _, ok, err := b.Claim(ctx, "t", "C", "embed", time.Minute); err != nil || ok {
		t.Fatalf("second replica claimed a held job: %v %v", ok, err)
	}
	if _, ok, err := b.Claim(ctx, "t", "C", "gist", time.Minute); err != nil || !ok {
		t.Fatalf("another kind of job: %v %v", ok, err)
	}
	release()
	relB, ok, err := b.Claim(ctx, "t", "C", "embed", time.Minute)
	if err != nil || !ok {
		t.Fatalf("claim after release: %v %v", ok, err)
	}
	defer relB()
	// b's lease lapses (a replica that died holding it).
	if _, err := a.pool.Exec(ctx, "UPDATE jobs SET lease_until = now() - interval '1 second'"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := a.Claim(ctx, "t", "C", "embed", time.Minute); err != nil || !ok {
		t.Fatalf("claim of an expired lease: %v %v", ok, err)
	}
}

// TestLockTakesTurns: while one replica holds a context's lock another
// waits for it (here: until its deadline); once released, it gets it. A
// replica whose session dies holding it releases it too.
func TestLockTakesTurns(t *testing.T) {
	dsn := pgtest.NewDB(t)
	a, b := openStore(t, dsn), openStore(t, dsn)
	ctx := context.Background()
	unlock, err := a.Lock(ctx, "t", "C")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if _, err := b.Lock(short, "t", "C"); err == nil {
		t.Fatal("a second replica took a held lock")
	}
	cancel()
	if u, err := b.Lock(ctx, "t", "other"); err != nil {
		t.Fatalf("another context's lock: %v", err)
	} else {
		u()
	}
	unlock()
	ub, err := b.Lock(ctx, "t", "C")
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	defer ub()
	c := openStore(t, dsn)
	short, cancel = context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := c.Lock(short, "t", "C"); err == nil {
		t.Fatal("took a lock another replica holds")
	}
	// b's session dies holding it (its replica was killed).
	if _, err := c.pool.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"); err != nil {
		t.Fatal(err)
	}
	if u, err := c.Lock(ctx, "t", "C"); err != nil {
		t.Fatalf("lock of a dead holder: %v", err)
	} else {
		u()
	}
}

// TestDatabaseDownFailsFastAndRecovers: with the database stopped, calls
// fail at once with ErrUnavailable; once it is back, the same Store works
// again without being reopened.
func TestDatabaseDownFailsFastAndRecovers(t *testing.T) {
	srv := pgtest.Own(t, pgtest.Options{})
	s := openStore(t, srv.DSN("postgres"))
	ctx := context.Background()
	if err := s.Put(sample()...); err != nil {
		t.Fatal(err)
	}
	v, _ := s.Version(ctx, "t", "C")
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i, call := range []func() error{
		func() error { _, err := s.Version(ctx, "t", "C"); return err },
		func() error { _, err := s.Since(ctx, "t", "C", store.Version{}); return err },
		func() error { _, err := s.PutAt(ctx, "t", "C", v, sample()[0]); return err },
		func() error { return s.Put(sample()[0]) },
		func() error { _, _, err := s.Get(kv("c")); return err },
		func() error { return s.Ping(ctx) },
	} {
		if err := call(); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("call %d with the database down: %v, want ErrUnavailable", i, err)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("failing took %v", d)
	}
	if err := srv.StartAgain(); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Version(ctx, "t", "C"); err != nil || got != v {
		t.Fatalf("after restart: %+v, %v", got, err)
	}
}

// TestContextIdsKeptApart: context ids that are not UTF-8, or that hold
// what the text escape uses, are stored under names of their own and read
// back as they were.
func TestContextIdsKeptApart(t *testing.T) {
	s := openStore(t, pgtest.NewDB(t))
	ids := []string{"plain", "caf\xe9", "caf\xe8", "\x01" + "636166e9", "x\x01y", "ünï"}
	for i, id := range ids {
		if err := s.Put(store.KV{Key: store.Key("c", "t", id), Value: fmt.Sprintf(`{"created":%d,"updated":1}`, i+1)}); err != nil {
			t.Fatalf("%q: %v", id, err)
		}
	}
	for i, id := range ids {
		v, ok, err := s.Get(store.Key("c", "t", id))
		if err != nil || !ok || !strings.Contains(v, fmt.Sprintf(`"created":%d,`, i+1)) {
			t.Errorf("%q: %q %v %v", id, v, ok, err)
		}
	}
	n := 0
	s.Scan(store.Prefix("c", "t"), func(k, _ string) bool {
		n++
		return true
	})
	if n != len(ids) {
		t.Fatalf("%d contexts listed, want %d", n, len(ids))
	}
}

// TestQueriesUseIndexes: every query the store runs on its hot paths is
// answered through an index, never by scanning a table.
func TestQueriesUseIndexes(t *testing.T) {
	dsn := pgtest.NewDB(t)
	s := openStore(t, dsn)
	ctx := context.Background()
	if err := s.Put(sample()...); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SET enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	for name, q := range map[string]struct {
		sql  string
		args []any
	}{
		"version":          {qVersion, []any{"t", "C"}},
		"header":           {qHeader, []any{"t", "C"}},
		"headers":          {qHeaders, []any{"t"}},
		"messages":         {qMessages, []any{1, 0, 100}},
		"message":          {qMessageAt, []any{"t", "C", 1}},
		"tagsat":           {qTagsAt, []any{"t", "C", 1}},
		"tags":             {qTags, []any{1, 0, 100}},
		"blocks":           {qBlocks, []any{1, 0, 100}},
		"nodes":            {qNodes, []any{1, 1, 100}},
		"vectors":          {qVectors, []any{1, 0, 100}},
		"messages changed": {qMessagesChanged, []any{1, 1}},
		"tags changed":     {qTagsChanged, []any{1, 1}},
		"blocks changed":   {qBlocksChanged, []any{1, 1}},
		"nodes changed":    {qNodesChanged, []any{1, 1}},
		"vectors changed":  {qVectorsChanged, []any{1, 1}},
		"focus":            {qFocus, []any{1}},
		"prov":             {qProv, []any{1}},
		"resps":            {qResps, []any{1}},
		"resp":             {qResp, []any{"t", "resp_1", "C"}},
		"respctx":          {qRespCtx, []any{"t", "resp_1"}},
		"add focus": {qAddFocus, []any{"t", "C", []int64{0}, []int64{1}, []int64{1}, []int64{5}, []int64{1}, []int64{5}, []int64{0},
			[]int64{1}, []int64{7}, [][]byte{nil}}},
	} {
		rows, err := conn.Query(ctx, "EXPLAIN "+q.sql, q.args...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if plan := strings.Join(lines, "\n"); strings.Contains(plan, "Seq Scan") {
			t.Errorf("%s scans a table:\n%s", name, plan)
		}
	}
}

// TestUnchangedCheckScansNothing: a replica's check of a context nobody
// changed since its version (every request) scans none of the context's
// rows, in the generic plan of a prepared statement as in a custom one.
// (It used to walk every message, tag and gist of the context through the
// primary key: milliseconds per request at 100K-token histories.)
func TestUnchangedCheckScansNothing(t *testing.T) {
	dsn := pgtest.NewDB(t)
	s := openStore(t, dsn)
	ctx := context.Background()
	if err := s.Put(sample()...); err != nil {
		t.Fatal(err)
	}
	v, err := s.Version(ctx, "t", "C")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, mode := range []string{"force_generic_plan", "force_custom_plan"} {
		if _, err := conn.Exec(ctx, "SET plan_cache_mode = "+mode); err != nil {
			t.Fatal(err)
		}
		for i, q := range []string{qMessagesChanged, qTagsChanged, qBlocksChanged, qNodesChanged, qVectorsChanged} {
			name := fmt.Sprintf("changed%d", i)
			if _, err := conn.Exec(ctx, "PREPARE "+name+" AS "+q); err != nil {
				t.Fatal(err)
			}
			rows, err := conn.Query(ctx, fmt.Sprintf("EXPLAIN (ANALYZE, COSTS OFF) EXECUTE %s(%d, %d)", name, v.Epoch, v.N))
			if err != nil {
				t.Fatal(err)
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, "DEALLOCATE "+name); err != nil {
				t.Fatal(err)
			}
			for _, l := range lines {
				scan := strings.Contains(l, "Scan") && !strings.Contains(l, " on contexts")
				if scan && !strings.Contains(l, "never executed") {
					t.Errorf("%s, %s: an unchanged context's check scans its rows:\n%s", mode, q, strings.Join(lines, "\n"))
					break
				}
			}
		}
	}
	// A write moves the version on: the same check reads what it wrote.
	if err := s.Put(store.KV{Key: kv("m", "000000000002"), Value: `{"seq":2,"parent":1,"hash":"h2","role":"user","text":"later","time":1002,"first":-1,"last":-1,"tokens":1}`}); err != nil {
		t.Fatal(err)
	}
	ch, err := s.Since(ctx, "t", "C", v)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range ch.Records {
		keys = append(keys, r.Key)
	}
	if want := []string{kv("c"), kv("m", "000000000002")}; !reflect.DeepEqual(keys, want) {
		t.Errorf("records after the write: %q, want %q", keys, want)
	}
}

// TestSynchronousCommit: the option reaches every session of the pool
// (data_sync second on PostgreSQL); without it the database's setting holds.
func TestSynchronousCommit(t *testing.T) {
	dsn := pgtest.NewDB(t)
	for _, tc := range []struct{ opt, want string }{{"off", "off"}, {"", "on"}, {"local", "local"}} {
		s, err := Open(context.Background(), Options{DSN: dsn, AutoMigrate: true, SynchronousCommit: tc.opt})
		if err != nil {
			t.Fatal(err)
		}
		var got string
		if err := s.pool.QueryRow(context.Background(), "SHOW synchronous_commit").Scan(&got); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if got != tc.want {
			t.Errorf("option %q: synchronous_commit %q, want %q", tc.opt, got, tc.want)
		}
	}
}

// TestRewrittenMessageKeepsOnlyItsNewTags: a message written again (re-
// tagged, or untagged by an erasure) has the tags of its last record only,
// whether the write is guarded or not.
func TestRewrittenMessageKeepsOnlyItsNewTags(t *testing.T) {
	s := openStore(t, pgtest.NewDB(t))
	ctx := context.Background()
	recs := sample()
	if err := s.Put(recs...); err != nil {
		t.Fatal(err)
	}
	k := kv("m", "000000000001")
	for i, tags := range []string{`"tags":["email"],`, `"whole":["orphan"],`, ``} {
		val := fmt.Sprintf(`{"seq":1,"parent":0,"hash":"h1","role":"user","text":"mail me","time":1001,%s"first":0,"last":1,"tokens":7}`, tags)
		if i%2 == 0 {
			if err := s.Put(store.KV{Key: k, Value: val}); err != nil {
				t.Fatal(err)
			}
		} else {
			v, err := s.Version(ctx, "t", "C")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.PutAt(ctx, "t", "C", v, store.KV{Key: k, Value: val}); err != nil {
				t.Fatal(err)
			}
		}
		got, _, err := s.Get(k)
		if err != nil {
			t.Fatal(err)
		}
		equalJSON(t, k, got, val)
	}
}

// TestBlocksWrittenTogether: a write's blocks go to the database as one
// statement per context, not one per block, and read back as written:
// new blocks and rewritten ones, a block with spans, one whose text holds
// a NUL, one with a field no column holds, in two contexts at once.
func TestBlocksWrittenTogether(t *testing.T) {
	s := openStore(t, pgtest.NewDB(t))
	if err := s.Put(sample()...); err != nil {
		t.Fatal(err)
	}
	block := func(ctx string, index int, text string, edit func(*tree.Node)) store.KV {
		n := &tree.Node{Index: index, First: index, Last: index, Tokens: 2, Text: text, Cost: 2, Msg: int64(index), Role: "user", Time: int64(1000 + index), TimeEnd: int64(1000 + index)}
		n.Hash[0], n.Hash[31] = byte(index), 7
		if edit != nil {
			edit(n)
		}
		b, _ := json.Marshal(n)
		return store.KV{Key: store.Key("n", "t", ctx, "00", fmt.Sprintf("%010d", index)), Value: string(b)}
	}
	later := block("C", 3, "three", nil)
	later.Value = strings.TrimSuffix(later.Value, "}") + `,"later":[1]}`
	recs := []store.KV{
		block("C", 1, "one, rewritten", func(n *tree.Node) { n.Part, n.Join, n.DetailsHead = 1, -1, 4 }),
		block("C", 2, "two\x00\x01 é", func(n *tree.Node) {
			n.Spans, n.Tags = []tree.Span{{Start: 0, End: 3, Rule: "secret"}}, []string{"secret"}
		}),
		later,
		block("D", 0, "d zero", nil),
		block("D", 1, "d one", nil),
		block("D", 2, "d two", nil),
	}
	parsed, err := parseAll(recs)
	if err != nil {
		t.Fatal(err)
	}
	b := &writeBatch{}
	for _, r := range parsed {
		if err := b.add(int64(r.k.context[0]), 1, r); err != nil {
			t.Fatal(err)
		}
	}
	var stmts []string
	for _, q := range b.done().QueuedQueries {
		stmts = append(stmts, q.SQL)
	}
	if !reflect.DeepEqual(stmts, []string{qPutBlocks, qPutBlocks}) {
		t.Fatalf("a write of 6 blocks of 2 contexts queued %d statements, want one per context", len(stmts))
	}
	if err := s.Put(recs...); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		got, ok, err := s.Get(r.Key)
		if err != nil || !ok {
			t.Fatalf("get %s: %v %v", r.Key, ok, err)
		}
		equalJSON(t, r.Key, got, r.Value)
	}
	var n int
	if err := s.pool.QueryRow(context.Background(), "SELECT count(*) FROM blocks").Scan(&n); err != nil || n != 4+3 {
		t.Fatalf("%d blocks stored, want 7 (C: 0-3, D: 0-2), %v", n, err)
	}
}

// TestAddCountsAcrossConnections: three stores (replicas, a pool each) add
// focus counts to one context's telemetry at once; the stored counts are
// the sums, the times of last use the latest, and each addition returns
// the sums as they stood after it. Counts of a context that does not
// exist are dropped.
func TestAddCountsAcrossConnections(t *testing.T) {
	dsn := pgtest.NewDB(t)
	stores := []*Store{openStore(t, dsn), openStore(t, dsn), openStore(t, dsn)}
	ctx := context.Background()
	if err := stores[0].Put(sample()...); err != nil { // node 1/0: expanded 2, resident 3, swaps 1, questions 2
		t.Fatal(err)
	}
	const adds = 20
	errs := make(chan error, len(stores))
	for i, s := range stores {
		go func() {
			for n := range adds {
				sums, err := s.AddCounts(ctx, "t", "C",
					store.KV{Key: kv("f", "01", "0000000000"), Value: fmt.Sprintf(`{"expanded":1,"last_expanded":%d,"resident":2,"swaps":0,"questions":1}`, 100*i+n)},
					store.KV{Key: kv("f", "00", "0000000003"), Value: fmt.Sprintf(`{"expanded":0,"resident":1,"last_resident":%d,"swaps":1,"questions":1,"last_question":%d}`, 100*i+n, i+1)})
				if err == nil && len(sums) != 2 {
					err = fmt.Errorf("an addition returned %d sums, want 2", len(sums))
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range stores {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{
		kv("f", "00", "0000000003"): `"expanded":0,"last_resident":219,"resident":60,"swaps":60,"questions":60`,
		kv("f", "01", "0000000000"): `"expanded":62,"last_expanded":219,"resident":123,"last_resident":6,"swaps":1,"questions":62`,
	}
	got := map[string]string{}
	if err := stores[1].Scan(kv("f")+":", func(k, v string) bool { got[k] = v; return true }); err != nil {
		t.Fatal(err)
	}
	for k, w := range want {
		var gf, wf focusJSON
		if err := json.Unmarshal([]byte(got[k]), &gf); err != nil {
			t.Fatalf("%s: %q: %v", k, got[k], err)
		}
		if err := json.Unmarshal([]byte("{"+w+"}"), &wf); err != nil {
			t.Fatal(err)
		}
		wf.LastQuestion = gf.LastQuestion // whichever replica added last
		if k == kv("f", "01", "0000000000") {
			wf.LastQuestion = 18446744073709551615 // none added: the stored one stays
		}
		if gf != wf || (k != kv("f", "01", "0000000000") && (gf.LastQuestion < 1 || gf.LastQuestion > 3)) {
			t.Errorf("%s: stored %+v, want %+v", k, gf, wf)
		}
	}
	sums, err := stores[2].AddCounts(ctx, "t", "gone", store.KV{Key: store.Key("f", "t", "gone", "00", "0000000000"), Value: `{"expanded":1,"resident":1,"swaps":0,"questions":1}`})
	if err != nil || len(sums) != 0 {
		t.Errorf("counts of a context that does not exist: %v, %v; want none stored", sums, err)
	}
}
