// Many replicas, one memory. With a store that other processes write to
// as well (store.Shared: PostgreSQL), every cached context carries the
// store's version of it. Before a context loaded earlier is used, refresh
// compares that version with the store's and applies what other replicas
// wrote since (only the changed records), so a replica never answers from a
// stale copy. Every write of a loaded context is guarded (put): the store
// refuses it (store.ErrConflict) when another replica wrote first, the
// context is dropped, and the operation runs again on the context as the
// store has it (retry), taking the context's lock in the store first, so
// that writers contending for one context take turns. A turn's ingest
// lets that guard stand for the check (acquireToWrite): it writes from the
// cache unchecked, unless the context is contended (a write from this
// replica's cache lost a race since a check last found it unchanged), and
// checks afterwards when it wrote nothing. Focus telemetry is added to the
// store's counts, never written over them (addFocus). The embedded store
// has one process: none of this runs for it.

package memory

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/megacontext/megacontext/memory/qvec"
	"github.com/megacontext/megacontext/memory/store"
	"github.com/megacontext/megacontext/memory/tree"
)

// StoreCounters count how a replica met the other replicas' writes, and
// what the store costs the request path.
type StoreCounters struct {
	// Conflicts counts operations run again because another replica wrote
	// to their context between reading and writing it.
	Conflicts uint64
	// CatchUps counts cached contexts brought up to date with what other
	// replicas wrote (only the changes read).
	CatchUps uint64
	// Loads counts contexts read whole from the store.
	Loads uint64
	// Checks counts checks of a cached context against a shared store
	// (one round trip each, before a request uses the context), and
	// CheckTime is the time they took, catch-ups included.
	Checks    uint64
	CheckTime time.Duration
	// Writes counts writes of a loaded context (a turn makes two: the
	// user's message, the reply; background work such as embeddings makes
	// more), on either store, and WriteTime is the time they took.
	Writes    uint64
	WriteTime time.Duration
	// WriteWait is the part of WriteTime requests waited for: a turn's
	// message is written while its window is assembled (putStart), so
	// only what the write takes beyond the assembly holds the request.
	WriteWait time.Duration
}

// storeCounters are an engine's StoreCounters, updated atomically.
type storeCounters struct {
	conflicts, catchUps, loads, checks, writes atomic.Uint64
	// checkNanos and writeNanos are CheckTime and WriteTime.
	checkNanos, writeNanos atomic.Int64
	// writeWaitNanos is WriteWait.
	writeWaitNanos atomic.Int64
}

// StoreCounters returns the engine's counts since it opened.
func (e *Engine) StoreCounters() StoreCounters {
	c := &e.counters
	return StoreCounters{Conflicts: c.conflicts.Load(), CatchUps: c.catchUps.Load(), Loads: c.loads.Load(),
		Checks: c.checks.Load(), CheckTime: time.Duration(c.checkNanos.Load()),
		Writes: c.writes.Load(), WriteTime: time.Duration(c.writeNanos.Load()), WriteWait: time.Duration(c.writeWaitNanos.Load())}
}

// storeCtx bounds one call to a shared store.
func (e *Engine) storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), e.opts.StoreTimeout)
}

// put writes records of the loaded context c (the caller holds c.mu):
// with a shared store, guarded by c's version (store.ErrConflict when
// another replica wrote first), and c takes the new version. When the
// write fails, c no longer matches the store: it is dropped, to be read
// again.
func (e *Engine) put(c *mctx, kvs ...store.KV) error {
	if len(kvs) == 0 {
		return nil
	}
	start := time.Now()
	defer func() {
		took := int64(time.Since(start))
		e.counters.writes.Add(1)
		e.counters.writeNanos.Add(took)
		e.counters.writeWaitNanos.Add(took) // the request waited for all of it
	}()
	var err error
	if e.shared == nil {
		err = e.st.Put(kvs...)
	} else {
		ctx, cancel := e.storeCtx()
		var v store.Version
		v, err = e.shared.PutAt(ctx, c.key.Tenant, c.key.Context, c.version, kvs...)
		cancel()
		if err == nil {
			c.version = v
		}
	}
	if err != nil {
		e.drop(c)
	}
	return err
}

