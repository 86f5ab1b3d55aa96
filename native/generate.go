package native

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"unicode/utf8"
	"unsafe"
)

// ContextOptions configures Model.NewContext. Zero values pick defaults.
type ContextOptions struct {
	// ContextSize is the most tokens (prompt and output) the context holds;
	// default min(4096, the model's training context).
	ContextSize int
	// BatchSize is the most prompt tokens one decode handles; default 512.
	BatchSize int
	// Threads is the number of CPU threads; default DefaultThreads().
	Threads int
}

// Context is one generation session over a Model: a KV cache that keeps
// the tokens of the previous request so that a prompt sharing a prefix
// with it is only evaluated from where it differs. Its methods are safe for
// concurrent use (requests are serialized).
type Context struct {
	model *Model

	mu     sync.Mutex
	ctx    uintptr
	batch  batch
	nCtx   int
	nBatch int
	cached []int32 // tokens whose keys and values are in the cache
}

// NewContext creates a generation context for m.
func (m *Model) NewContext(opts ContextOptions) (*Context, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.model == 0 {
		return nil, ErrClosed
	}
	l := m.lib
	c := &Context{model: m, nCtx: opts.ContextSize, nBatch: opts.BatchSize}
	if c.nCtx <= 0 {
		c.nCtx = 4096
		if m.nCtxTrn > 0 && m.nCtxTrn < c.nCtx {
			c.nCtx = m.nCtxTrn
		}
	}
	if c.nBatch <= 0 {
		c.nBatch = 512
	}
	c.nBatch = min(c.nBatch, c.nCtx)
	threads := opts.Threads
	if threads <= 0 {
		threads = DefaultThreads()
	}
	cp := defaultContextParams()
	cp.NCtx, cp.NBatch, cp.NUbatch = uint32(c.nCtx), uint32(c.nBatch), uint32(c.nBatch)
	cp.NThreads, cp.NThreadsBatch = int32(threads), int32(threads)
	clearRecentErrors()
	c.ctx = l.fn.initFromModel(m.model, cp)
	if c.ctx == 0 {
		return nil, fmt.Errorf("native: new context: llama_init_from_model failed%s", recentErrors())
	}
	c.nCtx = int(l.fn.nCtx(c.ctx))
	l.fn.batchInit(&c.batch, int32(c.nBatch), 0, 1)
	if c.batch.Token == nil {
		l.fn.free(c.ctx)
		return nil, fmt.Errorf("native: new context: llama_batch_init failed")
	}
	return c, nil
}

// Size returns the context size in tokens.
func (c *Context) Size() int { return c.nCtx }

// Model returns the context's model.
func (c *Context) Model() *Model { return c.model }

// Close frees the context. It is safe to call more than once.
func (c *Context) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := &c.model.lib.fn
	if c.batch.Token != nil {
		f.batchFree(c.batch)
		c.batch = batch{}
	}
	if c.ctx != 0 {
		f.free(c.ctx)
		c.ctx = 0
	}
	c.cached = nil
	return nil
}

// GenerateOptions configures one generation.
type GenerateOptions struct {
	// MaxTokens bounds the generated tokens; 0: until an end-of-generation
	// token, a stop string or a full context.
	MaxTokens int
	// Temperature <= 0 selects greedy decoding; otherwise tokens are sampled.
	Temperature float32
	// TopK keeps the K most likely tokens before sampling; <= 0: off.
	TopK int
	// TopP keeps the smallest set of tokens whose probability reaches P;
	// 0 or >= 1: off.
	TopP float32
	// MinP drops tokens less likely than MinP times the most likely; 0: off.
	MinP float32
	// Seed seeds the sampler; negative: a random seed.
	Seed int64
	// Stop ends generation at the first of these strings (not included in
	// the output).
	Stop []string
	// OnText, when set, receives the output as it is generated. Text that
	// might begin a stop string is held back until it cannot. An error
	// stops generation and is returned.
	OnText func(text string) error
}

