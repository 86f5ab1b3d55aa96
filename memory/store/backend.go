package store

import (
	"context"
	"errors"
	"time"
)

// Backend is what the engine keeps its records in: string values under the
// keys of one schema (memory/schema.go), written in atomic batches and
// read back by key and by key prefix, in key order. Store (buntdb, one
// process) is the embedded one; memory/pgstore keeps the same records in
// PostgreSQL tables, for replicas sharing one memory (it also implements
// Shared).
type Backend interface {
	// Put writes records atomically: all or none.
	Put(kvs ...KV) error
	// Get returns the record of key; ok is false when absent.
	Get(key string) (value string, ok bool, err error)
	// Scan calls fn for every record whose key starts with prefix, in key
	// order, until fn returns false.
	Scan(prefix string, fn func(key, value string) bool) error
	// Delete removes the records of keys and every record whose key starts
	// with one of prefixes, atomically, and returns how many were removed.
	Delete(exact []string, prefixes []string) (int, error)
	// Compact reclaims what rewritten and deleted records took, so that an
	// erased text is gone from the store, not only unreachable.
	Compact() error
	// FileSize returns the bytes the store takes (0 when unknown).
	FileSize() int64
	// Close releases the store.
	Close() error
}

var _ Backend = (*Store)(nil)

// Version identifies a state of a context in a shared store. Epoch names
// the context's incarnation (a context deleted and made again gets a new
// one); N counts the writes to its header, messages, tree and vectors.
// The zero Version is a context that does not exist.
type Version struct {
	Epoch, N int64
}

// IsZero reports the version of a context that does not exist.
func (v Version) IsZero() bool { return v == Version{} }

// Errors of shared stores.
var (
	// ErrConflict means the context changed since the version a guarded
	// write was computed from (another replica wrote to it): read it again
	// and redo the operation.
	ErrConflict = errors.New("store: the context changed since it was read")
	// ErrUnavailable means the store cannot be reached (the database is
	// down): nothing was read or written.
	ErrUnavailable = errors.New("store: the memory store is unavailable")
	// ErrTimeout comes with ErrUnavailable when the store was reached, or
	// may have been, but did not answer within its time limit (an
	// overloaded or locked database): a write may or may not have been
	// committed, which a client's resend settles (stored messages are
	// matched by their bytes, never stored twice).
	ErrTimeout = errors.New("store: the memory store did not answer in time")
)

// Changes are a context's records as a shared store holds them: all of
// them, or those written after a version, read in one consistent snapshot.
type Changes struct {
	// Version is the context's version they bring it to (zero: the
	// context does not exist).
	Version Version
	// Full says the records are all of the context's: the version asked
	// for was zero or of another epoch.
	Full bool
	// Records are the header, message, tree node and vector records, in
	// key order, as Scan would return them.
	Records []KV
}

// Shared is implemented by a backend that several processes write to at
// once (PostgreSQL). A process caching a context checks its version before
// answering from the cache, reads only what changed, and writes with a
// guard, so that two replicas never both extend a context from the same
// state.
type Shared interface {
	Backend
	// Version returns the current version of the context (zero when it
	// does not exist).
	Version(ctx context.Context, tenant, context string) (Version, error)
	// Since returns the context's records written after since (all of them
	// when since is zero or of another epoch).
	Since(ctx context.Context, tenant, context string, since Version) (*Changes, error)
	// PutAt writes records of the context atomically provided it is still
	// at version base (ErrConflict otherwise; a zero base means it must not
	// exist yet) and returns its new version.
	PutAt(ctx context.Context, tenant, context string, base Version, kvs ...KV) (Version, error)
	// Lock holds off other processes' Lock of the context until unlock is
	// called: writers that lost a race take turns instead of racing again.
	Lock(ctx context.Context, tenant, context string) (unlock func(), err error)
	// Claim takes background job kind of the context for this process for
	// at most lease (ok is false while another process holds it), so that
	// one replica does it; release gives it back.
	Claim(ctx context.Context, tenant, context, kind string, lease time.Duration) (release func(), ok bool, err error)
	// AddCounts adds counters (focus telemetry records: how many windows
	// showed or opened each node) to the context's stored ones, count by
	// count, in one atomic statement, and returns the records as stored
	// after the addition. Replicas that count windows of one context at
	// once each add what they counted since they last added: every window
	// is counted once, and none overwrites another's counts. Records of a
	// context that no longer exists are dropped (none is returned).
	AddCounts(ctx context.Context, tenant, context string, kvs ...KV) ([]KV, error)
	// Ping reports whether the store can be reached now.
	Ping(ctx context.Context) error
}
