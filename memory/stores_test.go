package memory

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/megacontext/megacontext/memory/pgstore"
	"github.com/megacontext/megacontext/memory/pgstore/pgtest"
	"github.com/megacontext/megacontext/memory/store"
	"github.com/megacontext/megacontext/memory/tree"
)

// The engine's tests run against either store: the embedded buntdb store
// (the default), or PostgreSQL when MEGACONTEXT_TEST_STORE=postgres (`make
// test` runs the package both ways). With PostgreSQL, engines share one
// database of a throwaway server, each data folder its own namespace of
// tenants (an engine opened with an empty Dir a new one), so that a test
// that closes an engine and opens its folder again reads what it wrote,
// and nothing else.

// testStoreEnv selects the store of the engine's tests.
const testStoreEnv = "MEGACONTEXT_TEST_STORE"

// onPostgres reports that the tests run against PostgreSQL.
var onPostgres = os.Getenv(testStoreEnv) == "postgres"

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// testNS hands out tenant namespaces in the shared test database.
var testNS struct {
	mu    sync.Mutex
	dsn   string
	byDir map[string]string
	n     int
}

// fataler is what the helpers need of a test: testing.TB or a rapid.T.
type fataler interface {
	Fatal(args ...any)
}

// helper marks the caller as a test helper when t can.
func helper(t fataler) {
	if h, ok := t.(interface{ Helper() }); ok {
		h.Helper()
	}
}

// testNamespace returns the test database and the namespace of dir (a new
// one when dir is empty).
func testNamespace(t fataler, dir string) (dsn, ns string) {
	helper(t)
	testNS.mu.Lock()
	defer testNS.mu.Unlock()
	if testNS.dsn == "" {
		srv, err := pgtest.SharedServer()
		if err != nil {
			t.Fatal(err)
		}
		if testNS.dsn, err = srv.CreateDatabase(context.Background(), "engine"); err != nil {
			t.Fatal(err)
		}
		testNS.byDir = map[string]string{}
	}
	if ns, ok := testNS.byDir[dir]; ok && dir != "" {
		return testNS.dsn, ns
	}
	testNS.n++
	ns = fmt.Sprintf("n%d.", testNS.n)
	if dir != "" {
		testNS.byDir[dir] = ns
	}
	return testNS.dsn, ns
}

// nsStore confines a shared store to the tenants of one namespace: tenant
// T is stored as NS+T (keys are KIND:TENANT:..., and a namespace needs no
// escaping).
type nsStore struct {
	*pgstore.Store
	ns string
}

func (s nsStore) in(key string) string {
	kind, rest, ok := strings.Cut(key, ":")
	if !ok || rest == "" {
		return key // "i:", "": every tenant's
	}
	return kind + ":" + s.ns + rest
}

func (s nsStore) out(key string) (string, bool) {
	kind, rest, _ := strings.Cut(key, ":")
	rest, ok := strings.CutPrefix(rest, s.ns)
	return kind + ":" + rest, ok
}

func (s nsStore) all(kvs []store.KV) []store.KV {
	out := make([]store.KV, len(kvs))
	for i, kv := range kvs {
		out[i] = store.KV{Key: s.in(kv.Key), Value: kv.Value}
	}
	return out
}

func (s nsStore) Put(kvs ...store.KV) error { return s.Store.Put(s.all(kvs)...) }

func (s nsStore) Get(key string) (string, bool, error) { return s.Store.Get(s.in(key)) }

func (s nsStore) Scan(prefix string, fn func(key, value string) bool) error {
	return s.Store.Scan(s.in(prefix), func(k, v string) bool {
		if k, ok := s.out(k); ok {
			return fn(k, v)
		}
		return true
	})
}

func (s nsStore) Delete(exact []string, prefixes []string) (int, error) {
	e, p := make([]string, len(exact)), make([]string, len(prefixes))
	for i, k := range exact {
		e[i] = s.in(k)
	}
	for i, k := range prefixes {
		p[i] = s.in(k)
	}
	return s.Store.Delete(e, p)
}

func (s nsStore) Version(ctx context.Context, tenant, name string) (store.Version, error) {
	return s.Store.Version(ctx, s.ns+tenant, name)
}

func (s nsStore) Since(ctx context.Context, tenant, name string, since store.Version) (*store.Changes, error) {
	ch, err := s.Store.Since(ctx, s.ns+tenant, name, since)
	if err == nil {
		for i := range ch.Records {
			ch.Records[i].Key, _ = s.out(ch.Records[i].Key)
		}
	}
	return ch, err
}