// Finish reasons of a Result.
const (
	FinishStop   = "stop"   // end-of-generation token or stop string
	FinishLength = "length" // MaxTokens reached or context full
)

// Result describes one generation.
type Result struct {
	// Text is the generated text, without the stop string.
	Text string
	// PromptTokens is the number of prompt tokens.
	PromptTokens int
	// CachedTokens is how many prompt tokens were reused from the cache of
	// the previous request instead of evaluated.
	CachedTokens int
	// CompletionTokens is the number of generated tokens.
	CompletionTokens int
	// FinishReason is FinishStop or FinishLength.
	FinishReason string
}

// ContextExceededError is returned when a prompt does not fit the context.
type ContextExceededError struct {
	PromptTokens int
	ContextSize  int
}

// Error implements error with llama.cpp server's message.
func (e *ContextExceededError) Error() string {
	return fmt.Sprintf("request (%d tokens) exceeds the available context size (%d tokens), try increasing it",
		e.PromptTokens, e.ContextSize)
}

// Generate tokenizes prompt (with the model's BOS and parsing special
// tokens, as llama.cpp's server does) and generates a continuation.
func (c *Context) Generate(ctx context.Context, prompt string, opts GenerateOptions) (Result, error) {
	toks, err := c.model.Tokenize(prompt, true, true)
	if err != nil {
		return Result{}, fmt.Errorf("generate: %w", err)
	}
	return c.GenerateTokens(ctx, toks, opts)
}

// GenerateTokens generates a continuation of prompt tokens.
func (c *Context) GenerateTokens(ctx context.Context, prompt []int32, opts GenerateOptions) (res Result, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.model.mu.RLock()
	defer c.model.mu.RUnlock()
	if c.ctx == 0 || c.model.model == 0 {
		return Result{}, ErrClosed
	}
	res.PromptTokens = len(prompt)
	if len(prompt) == 0 {
		return res, fmt.Errorf("generate: empty prompt")
	}
	if len(prompt) >= c.nCtx {
		return res, &ContextExceededError{PromptTokens: len(prompt), ContextSize: c.nCtx}
	}
	f := &c.model.lib.fn
	vocab := c.model.vocab
	defer func() {
		if err != nil {
			// The cache may hold a partial decode: start afresh next time.
			f.memoryClear(f.getMemory(c.ctx), true)
			c.cached = nil
		}
	}()

	// Reuse the common prefix; at least the last prompt token is evaluated
	// again for its logits.
	reuse := 0
	for reuse < len(c.cached) && reuse < len(prompt) && c.cached[reuse] == prompt[reuse] {
		reuse++
	}
	reuse = min(reuse, len(prompt)-1)
	mem := f.getMemory(c.ctx)
	if !f.memorySeqRm(mem, 0, int32(reuse), -1) {
		f.memoryClear(mem, true)
		reuse = 0
	}
	c.cached = c.cached[:reuse]
	res.CachedTokens = reuse
	for start := reuse; start < len(prompt); start += c.nBatch {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		end := min(start+c.nBatch, len(prompt))
		if err := c.decode(prompt[start:end], start, end == len(prompt)); err != nil {
			return res, err
		}
	}

	smpl := c.newSampler(opts)
	defer f.samplerFree(smpl)

	var text []byte
	emitted := 0
	emit := func(upTo int) error {
		if upTo <= emitted {
			return nil
		}
		s := string(text[emitted:upTo])
		emitted = upTo
		if opts.OnText != nil {
			return opts.OnText(s)
		}
		return nil
	}
	res.FinishReason = FinishLength
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		tok := f.samplerSample(smpl, c.ctx, -1)
		if f.vocabIsEOG(vocab, tok) {
			res.FinishReason = FinishStop
			break
		}
		res.CompletionTokens++
		text = c.model.lib.piece(vocab, tok, text)
		if cut, ok := findStop(text, emitted, opts.Stop); ok {
			text = text[:cut]
			res.FinishReason = FinishStop
			break
		}
		if err := emit(safeEnd(text, emitted, opts.Stop)); err != nil {
			return res, err
		}
		if opts.MaxTokens > 0 && res.CompletionTokens >= opts.MaxTokens {
			break
		}
		if len(c.cached) >= c.nCtx {
			break
		}
		if err := c.decode([]int32{tok}, len(c.cached), true); err != nil {
			return res, err
		}
	}
	if err := emit(len(text)); err != nil {
		return res, err
	}
	res.Text = string(text)
	return res, nil
}

