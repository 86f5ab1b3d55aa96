package native

import (
	"context"
	"fmt"
	"sync"
	"unsafe"

	"github.com/megacontext/megacontext/memory/qvec"
)

// Pooling selects how an Embedder turns token vectors into one vector.
type Pooling int

// Pooling kinds. The zero value is mean pooling.
const (
	// PoolingMean averages the token vectors (the default).
	PoolingMean Pooling = iota
	// PoolingCLS takes the first token's vector (BERT-style models).
	PoolingCLS
	// PoolingLast takes the last token's vector.
	PoolingLast
	// PoolingModel uses the pooling the GGUF file declares.
	PoolingModel
)

// EmbedderOptions configures LoadEmbedder. Zero values pick the defaults.
type EmbedderOptions struct {
	// BatchTokens is the most tokens one decode handles (n_ctx = n_batch =
	// n_ubatch); default 512. Attention spans the whole unified batch, so
	// much larger batches are slower per token.
	BatchTokens int
	// MaxTokens truncates each text to this many tokens; default and upper
	// bound: min(BatchTokens, the model's training context).
	MaxTokens int
	// MaxSequences is the most texts one decode handles (n_seq_max);
	// default 64, at most llama_max_parallel_sequences().
	MaxSequences int
	// Threads is the number of CPU threads; default DefaultThreads().
	Threads int
	// Pooling selects the pooling; default mean.
	Pooling Pooling
	// CPUOnly keeps every layer on the CPU even when a GPU backend is loaded.
	CPUOnly bool
}

// Embedder computes L2-normalized sentence embeddings with a GGUF model.
// Its methods are safe for concurrent use (decodes are serialized).
type Embedder struct {
	lib       *Library
	mu        sync.Mutex
	model     uintptr
	vocab     uintptr
	ctx       uintptr
	batch     batch
	dim       int
	maxTokens int
	maxBatch  int
	maxSeqs   int
	pooling   int32
}

// LoadEmbedder loads a GGUF model for embeddings: mean pooling by default,
// a unified KV cache (several texts per decode give the same vectors as
// one at a time) and float32 output normalized to unit length.
func (l *Library) LoadEmbedder(path string, opts EmbedderOptions) (*Embedder, error) {
	if err := l.initBackends(); err != nil {
		return nil, fmt.Errorf("load embedder: %w", err)
	}
	mp := defaultModelParams()
	if opts.CPUOnly {
		mp.NGPULayers = 0
	}
	m, err := l.loadModel(path, mp)
	if err != nil {
		return nil, fmt.Errorf("load embedder: %w", err)
	}
	e := &Embedder{lib: l, model: m, vocab: l.fn.modelGetVocab(m), dim: int(l.fn.modelNEmbd(m))}
	fail := func(err error) (*Embedder, error) {
		e.Close()
		return nil, fmt.Errorf("load embedder %s: %w", path, err)
	}
	if e.dim <= 0 {
		return fail(fmt.Errorf("model has no embedding dimension"))
	}
	e.maxBatch = opts.BatchTokens
	if e.maxBatch <= 0 {
		e.maxBatch = 512
	}
	e.maxSeqs = opts.MaxSequences
	if e.maxSeqs <= 0 {
		e.maxSeqs = 64
	}
	if limit := int(l.fn.maxParallelSeqs()); e.maxSeqs > limit {
		e.maxSeqs = limit
	}
	e.maxTokens = e.maxBatch
	if train := int(l.fn.modelNCtxTrain(m)); train > 0 && train < e.maxTokens {
		e.maxTokens = train
	}
	if opts.MaxTokens > 0 && opts.MaxTokens < e.maxTokens {
		e.maxTokens = opts.MaxTokens
	}
	threads := opts.Threads
	if threads <= 0 {
		threads = DefaultThreads()
	}
	cp := defaultContextParams()
	cp.NCtx, cp.NBatch, cp.NUbatch = uint32(e.maxBatch), uint32(e.maxBatch), uint32(e.maxBatch)
	cp.NSeqMax = uint32(e.maxSeqs)
	cp.NThreads, cp.NThreadsBatch = int32(threads), int32(threads)
	cp.Embeddings = true
	cp.KVUnified = true
	switch opts.Pooling {
	case PoolingMean:
		cp.PoolingType = poolingMean
	case PoolingCLS:
		cp.PoolingType = poolingCLS
	case PoolingLast:
		cp.PoolingType = poolingLast
	case PoolingModel:
		cp.PoolingType = poolingUnspecified
	default:
		return fail(fmt.Errorf("unknown pooling %d", opts.Pooling))
	}
	clearRecentErrors()
	e.ctx = l.fn.initFromModel(m, cp)
	if e.ctx == 0 {
		return fail(fmt.Errorf("llama_init_from_model failed%s", recentErrors()))
	}
	e.pooling = l.fn.poolingType(e.ctx)
	if e.pooling == poolingNone {
		return fail(fmt.Errorf("model declares no pooling; choose PoolingMean, PoolingCLS or PoolingLast"))
	}
	l.fn.batchInit(&e.batch, int32(e.maxBatch), 0, 1)
	if e.batch.Token == nil {
		return fail(fmt.Errorf("llama_batch_init failed"))
	}
	return e, nil
}

