// Package memory is the MegaContext engine: it keeps each MegaContext's
// messages, threads and gist tree, ingests new messages durably, and
// assembles budgeted working windows for requests.
package memory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/megacontext/megacontext/memory/gist"
	"github.com/megacontext/megacontext/memory/glove"
	"github.com/megacontext/megacontext/memory/lens"
	"github.com/megacontext/megacontext/memory/policy"
	"github.com/megacontext/megacontext/memory/store"
	"github.com/megacontext/megacontext/tokens"
)

// Errors returned by the engine.
var (
	// ErrBadKey means a tenant or context id is malformed.
	ErrBadKey = errors.New("memory: invalid tenant or context id")
	// ErrTooLong means the newest turn alone does not fit the budget.
	ErrTooLong = errors.New("memory: the latest message does not fit the model's context")
	// ErrNotFound means the MegaContext (or message) does not exist.
	ErrNotFound = errors.New("memory: context not found")
	// ErrBadTag means a tag names no policy rule.
	ErrBadTag = errors.New("memory: invalid tag")
	// ErrBadMessage means a message cannot be stored as given (its raw JSON
	// is invalid or nests too deeply to be read back).
	ErrBadMessage = errors.New("memory: invalid message")
	// ErrForbidden means the caller's scopes do not clear it for a policy
	// rule it tried to change.
	ErrForbidden = errors.New("memory: not cleared for the rule")
	// ErrTokenizerUnavailable means an operation needs counts made with the
	// context's tokenizer, which this process does not have (an offline
	// export with the upstream unreachable): counting with another would
	// change what the context's root hashes.
	ErrTokenizerUnavailable = errors.New("memory: the context's tokenizer is unavailable")
	// ErrUnavailable means the store cannot be reached (a shared database
	// that is down): nothing was read or stored; the caller may retry.
	ErrUnavailable = store.ErrUnavailable
	// ErrStoreTimeout comes with ErrUnavailable when the store was reached
	// but did not answer in time (store.ErrTimeout).
	ErrStoreTimeout = store.ErrTimeout
	// ErrConflict means another replica kept writing to the context while
	// an operation ran, more times than it runs again: retry it.
	ErrConflict = store.ErrConflict
)

// Options configure an Engine.
type Options struct {
	// Store keeps the records; nil opens the embedded store in Dir. A
	// store.Shared one (memory/pgstore: PostgreSQL) may be written by other
	// processes too: see replicas.go. The engine closes it.
	Store store.Backend
	// StoreTimeout bounds each call to a shared store; 0 uses 5 seconds.
	StoreTimeout time.Duration
	// Dir is the embedded store's data directory; empty keeps everything
	// in memory.
	Dir string
	// Sync is the embedded store's durability policy.
	Sync store.Sync
	// BlockTokens is K, the block size.
	BlockTokens int
	// Fanout is F, children per gist node.
	Fanout int
	// GistTokens caps a full gist; ShortTokens a headline.
	GistTokens, ShortTokens int
	// Counter counts tokens; nil uses tokens.Estimate.
	Counter tokens.Counter
	// Policy tags sensitive spans at ingest and filters them at assembly
	// for callers not cleared for them; nil disables filtering.
	Policy *policy.Policy
	// MinRelevance is the least relevance (share of the best match) that
	// earns an expansion before hysteresis; 0 uses DefaultMinRelevance, a
	// negative value expands every match.
	MinRelevance float64
	// Embedder, when set, embeds blocks in the background and adds semantic
	// similarity to the lens.
	Embedder Embedder
	// Expander, when set, adds related terms (synonyms, a thesaurus) to
	// the question's lens query.
	Expander Expander
	// Vectors, when set, are GloVe word vectors (`make glove`): the lens
	// adds the history's words near the question's words to its query
	// (soft term matching). nil: lexical matching only.
	Vectors *glove.Vectors
	// MaxLoaded bounds how many MegaContexts are held in memory; 0 uses 256.
	MaxLoaded int
	// KeepWindows is how many recent live windows each context keeps for
	// inspection, explained; the keeper that keeps them also keeps the
	// focus telemetry. 0 uses DefaultKeepWindows (20); negative turns both
	// off.
	KeepWindows int
	// PinShare is the most of a request's budget pinned blocks may take;
	// pins that do not fit are left out of that window. 0 uses
	// DefaultPinShare (0.25).
	PinShare float64
	// Retention are the retention rules Prune applies (none by default).
	Retention []RetentionRule
	// CacheBytes bounds the memory the MegaContexts held in memory take,
	// by their approximate footprint (see cache.go); 0 uses
	// DefaultCacheBytes, a negative value sets no bound. Idle contexts are
	// evicted least recently used first; one in use never is, so a single
	// context larger than the bound stays loaded while it is in use.
	CacheBytes int64
	// Logger receives diagnostics.
	Logger *slog.Logger
	// Now returns the current time (tests set it).
	Now func() time.Time
	// Render is how the memory text is laid out: RenderOutline (the
	// default: a query-independent outline, then the question's details,
	// so that consecutive prompts share a long prefix) or
	// RenderChronological (one outline with the expansions in place).
	Render string
	// OutlineShare is RenderOutline's share for the outline of the memory
	// budget that is left when the verbatim tail takes its cap; 0 uses
	// DefaultOutlineShare.
	OutlineShare float64
}