// putStart is put for a shared store with the write left running: the
// caller goes on with c in memory (assembling a window from it) while the
// write is in flight, then calls wait, which takes the write's outcome as
// put would (c takes the new version, or is dropped) and returns it. The
// caller holds c.mu from putStart until wait returns, and sends nothing
// computed from c out of the engine before wait returned nil. The store
// sees the same call put makes: one guarded PutAt of kvs at c's version.
func (e *Engine) putStart(c *mctx, kvs ...store.KV) (wait func() error) {
	type result struct {
		v    store.Version
		err  error
		took time.Duration
	}
	base, k := c.version, c.key
	out := make(chan result, 1)
	go func() {
		start := time.Now()
		ctx, cancel := e.storeCtx()
		v, err := e.shared.PutAt(ctx, k.Tenant, k.Context, base, kvs...)
		cancel()
		out <- result{v, err, time.Since(start)}
	}()
	return func() error {
		start := time.Now()
		r := <-out
		e.counters.writes.Add(1)
		e.counters.writeNanos.Add(int64(r.took))
		e.counters.writeWaitNanos.Add(int64(time.Since(start)))
		if r.err != nil {
			e.drop(c)
			return r.err
		}
		c.version = r.v
		return nil
	}
}

// drop takes c out of the loaded contexts, if it is the one loaded, so
// that its key is read again from the store. (A context being loaded is
// not there yet: it is left as it is.)
func (e *Engine) drop(c *mctx) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.loaded[c.key.id()] == c {
		delete(e.loaded, c.key.id())
		e.cached.Add(-c.bytes)
		e.dropped++
		c.stale = true
	}
}

// maxConflicts bounds how many times an operation runs again after
// another replica wrote to its context first.
const maxConflicts = 16

// lockTimeout bounds waiting for a contended context's turn.
const lockTimeout = 30 * time.Second

// errUnchecked means an operation ran on a cached context that no write's
// guard checked, and found it out of date (or could not judge the request
// on it): it runs again, on the context as the store has it (retry).
var errUnchecked = errors.New("memory: the cached context was out of date")

// retry runs op, and again while it fails with store.ErrConflict (another
// replica wrote to k between reading and writing it; the failed write
// dropped the context, so the next run reads it as stored) or errUnchecked.
// A run after a conflict holds k's lock in the store, so that writers
// contending for one context take turns rather than race, and k is marked
// contended: this replica's next turns on it check their cache before
// writing (acquireToWrite), until a check finds it unchanged.
func retry[T any](e *Engine, k Key, op func() (T, error)) (T, error) {
	v, err := op()
	for i := 0; i < maxConflicts && err != nil; i++ {
		if errors.Is(err, errUnchecked) {
			v, err = op()
			continue
		}
		if e.shared == nil || !errors.Is(err, store.ErrConflict) {
			break
		}
		e.counters.conflicts.Add(1)
		e.setContended(k, true)
		ctx, cancel := context.WithTimeout(context.Background(), lockTimeout)
		unlock, lerr := e.shared.Lock(ctx, k.Tenant, k.Context)
		cancel()
		if lerr != nil {
			return v, lerr
		}
		v, err = op()
		unlock()
	}
	if errors.Is(err, errUnchecked) {
		err = fmt.Errorf("%w: %w", store.ErrConflict, err)
	}
	return v, err
}

// checkUnwritten follows an ingest (which returned err) into a cached
// context c that no check vouched for (acquireToWrite), at version base
// before it. A write's guard vouched for c when the ingest wrote; when it
// wrote nothing, c is checked now, and the turn runs again on the stored
// context (errUnchecked) when another replica had written to it. A turn
// refused as too long runs again on the stored context too (the refusal
// dropped c), so that no turn is refused on a stale cache.
func (e *Engine) checkUnwritten(c *mctx, base store.Version, err error) error {
	switch {
	case errors.Is(err, ErrTooLong):
		return errUnchecked
	case err != nil || c.version != base:
		return err
	}
	ok, err := e.refresh(c)
	switch {
	case err != nil:
		return err
	case !ok:
		e.forget(c.key)
		c.stale = true
		return errUnchecked
	case c.version != base:
		return errUnchecked
	}
	return nil
}

