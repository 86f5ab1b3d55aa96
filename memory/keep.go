package memory

import (
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/megacontext/megacontext/memory/focus"
)

// The keeper: a background worker that takes each live request's window
// after it was sent (KeepWindow), explains it (explain.go), keeps the last
// Options.KeepWindows of each context for inspection, and updates the
// focus telemetry of the nodes it shows (telemetry.go). The request path
// only hands the window over: a channel send.

// DefaultKeepWindows is the default Options.KeepWindows (memory.keep_windows).
const DefaultKeepWindows = 20

// keeperQueue bounds the windows waiting for the keeper; a full queue drops
// windows (counted in FocusTotals.Dropped) rather than slow a request.
const keeperQueue = 1024

// focusFlushEvery is how often the keeper stores changed telemetry.
const focusFlushEvery = 2 * time.Second

// WindowMeta is what the proxy knows of a window that the engine does not:
// the budget and tokens as reported to the client, and the upstream's answer.
type WindowMeta struct {
	// Budget and Tokens are X-MegaContext-Budget-Tokens and -Window-Tokens.
	Budget int
	Tokens int
	// Status is the upstream's HTTP status.
	Status int
}

// keptWindow is a window kept for inspection.
type keptWindow struct {
	// at is when it was kept; meta what the proxy reported.
	at   time.Time
	meta WindowMeta
	// w holds the window's figures, explained entries and omitted matches
	// (its memory text is dropped: views render it again for their viewer).
	w Window
	// res, tail and question are what a view renders from (whyInput).
	res      focus.Result
	tail     []int64
	question string
	// swap is the share of the window's nodes that were not in the
	// previous window, or left it.
	swap float64
}

// keeper is the background worker's state.
type keeper struct {
	jobs chan keepJob
	done chan struct{}
	// stop closes jobs once (Close may be called twice).
	stop sync.Once
	// totals are the aggregates /metrics exports.
	windows, dropped, expansions, swaps atomic.Int64
	// swapMilli is the last window's swap rate, in thousandths.
	swapMilli atomic.Int64
	// dirty are the contexts with telemetry to store (the worker's own).
	dirty map[*mctx]bool
}

// keepJob is a window to keep, or (barrier set) a request to report when
// every window before it was processed and stored.
type keepJob struct {
	w       *Window
	meta    WindowMeta
	at      time.Time
	barrier chan struct{}
}

func (e *Engine) startKeeper() {
	k := &keeper{jobs: make(chan keepJob, keeperQueue), done: make(chan struct{}), dirty: map[*mctx]bool{}}
	e.keeper = k
	go func() {
		defer close(k.done)
		tick := time.NewTicker(focusFlushEvery)
		defer tick.Stop()
		for {
			select {
			case j, ok := <-k.jobs:
				if !ok {
					e.flushFocus()
					return
				}
				if j.barrier != nil {
					e.flushFocus()
					close(j.barrier)
					continue
				}
				e.keepOne(j)
			case <-tick.C:
				e.flushFocus()
			}
		}
	}()
}

// stopKeeper processes what is queued, stores the telemetry and stops.
func (e *Engine) stopKeeper() {
	if e.keeper == nil {
		return
	}
	e.keeper.stop.Do(func() { close(e.keeper.jobs) })
	<-e.keeper.done
}

// KeepWindow hands a live request's window, once sent, to the keeper: it
// is explained, kept for inspection (Windows) and counted in the focus
// telemetry, off the request path. A full queue drops it.
func (e *Engine) KeepWindow(w *Window, meta WindowMeta) {
	if e.keeper == nil || w == nil || w.why == nil {
		return
	}
	select {
	case e.keeper.jobs <- keepJob{w: w, meta: meta, at: e.opts.Now()}:
	default:
		e.keeper.dropped.Add(1)
	}
}

// SettleFocus waits until every window handed to KeepWindow before it is
// kept and the telemetry stored (tests, and the admin API's
// read-your-writes).
func (e *Engine) SettleFocus() {
	if e.keeper == nil {
		return
	}
	done := make(chan struct{})
	defer func() { recover() }() // the keeper stopped (Close): nothing left to wait for
	e.keeper.jobs <- keepJob{barrier: done}
	<-done
}

// keepOne explains a window, keeps it and counts it in the telemetry. It
// takes only the context's telMu, never the mu requests hold: reading what
// the window captured when it was assembled (whyInput) is enough.
func (e *Engine) keepOne(j keepJob) {
	x := j.w.why
	c := x.c
	// The omitted matches now, while the scores are at hand; the terms
	// when the window is viewed (Windows).
	e.omitted(j.w)
	c.telMu.Lock()
	defer c.telMu.Unlock()
	if c.gone {
		return // deleted since
	}
	kw := &keptWindow{at: j.at, meta: j.meta, w: *j.w, res: x.res, tail: x.tail, question: x.question}
	kw.w.Memory = ""
	kw.w.why = &whyInput{query: x.query, refocus: x.refocus, semantic: x.semantic, scopes: x.scopes, pre: x.pre}
	for _, m := range x.mounts {
		// Not the mount itself: a view locks it anew (Windows).
		kw.w.why.mounts = append(kw.w.why.mounts, mountPart{name: m.name, entries: m.entries})
	}
	kw.swap = e.observeFocus(c, kw, x.levels, questionHash(x.question))
	c.kept = append(c.kept, kw)
	if n := len(c.kept) - e.opts.KeepWindows; n > 0 {
		clear(c.kept[:n])
		c.kept = c.kept[n:]
	}
	e.keeper.windows.Add(1)
	e.keeper.swapMilli.Store(int64(kw.swap * 1000))
	e.keeper.dirty[c] = true
	c.telBytes.Store(int64(len(c.focus))*focusStatBytes + int64(len(c.focusBase))*focusBaseBytes + keptBytes(c.kept))
}

// questionHash identifies a question in the telemetry (NodeFocus.LastQuestion,
// stored): FNV-1a, stable across processes.
func questionHash(q string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(q))
	return h.Sum64()
}

// keptBytes estimates the memory kept windows hold (footprint).
func keptBytes(kept []*keptWindow) int64 {
	var b int64
	for _, kw := range kept {
		b += 256 + int64(len(kw.res.Entries)+len(kw.res.Outline))*96 + int64(len(kw.w.Entries))*160 + int64(len(kw.w.OmittedMatches))*96 + int64(len(kw.question))
		if kw.w.why != nil {
			for _, m := range kw.w.why.mounts {
				b += int64(len(m.entries)) * 96
			}
		}
	}
	return b
}