// decode evaluates toks at positions pos.. and appends them to the cache;
// only the last token's logits are computed when logitsLast is set.
func (c *Context) decode(toks []int32, pos int, logitsLast bool) error {
	f := &c.model.lib.fn
	tok := unsafe.Slice(c.batch.Token, c.nBatch)
	posArr := unsafe.Slice(c.batch.Pos, c.nBatch)
	nSeq := unsafe.Slice(c.batch.NSeqID, c.nBatch)
	seqID := unsafe.Slice(c.batch.SeqID, c.nBatch)
	logits := unsafe.Slice(c.batch.Logits, c.nBatch)
	for i, t := range toks {
		tok[i], posArr[i], nSeq[i], logits[i] = t, int32(pos+i), 1, 0
		*seqID[i] = 0
	}
	if logitsLast {
		logits[len(toks)-1] = 1
	}
	c.batch.NTokens = int32(len(toks))
	clearRecentErrors()
	if rc := f.decode(c.ctx, c.batch); rc != 0 {
		return fmt.Errorf("native: generate: llama_decode returned %d%s", rc, recentErrors())
	}
	c.cached = append(c.cached, toks...)
	return nil
}

// newSampler builds llama.cpp's sampler chain for opts.
func (c *Context) newSampler(opts GenerateOptions) uintptr {
	f := &c.model.lib.fn
	chain := f.samplerChainInit(true)
	if opts.Temperature <= 0 {
		f.samplerChainAdd(chain, f.samplerInitGreedy())
		return chain
	}
	if opts.TopK > 0 {
		f.samplerChainAdd(chain, f.samplerInitTopK(int32(opts.TopK)))
	}
	if opts.TopP > 0 && opts.TopP < 1 {
		f.samplerChainAdd(chain, f.samplerInitTopP(opts.TopP, 1))
	}
	if opts.MinP > 0 {
		f.samplerChainAdd(chain, f.samplerInitMinP(opts.MinP, 1))
	}
	f.samplerChainAdd(chain, f.samplerInitTemp(opts.Temperature))
	seed := uint32(0xFFFFFFFF) // LLAMA_DEFAULT_SEED: random
	if opts.Seed >= 0 {
		seed = uint32(opts.Seed)
	}
	f.samplerChainAdd(chain, f.samplerInitDist(seed))
	return chain
}

// findStop returns where the first stop string in text[from:] begins.
func findStop(text []byte, from int, stops []string) (int, bool) {
	cut, found := len(text), false
	for _, s := range stops {
		if s == "" {
			continue
		}
		if i := bytes.Index(text[from:], []byte(s)); i >= 0 && from+i < cut {
			cut, found = from+i, true
		}
	}
	return cut, found
}

// safeEnd returns how much of text can be emitted: it holds back an
// incomplete UTF-8 sequence at the end and any suffix that begins a stop
// string.
func safeEnd(text []byte, from int, stops []string) int {
	end := len(text)
	// Hold back a trailing incomplete rune (tokens may split characters).
	for back := 1; back <= utf8.UTFMax && back <= end-from; back++ {
		b := text[end-back]
		if b < utf8.RuneSelf {
			break
		}
		if utf8.RuneStart(b) {
			if !utf8.FullRune(text[end-back:]) {
				end -= back
			}
			break
		}
	}
	hold := end
	for _, s := range stops {
		for k := min(len(s)-1, end-from); k > 0; k-- {
			if bytes.HasSuffix(text[:end], []byte(s[:k])) {
				hold = min(hold, end-k)
				break
			}
		}
	}
	return hold
}