// maxContended bounds the contexts marked contended; past it the marks are
// cleared (a context then costs one more lost race to be marked again).
const maxContended = 1 << 12

// setContended marks k contended, or not.
func (e *Engine) setContended(k Key, on bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case on && e.contended == nil:
		e.contended = map[string]bool{}
	case on && len(e.contended) >= maxContended:
		clear(e.contended)
	case !on && e.contended == nil:
		return
	}
	if on {
		e.contended[k.id()] = true
	} else {
		delete(e.contended, k.id())
	}
}

// records is a context's records read in one snapshot of a shared store,
// read as the store would be (get, scan).
type records []store.KV

func (rs records) get(key string) (string, bool, error) {
	i := sort.Search(len(rs), func(i int) bool { return rs[i].Key >= key })
	if i < len(rs) && rs[i].Key == key {
		return rs[i].Value, true, nil
	}
	return "", false, nil
}

func (rs records) scan(prefix string, fn func(key, value string) bool) error {
	i := sort.Search(len(rs), func(i int) bool { return rs[i].Key >= prefix })
	for ; i < len(rs) && strings.HasPrefix(rs[i].Key, prefix); i++ {
		if !fn(rs[i].Key, rs[i].Value) {
			break
		}
	}
	return nil
}

// reader is where a load reads records: the store, or one snapshot of it.
type reader interface {
	get(key string) (string, bool, error)
	scan(prefix string, fn func(key, value string) bool) error
}

// backendReader reads the store itself.
type backendReader struct{ st store.Backend }

func (b backendReader) get(key string) (string, bool, error) { return b.st.Get(key) }

func (b backendReader) scan(prefix string, fn func(key, value string) bool) error {
	return b.st.Scan(prefix, fn)
}

// loadReader returns where load reads k from: the embedded store itself,
// or one consistent snapshot of a shared one (and the version it holds).
func (e *Engine) loadReader(k Key) (reader, store.Version, error) {
	if e.shared == nil {
		return backendReader{e.st}, store.Version{}, nil
	}
	ctx, cancel := e.storeCtx()
	defer cancel()
	ch, err := e.shared.Since(ctx, k.Tenant, k.Context, store.Version{})
	if err != nil {
		return nil, store.Version{}, fmt.Errorf("memory: load %q: %w", k.Context, err)
	}
	e.counters.loads.Add(1)
	return records(ch.Records), ch.Version, nil
}

// refresh brings c up to date with a shared store: unchanged since it was
// read, c stays as it is; changed by another replica, what changed is read
// and applied. ok is false when c must be read again whole (deleted or
// made again elsewhere, or changes that cannot be applied in place).
func (e *Engine) refresh(c *mctx) (ok bool, err error) {
	start := time.Now()
	defer func() {
		e.counters.checks.Add(1)
		e.counters.checkNanos.Add(int64(time.Since(start)))
	}()
	ctx, cancel := e.storeCtx()
	defer cancel()
	// One round trip: the version, and what changed since c's if anything.
	ch, err := e.shared.Since(ctx, c.key.Tenant, c.key.Context, c.version)
	if err != nil {
		return false, fmt.Errorf("memory: check %q: %w", c.key.Context, err)
	}
	if ch.Version == c.version {
		// No other replica wrote since: the next turns may let their
		// writes' guards check the cache (acquireToWrite).
		e.setContended(c.key, false)
		return true, nil
	}
	if ch.Full || ch.Version.IsZero() {
		return false, nil
	}
	grew := c.tree.Len()
	if err := e.apply(c, ch.Records); err != nil {
		if !errors.Is(err, errRewritten) {
			e.log.Warn("catching up with the store failed; reading the context again", "context", c.key.Context, "err", err)
		}
		return false, nil
	}
	c.version = ch.Version
	// Replies another replica stored with estimated costs are counted by
	// the next ingest, whichever replica serves it.
	c.uncounted = nil
	e.recountUncounted(c)
	e.counters.catchUps.Add(1)
	e.account(c)
	if c.tree.Len() > grew {
		e.pokeEmbedder(c.key)
	}
	return true, nil
}