// Render modes.
const (
	RenderChronological = "chronological"
	RenderOutline       = "outline"
)

// DefaultOutlineShare is RenderOutline's default OutlineShare.
const DefaultOutlineShare = 0.9

// Expander adds weighted related terms to a question.
type Expander interface {
	Expand(question string) []lens.Term
}

// HistoryExpander is an Expander that also finds the history's own words a
// question describes (a reverse dictionary: "who trims my hair?" finds
// "barber" when the history says "barber"); has reports whether the
// history holds a lens term.
type HistoryExpander interface {
	Expander
	ExpandIn(question string, has func(term string) bool) []lens.Term
}

// Definer is an Expander that also defines a question's nouns in the
// history's words (a dictionary: "puppy" is "a young dog", so "what name
// did you suggest for the puppy?" finds the request that said "dog");
// has reports whether the history holds a lens term.
type Definer interface {
	Define(question string, has func(term string) bool, rank func(noun string, terms []lens.Term) []lens.Term) []lens.Term
}

// DefaultMinRelevance is the expansion threshold tuned with `megacontext eval`.
const DefaultMinRelevance = 0.35

// Engine manages every MegaContext. It is safe for concurrent use.
type Engine struct {
	opts Options
	st   store.Backend
	// shared is st when other processes write to it too (nil otherwise).
	shared store.Shared
	gists  gist.Extractive
	log    *slog.Logger
	// policyPrint is opts.Policy's fingerprint, recorded in each context's
	// header; a context stored under another is rescanned on load.
	policyPrint string
	// repairMu serializes the repairs of torn contexts (repair.go) with
	// the load that reads each back: loads run without any context's
	// lock, and a load must not read a context another is rewriting.
	repairMu sync.Mutex

	// mu guards loaded and tick. Lock order: a context's mu before mu;
	// holding mu, a context's lock is only ever tried (TryLock), never
	// waited for.
	mu     sync.Mutex
	loaded map[string]*mctx
	tick   uint64
	// dropped counts the contexts dropped from loaded (evicted, forgotten),
	// so that a load that ran meanwhile knows it may be out of date.
	dropped uint64
	// cached is the sum of the loaded contexts' footprints (mctx.bytes).
	cached atomic.Int64
	// contended holds the contexts (by Key.id) whose write from this
	// replica's cache lost a race to another replica's since a check last
	// found them unchanged: a turn's ingest checks them before writing
	// (see acquireToWrite). Guarded by mu; nil until the first conflict.
	contended map[string]bool

	costMu    sync.Mutex
	costCache map[string]int

	embed *embedWorker
	// keeper keeps windows and focus telemetry (keep.go); nil when off.
	keeper *keeper
	// counters count conflicts, catch-ups and loads (StoreCounters).
	counters storeCounters
}