func (s nsStore) PutAt(ctx context.Context, tenant, name string, base store.Version, kvs ...store.KV) (store.Version, error) {
	return s.Store.PutAt(ctx, s.ns+tenant, name, base, s.all(kvs)...)
}

func (s nsStore) AddCounts(ctx context.Context, tenant, name string, kvs ...store.KV) ([]store.KV, error) {
	out, err := s.Store.AddCounts(ctx, s.ns+tenant, name, s.all(kvs)...)
	for i := range out {
		out[i].Key, _ = s.out(out[i].Key)
	}
	return out, err
}

func (s nsStore) Lock(ctx context.Context, tenant, name string) (func(), error) {
	return s.Store.Lock(ctx, s.ns+tenant, name)
}

func (s nsStore) Claim(ctx context.Context, tenant, name, kind string, lease time.Duration) (func(), bool, error) {
	return s.Store.Claim(ctx, s.ns+tenant, name, kind, lease)
}

// testOpen opens an engine on the store the tests run against.
func testOpen(t fataler, opts Options) (*Engine, error) {
	helper(t)
	if onPostgres && opts.Store == nil {
		dsn, ns := testNamespace(t, opts.Dir)
		s, err := pgstore.Open(context.Background(), pgstore.Options{DSN: dsn, AutoMigrate: true, MaxConns: 4})
		if err != nil {
			return nil, err
		}
		opts.Store = nsStore{s, ns}
	}
	return Open(opts)
}

// mustOpen is testOpen that fails t on error and closes the engine when t
// ends.
func mustOpen(t testing.TB, opts Options) *Engine {
	t.Helper()
	e, err := testOpen(t, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// databaseHolds counts the rows of the contexts of dir's namespace whose
// texts hold text (the database's part of an erasure test: the rows are
// rewritten and vacuumed; the write-ahead log is PostgreSQL's own).
func databaseHolds(t *testing.T, dir, text string) int {
	t.Helper()
	testNS.mu.Lock()
	dsn, ns := testNS.dsn, testNS.byDir[dir]
	testNS.mu.Unlock()
	if ns == "" {
		t.Fatalf("no database namespace for %s", dir)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, `WITH c AS (SELECT id FROM contexts WHERE tenant_id LIKE $1 || '%')
		SELECT (SELECT count(*) FROM messages WHERE context_id IN (SELECT id FROM c) AND (strpos(body, $2) > 0 OR strpos(name, $2) > 0 OR position(convert_to($2, 'UTF8') IN coalesce(raw, '')) > 0))
		     + (SELECT count(*) FROM blocks WHERE context_id IN (SELECT id FROM c) AND strpos(body, $2) > 0)
		     + (SELECT count(*) FROM nodes WHERE context_id IN (SELECT id FROM c) AND (strpos(gist, $2) > 0 OR strpos(short, $2) > 0))
		     + (SELECT count(*) FROM responses WHERE context_id IN (SELECT id FROM c) AND strpos(record, $2) > 0)
		     + (SELECT count(*) FROM provenance WHERE context_id IN (SELECT id FROM c) AND strpos(record, $2) > 0)`, ns, text).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// embeddedOnly skips a test of the embedded store's own file: damaged
// records, files written by older versions.
func embeddedOnly(t testing.TB) {
	t.Helper()
	if onPostgres {
		t.Skip("a test of the embedded store's file (damaged or old records)")
	}
}

// TestStoredFieldsHaveColumns fails when a record the engine stores gains
// a field that the PostgreSQL store keeps in no column of its own (it
// would travel in the row's extra column, untyped): add a column in a new
// migration (memory/pgstore/migrations) and to the store's record shapes.
func TestStoredFieldsHaveColumns(t *testing.T) {
	for kind, v := range map[string]any{kindContext: ctxRecord{}, kindMessage: msgRecord{}, kindNode: tree.Node{}, kindFocus: NodeFocus{}} {
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue // not stored
			}
			if !pgstore.HasColumn(kind, name) {
				t.Errorf("%s.%s (%q, records %s:) has no column in the PostgreSQL store", rt.Name(), rt.Field(i).Name, name, kind)
			}
		}
	}
	if !pgstore.HasColumn(kindMessage, "raw") {
		t.Error("a message's raw JSON has no column in the PostgreSQL store")
	}
}
