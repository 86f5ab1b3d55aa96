package memory

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/megacontext/megacontext/memory/qvec"
	"github.com/megacontext/megacontext/memory/store"
)

// Embedder computes L2-normalized embeddings of texts (*native.Embedder
// is one). The engine calls it from one goroutine at a time.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
	Dim() int
}

// Semantic lens parameters, tuned with `megacontext eval`.
const (
	// embedBatch is how many blocks one background call embeds: small, so
	// that a question waits little for the embedder.
	embedBatch = 8
	// queryEmbedTimeout bounds embedding the question on the request path;
	// past it the window is assembled lexically.
	queryEmbedTimeout = 100 * time.Millisecond
	// semanticMin is the cosine below which similarity says nothing.
	semanticMin = 0.3
	// semanticTop is how many most similar blocks get a semantic score.
	semanticTop = 16
	// semanticScale puts a perfect match on the scale of a strong BM25 hit.
	semanticScale = 8.0
)

// embedWorker embeds new blocks in the background, never on the request
// path: each ingest pokes it with the context, and it embeds every block
// the context lacks a vector for.
type embedWorker struct {
	jobs chan Key
	// busy serializes calls to the Embedder (a one-slot semaphore that a
	// question can give up waiting on).
	busy   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

func (e *Engine) startEmbedding() {
	ctx, cancel := context.WithCancel(context.Background())
	w := &embedWorker{jobs: make(chan Key, 1024), busy: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	e.embed = w
	go func() {
		defer close(w.done)
		for {
			select {
			case <-ctx.Done():
				return
			case k := <-w.jobs:
				if err := e.embedPending(ctx, k); err != nil && ctx.Err() == nil {
					e.log.Warn("embedding blocks failed; the lens stays lexical for them", "context", k.Context, "err", err)
				}
			}
		}
	}()
}

func (e *Engine) stopEmbedding() {
	if e.embed == nil {
		return
	}
	e.embed.cancel()
	<-e.embed.done
}

// pokeEmbedder schedules embedding of a context's new blocks; a full queue
// drops the poke (the next one embeds everything still missing).
func (e *Engine) pokeEmbedder(k Key) {
	if e.embed == nil {
		return
	}
	select {
	case e.embed.jobs <- Key{Tenant: k.Tenant, Context: k.Context}:
	default:
	}
}

// WaitEmbedded blocks until every block of the context has a vector or ctx
// ends (tests and evaluation use it; requests never wait).
func (e *Engine) WaitEmbedded(ctx context.Context, k Key) error {
	if e.embed == nil {
		return nil
	}
	for {
		c, err := e.acquire(k, false)
		if err != nil {
			return err
		}
		missing := len(c.vecs) < c.tree.Len()
		c.mu.Unlock()
		if !missing {
			return nil
		}
		e.pokeEmbedder(k)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// embedLease is how long a replica's claim on embedding a context lasts
// without being renewed (each batch renews it); a replica that dies
// holding it delays that context's embedding by at most this.
const embedLease = 2 * time.Minute

// embedPending embeds, batch by batch, the blocks of k that have no
// vector. With a shared store, one replica at a time embeds a context (a
// claim on the job, renewed each batch); the others read its vectors from
// the store.
func (e *Engine) embedPending(ctx context.Context, k Key) error {
	var release func()
	defer func() {
		if release != nil {
			release()
		}
	}()
	for {
		if e.shared != nil {
			cctx, cancel := e.storeCtx()
			rel, ok, err := e.shared.Claim(cctx, k.Tenant, k.Context, "embed", embedLease)
			cancel()
			if err != nil || !ok {
				return err // another replica embeds it
			}
			release = rel
		}
		c, err := e.acquire(k, false)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil // deleted meanwhile
			}
			return err
		}
		from := len(c.vecs)
		to := min(c.tree.Len(), from+embedBatch)
		texts := make([]string, 0, to-from)
		for b := from; b < to; b++ {
			texts = append(texts, c.tree.Block(b).Text)
		}
		c.mu.Unlock()
		if len(texts) == 0 {
			return nil
		}
		vecs, err := e.embedWith(ctx, texts)
		if err != nil {
			return err
		}
		kvs := make([]store.KV, 0, len(vecs))
		q := make([]qvec.Vector, len(vecs))
		for i, v := range vecs {
			q[i] = qvec.Quantize(v)
			kvs = append(kvs, store.KV{Key: vecKey(k, from+i), Value: string(q[i].Encode())})
		}
		c.mu.Lock()
		if c.stale || len(c.vecs) != from {
			c.mu.Unlock()
			continue // reloaded or raced: start over from the new state
		}
		err = e.put(c, kvs...)
		if err == nil {
			c.vecs = append(c.vecs, q...)
			e.account(c)
		} else if errors.Is(err, store.ErrConflict) {
			e.forget(k)
			c.stale = true
		}
		c.mu.Unlock()
		if err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
}

// loadVectors restores a context's stored vectors (contiguous from block 0).
func (e *Engine) loadVectors(c *mctx, src reader) error {
	err := src.scan(recordPrefix(kindVector, c.key), func(key, val string) bool {
		v, err := qvec.Decode([]byte(val))
		if err != nil {
			// Vectors are contiguous from block 0: the worker embeds again
			// from the first unreadable one.
			e.log.Error("stored vector unreadable; embedding again from it", "tenant", c.key.Tenant, "context", c.key.Context, "key", key, "err", err)
			return false
		}
		c.vecs = append(c.vecs, v)
		return true
	})
	if len(c.vecs) > c.tree.Len() {
		c.vecs = c.vecs[:c.tree.Len()]
	}
	return err
}

// semanticScores embeds the question (bounded by queryEmbedTimeout) and
// returns a score for the blocks most similar to it. It scans the
// context's int8 vectors: 1M tokens of history are about 31K vectors.
func (e *Engine) semanticScores(c *mctx, question string, inTail func(int) bool) map[int]float64 {
	if e.opts.Embedder == nil || len(c.vecs) == 0 || question == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), queryEmbedTimeout)
	defer cancel()
	vs, err := e.embedWith(ctx, []string{question})
	if err != nil || len(vs) != 1 {
		return nil
	}
	q := qvec.Quantize(vs[0])
	// The semanticTop most similar blocks, kept sorted (most similar, then
	// newest, first) while scanning: a weak embedder finds most blocks above
	// semanticMin, and sorting them all would cost more than the scan.
	type hit struct {
		b   int
		cos float32
	}
	better := func(x, y hit) bool { return x.cos > y.cos || (x.cos == y.cos && x.b > y.b) }
	hits := make([]hit, 0, semanticTop)
	for b, v := range c.vecs {
		if len(v.Data) != len(q.Data) || inTail(b) {
			continue
		}
		cos := qvec.Cosine(q, v)
		if cos <= semanticMin {
			continue
		}
		h := hit{b, cos}
		if len(hits) == semanticTop && !better(h, hits[semanticTop-1]) {
			continue
		}
		i := sort.Search(len(hits), func(i int) bool { return better(h, hits[i]) })
		if len(hits) < semanticTop {
			hits = append(hits, hit{})
		}
		copy(hits[i+1:], hits[i:])
		hits[i] = h
	}
	out := map[int]float64{}
	for _, h := range hits {
		out[h.b] = semanticScale * float64(h.cos-semanticMin) / (1 - semanticMin)
	}
	return out
}

// embedWith calls the Embedder when it is free, or gives up with ctx.
func (e *Engine) embedWith(ctx context.Context, texts []string) ([][]float32, error) {
	select {
	case e.embed.busy <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-e.embed.busy }()
	vs, err := e.opts.Embedder.Embed(ctx, texts)
	if err == nil && len(vs) != len(texts) {
		err = fmt.Errorf("embedder returned %d vectors for %d texts", len(vs), len(texts))
	}
	return vs, err
}