// Open opens the engine's store.
func Open(opts Options) (*Engine, error) {
	if opts.BlockTokens <= 0 {
		opts.BlockTokens = 32
	}
	if opts.Fanout < 2 {
		opts.Fanout = 8
	}
	if opts.GistTokens <= 0 {
		opts.GistTokens = 48
	}
	if opts.ShortTokens <= 0 {
		opts.ShortTokens = 12
	}
	if opts.Counter == nil {
		opts.Counter = tokens.Estimate{}
	}
	if opts.MinRelevance == 0 {
		opts.MinRelevance = DefaultMinRelevance
	}
	if opts.PinShare <= 0 || opts.PinShare > 1 {
		opts.PinShare = DefaultPinShare
	}
	if opts.KeepWindows == 0 {
		opts.KeepWindows = DefaultKeepWindows
	}
	if opts.MaxLoaded <= 0 {
		opts.MaxLoaded = 256
	}
	if opts.CacheBytes == 0 {
		opts.CacheBytes = DefaultCacheBytes
	}
	switch opts.Render {
	case "":
		opts.Render = RenderOutline
	case RenderChronological, RenderOutline:
	default:
		return nil, fmt.Errorf("memory: unknown render mode %q", opts.Render)
	}
	if opts.OutlineShare <= 0 || opts.OutlineShare > 1 {
		opts.OutlineShare = DefaultOutlineShare
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.StoreTimeout <= 0 {
		opts.StoreTimeout = 5 * time.Second
	}
	st := opts.Store
	if st == nil {
		kv, err := store.Open(opts.Dir, opts.Sync)
		if err != nil {
			return nil, err
		}
		st = kv
	}
	shared, _ := st.(store.Shared)
	e := &Engine{
		opts:   opts,
		st:     st,
		shared: shared,
		// Gists are sized with the estimate while they are built; the
		// ingest's tally counts their final costs with opts.Counter.
		gists:       gist.Extractive{Counter: tokens.Estimate{}, MaxTokens: opts.GistTokens, ShortTokens: opts.ShortTokens},
		log:         opts.Logger,
		policyPrint: opts.Policy.Fingerprint(),
		loaded:      map[string]*mctx{},
		costCache:   map[string]int{},
	}
	if err := e.recoverImports(); err != nil {
		st.Close()
		return nil, fmt.Errorf("memory: recover interrupted imports: %w", err)
	}
	if opts.Embedder != nil {
		e.startEmbedding()
	}
	if opts.KeepWindows > 0 {
		e.startKeeper()
	}
	return e, nil
}

// Close stops background work and closes the store.
func (e *Engine) Close() error {
	e.stopEmbedding()
	e.stopKeeper()
	return e.st.Close()
}

// Counter returns the engine's token counter.
func (e *Engine) Counter() tokens.Counter { return e.opts.Counter }

// Key names a MegaContext and, optionally, a thread hint inside it.
type Key struct {
	Tenant  string
	Context string
	// Thread separates conversations whose messages are identical (a chat
	// id header); empty lets the hash chain decide.
	Thread string
}

var tenantRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func (k Key) validate() error {
	if !tenantRE.MatchString(k.Tenant) {
		return fmt.Errorf("%w: tenant %q", ErrBadKey, k.Tenant)
	}
	if k.Context == "" || len(k.Context) > 256 || strings.ContainsAny(k.Context, "\x00\n\r") {
		return fmt.Errorf("%w: context id %q (want 1-256 bytes, no control characters)", ErrBadKey, k.Context)
	}
	if len(k.Thread) > 256 {
		return fmt.Errorf("%w: thread id longer than 256 bytes", ErrBadKey)
	}
	return nil
}

func (k Key) id() string { return k.Tenant + "\x00" + k.Context }

// get returns the loaded context, loading it from the store (or creating
// an empty one) as needed; fresh reports that it was just read from the
// store. The caller must lock the returned context. The store is read
// without holding the engine's lock, so that one slow load (a database
// round trip, a large context) does not hold up requests for others.
func (e *Engine) get(k Key, create bool) (c *mctx, fresh bool, err error) {
	if err := k.validate(); err != nil {
		return nil, false, err
	}
	for {
		e.mu.Lock()
		e.tick++
		if c, ok := e.loaded[k.id()]; ok {
			c.used = e.tick
			e.mu.Unlock()
			return c, false, nil
		}
		dropped := e.dropped
		e.mu.Unlock()
		c, found, err := e.load(k)
		if err != nil {
			return nil, false, err
		}
		if !found && !create {
			return nil, false, ErrNotFound
		}
		e.mu.Lock()
		e.tick++
		if other, ok := e.loaded[k.id()]; ok {
			// Loaded by another request meanwhile: one live copy only.
			other.used = e.tick
			e.mu.Unlock()
			return other, false, nil
		}
		if e.dropped != dropped {
			// A context was dropped while this one loaded: it may have been
			// this one, loaded, changed and dropped again by another
			// request, which would make this copy older than the store.
			e.mu.Unlock()
			continue
		}
		c.used = e.tick
		e.loaded[k.id()] = c
		e.cached.Add(c.bytes)
		e.trimLocked(c)
		e.mu.Unlock()
		return c, true, nil
	}
}

// acquire returns the live context of k, locked, and up to date with the
// store; the caller unlocks it. A context evicted or replaced between
// lookup and lock is looked up again. With a shared store, a context
// loaded earlier is first checked against the store's version and caught
// up with what other replicas wrote (refresh).
func (e *Engine) acquire(k Key, create bool) (*mctx, error) {
	c, _, err := e.acquireAs(k, create, true)
	return c, err
}

// acquireWriter is acquire for an operation that only writes what it was
// given after the cached state (a reply to a message this replica just
// stored): it skips the version check, since the write's guard refuses it
// if another replica wrote meanwhile (the operation then runs again on
// the stored context).
func (e *Engine) acquireWriter(k Key, create bool) (*mctx, error) {
	c, _, err := e.acquireAs(k, create, false)
	return c, err
}

// acquireToWrite is acquire for a turn's ingest, which writes what it
// reconciles from the cached context: with a shared store, a context
// loaded earlier is not checked first, unless another replica's write won
// a race for it since a check last found it unchanged (contended). The
// write's guard is the check, in the write's own round trip: it refuses
// the write when another replica wrote since the cache's version (the turn
// then runs again on the stored context, see retry), so a turn whose
// cache was current costs one round trip before forwarding instead of two.
// checked reports whether c is known to be current (just read, checked,
// or an embedded store); when it is not, the caller must check it itself
// (refresh) before using it without writing.
func (e *Engine) acquireToWrite(k Key, create bool) (c *mctx, checked bool, err error) {
	check := false
	if e.shared != nil {
		e.mu.Lock()
		check = e.contended[k.id()]
		e.mu.Unlock()
	}
	return e.acquireAs(k, create, check)
}

// acquireAs is acquire, checking a context loaded earlier against a shared
// store only when check is set; checked reports whether the context is
// known to be current.
func (e *Engine) acquireAs(k Key, create, check bool) (c *mctx, checked bool, err error) {
	for {
		c, fresh, err := e.get(k, create)
		if err != nil {
			return nil, false, err
		}
		c.mu.Lock()
		if c.stale {
			c.mu.Unlock()
			continue
		}
		if fresh || e.shared == nil || !check {
			return c, fresh || e.shared == nil, nil
		}
		ok, err := e.refresh(c)
		if err != nil {
			c.mu.Unlock()
			return nil, false, err
		}
		if ok {
			return c, true, nil
		}
		// Deleted or made again elsewhere, or not caught up: read it again.
		e.forget(k)
		c.stale = true
		c.mu.Unlock()
	}
}

// forget drops a context from memory so that it reloads from the store.
// The caller holds the context's lock.
func (e *Engine) forget(k Key) {
	e.mu.Lock()
	if c, ok := e.loaded[k.id()]; ok {
		delete(e.loaded, k.id())
		e.cached.Add(-c.bytes)
		e.dropped++
	}
	e.mu.Unlock()
}

// countCached counts text with the engine's counter, caching by text for
// texts that repeat every request (system prompts, headers).
func (e *Engine) countCached(text string) int {
	e.costMu.Lock()
	n, ok := e.costCache[text]
	e.costMu.Unlock()
	if ok {
		return n
	}
	n = e.opts.Counter.Count(text)
	e.costMu.Lock()
	if len(e.costCache) > maxCostCache {
		clear(e.costCache)
	}
	// A copy: text may alias a request buffer.
	e.costCache[strings.Clone(text)] = n
	e.costMu.Unlock()
	return n
}

// ContextInfo describes a stored MegaContext.
type ContextInfo struct {
	Tenant    string    `json:"tenant"`
	ID        string    `json:"id"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	Messages  int       `json:"messages"`
	Tokens    int       `json:"tokens"`
	DiskBytes int64     `json:"disk_bytes"`
}

// List returns the MegaContexts of a tenant, sorted by id.
func (e *Engine) List(tenant string) ([]ContextInfo, error) {
	if !tenantRE.MatchString(tenant) {
		return nil, fmt.Errorf("%w: tenant %q", ErrBadKey, tenant)
	}
	var out []ContextInfo
	prefix := headerPrefix(tenant)
	err := e.st.Scan(prefix, func(k, v string) bool {
		var rec ctxRecord
		if !decodeHeader(v, &rec) {
			// Listed with zero counts; loading the context rebuilds it.
			e.log.Error("stored context header unreadable", "tenant", tenant, "key", k)
		}
		info := rec.info(tenant)
		if id, err := url.QueryUnescape(k[len(prefix):]); err == nil {
			info.ID = id
		}
		out = append(out, info)
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// Delete removes a MegaContext and everything in it.
func (e *Engine) Delete(k Key) error {
	c, err := e.acquire(k, false)
	if err != nil {
		return err
	}
	defer c.mu.Unlock()
	// The keeper must not store telemetry of a deleted context afterwards.
	c.telMu.Lock()
	err = e.deleteContext(k)
	c.gone = true
	c.telMu.Unlock()
	e.forget(k)
	c.stale = true
	return err
}

// StoreBytes returns the size of the store (its file, or the database).
func (e *Engine) StoreBytes() int64 { return e.st.FileSize() }

// Ready reports whether the store can be reached (a shared database that
// is down fails the requests that need it with ErrUnavailable).
func (e *Engine) Ready(ctx context.Context) error {
	if e.shared == nil {
		return nil
	}
	return e.shared.Ping(ctx)
}

// Stats describes one MegaContext in detail.
type Stats struct {
	ContextInfo
	// Blocks is the number of level-0 blocks; NodesPerLevel counts every level.
	Blocks        int   `json:"blocks"`
	NodesPerLevel []int `json:"nodes_per_level"`
	// Threads counts conversation leaves: messages nobody continued that are
	// not superseded.
	Threads    int `json:"threads"`
	Superseded int `json:"superseded_messages"`
	Partial    int `json:"partial_messages"`
	// Damaged counts messages that could not be read back from the store.
	Damaged int `json:"damaged_messages,omitempty"`
	// Embedded counts blocks with a vector (semantic lens).
	Embedded int `json:"embedded_blocks"`
}

// Stats returns the statistics of a MegaContext.
func (e *Engine) Stats(k Key) (Stats, error) {
	c, err := e.acquire(k, false)
	if err != nil {
		return Stats{}, err
	}
	defer c.mu.Unlock()
	st := Stats{ContextInfo: c.rec.info(k.Tenant), Blocks: c.tree.Len(), Embedded: len(c.vecs)}
	st.ID = k.Context
	for l := 0; l < c.tree.Height(); l++ {
		st.NodesPerLevel = append(st.NodesPerLevel, c.tree.LevelLen(l))
	}
	for _, m := range c.msgs {
		switch {
		case m.Superseded:
			st.Superseded++
		case len(c.kids[m.Seq]) == 0 && !isLeadingRole(m.Role):
			st.Threads++
		}
		if m.Partial {
			st.Partial++
		}
		if m.Damaged {
			st.Damaged++
		}
	}
	return st, nil
}