// errGap means changed records do not follow on from the loaded context.
var errGap = errors.New("records do not follow on from the loaded context")

// errRewritten means another replica rewrote the text of blocks the loaded
// context holds (an erasure, a prune): the context is read again whole, so
// that no copy of the old text (in the blocks, the lens index, the
// vectors) outlives it in this replica.
var errRewritten = errors.New("blocks of the loaded context were rewritten")

// apply adds what other replicas wrote (records in key order: the header,
// messages, tree nodes, vectors) to c. A message or node c has is updated
// in place; a new one must follow on from the last.
func (e *Engine) apply(c *mctx, recs []store.KV) error {
	for _, kv := range recs {
		switch kv.Key[:2] {
		case kindContext + ":":
			var rec ctxRecord
			if !decodeHeader(kv.Value, &rec) {
				return fmt.Errorf("header %s unreadable", kv.Key)
			}
			c.rec = rec
		case kindPins + ":":
			var p pinsRecord
			if err := unmarshal(kv.Value, &p); err != nil {
				return fmt.Errorf("pins %s: %w", kv.Key, err)
			}
			c.pins = p
		case kindMessage + ":":
			m := e.decodeMessage(c.key, kv.Key, kv.Value)
			m.rawSaved = !m.RawKey.IsZero()
			m.Role = internRole(m.Role)
			switch n := int64(len(c.msgs)); {
			case m.Seq < n:
				c.replaceMsg(m)
			case m.Seq == n:
				c.addMsg(m)
			default:
				return fmt.Errorf("%w: message %d after %d", errGap, m.Seq, n)
			}
		case kindNode + ":":
			n, err := tree.DecodeNode(kv.Value)
			if err != nil {
				return fmt.Errorf("node %s: %w", kv.Key, err)
			}
			if old := c.tree.Node(n.Level, n.Index); old != nil {
				if n.Level == 0 && n.Text != old.Text {
					return fmt.Errorf("%w: block %d", errRewritten, n.Index)
				}
				c.replaceNode(old, n)
				continue
			}
			if n.Index != c.tree.LevelLen(n.Level) {
				return fmt.Errorf("%w: node %d/%d after %d", errGap, n.Level, n.Index, c.tree.LevelLen(n.Level))
			}
			if err := e.restoreNode(c, kv.Key, kv.Value); err != nil {
				return err
			}
		case kindVector + ":":
			if e.opts.Embedder == nil {
				continue
			}
			b, _ := seqOfKey(kv.Key)
			if int(b) != len(c.vecs) || int(b) >= c.tree.Len() {
				continue // embedded again from where they stop
			}
			v, err := qvec.Decode([]byte(kv.Value))
			if err != nil {
				return fmt.Errorf("vector %s: %w", kv.Key, err)
			}
			c.vecs = append(c.vecs, v)
		}
	}
	return nil
}

// replaceMsg updates a loaded message with its stored record (another
// replica superseded it, learned its raw key or tagged it). Its place in
// the threads (parent, chain hash) never changes.
func (c *mctx) replaceMsg(m *msgRecord) {
	old := c.msgs[m.Seq]
	if old.RawKey != m.RawKey {
		if !old.RawKey.IsZero() {
			delete(c.byRaw, old.RawKey)
		}
		if !m.RawKey.IsZero() {
			c.byRaw[m.RawKey] = m.Seq
		}
	}
	c.msgBytes += msgFootprint(m) - msgFootprint(old)
	*old = *m
}

// replaceNode updates a loaded tree node with its stored record (another
// replica re-tagged it, or rescanned it, and rebuilt the gists above). A
// block's text does not change, so the lens index stays as it is.
func (c *mctx) replaceNode(old, n *tree.Node) {
	c.nodeBytes -= nodeFootprint(old, c.textShared(old))
	if n.Level == 0 {
		n.Text = old.Text // keeps sharing its message's text
		n.Role = internRole(n.Role)
	}
	*old = *n
	c.tree.Reread(old)
	c.nodeBytes += nodeFootprint(old, c.textShared(old))
}