// Dim returns the number of dimensions of the vectors.
func (e *Embedder) Dim() int { return e.dim }

// MaxTokens returns the most tokens of one text; longer texts are truncated.
func (e *Embedder) MaxTokens() int { return e.maxTokens }

// Embed returns one unit-length vector per text. Texts are tokenized with
// the model's special tokens (BOS, CLS/SEP), truncated to MaxTokens and
// decoded several at a time. A text with no tokens gets a zero vector.
func (e *Embedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	toks := make([][]int32, len(texts))
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ctx == 0 {
		return nil, ErrClosed
	}
	for i, text := range texts {
		t, err := e.lib.tokenize(e.vocab, text, true, false)
		if err != nil {
			return nil, fmt.Errorf("embed text %d: %w", i, err)
		}
		if len(t) > e.maxTokens {
			t = t[:e.maxTokens]
		}
		toks[i] = t
	}
	out := make([][]float32, len(texts))
	for start := 0; start < len(texts); {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// Pack as many texts as fit in one decode.
		end, n := start, 0
		for end < len(texts) && end-start < e.maxSeqs && n+len(toks[end]) <= e.maxBatch {
			n += len(toks[end])
			end++
		}
		if err := e.decode(toks[start:end], out[start:end]); err != nil {
			return nil, err
		}
		start = end
	}
	return out, nil
}

// EmbedOne returns the vector of one text.
func (e *Embedder) EmbedOne(ctx context.Context, text string) ([]float32, error) {
	v, err := e.Embed(ctx, []string{text})
	if err != nil {
		return nil, err
	}
	return v[0], nil
}

// decode runs one batch of sequences and stores their pooled vectors.
func (e *Embedder) decode(seqs [][]int32, out [][]float32) error {
	f := &e.lib.fn
	tok := unsafe.Slice(e.batch.Token, e.maxBatch)
	pos := unsafe.Slice(e.batch.Pos, e.maxBatch)
	nSeq := unsafe.Slice(e.batch.NSeqID, e.maxBatch)
	seqID := unsafe.Slice(e.batch.SeqID, e.maxBatch)
	logits := unsafe.Slice(e.batch.Logits, e.maxBatch)
	n := 0
	for s, t := range seqs {
		for i, id := range t {
			tok[n], pos[n], nSeq[n], logits[n] = id, int32(i), 1, 1
			*seqID[n] = int32(s)
			n++
		}
	}
	if n == 0 {
		for s := range seqs {
			out[s] = make([]float32, e.dim)
		}
		return nil
	}
	e.batch.NTokens = int32(n)
	f.memoryClear(f.getMemory(e.ctx), true)
	clearRecentErrors()
	if rc := f.decode(e.ctx, e.batch); rc != 0 {
		return fmt.Errorf("native: embed: llama_decode returned %d%s", rc, recentErrors())
	}
	for s, t := range seqs {
		v := make([]float32, e.dim)
		out[s] = v
		if len(t) == 0 {
			continue
		}
		p := f.getEmbeddingsSeq(e.ctx, int32(s))
		if p == nil {
			return fmt.Errorf("native: embed: no pooled embedding for sequence %d", s)
		}
		copy(v, unsafe.Slice(p, e.dim))
		qvec.Normalize(v)
	}
	return nil
}

// Close frees the model and its context. It is safe to call more than once.
func (e *Embedder) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	f := &e.lib.fn
	if e.batch.Token != nil {
		f.batchFree(e.batch)
		e.batch = batch{}
	}
	if e.ctx != 0 {
		f.free(e.ctx)
		e.ctx = 0
	}
	if e.model != 0 {
		f.modelFree(e.model)
		e.model = 0
	}
	return nil
}
