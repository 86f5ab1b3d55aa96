package proxy

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/megacontext/megacontext/proxy/upstream"
	"github.com/megacontext/megacontext/tokens"
)

// UpstreamCounter counts tokens exactly with the upstream model's own
// tokenizer: in-process, from the vocabulary of the GGUF file llama.cpp's
// /props names (model_path), when this process can read it and LoadVocab
// is set (no round trip at all); else with the upstream's /tokenize (one
// request per batch on llama.cpp); else, or when that does not answer in
// time, with the conservative estimate.
type UpstreamCounter struct {
	// Client is the upstream; its last discovery names the model file.
	Client *upstream.Client
	// Timeout bounds one batch of /tokenize requests.
	Timeout time.Duration
	// Logger receives the choice of tokenizer and failures; nil discards.
	Logger *slog.Logger
	// LoadVocab loads the vocabulary of a GGUF file as a tokenizer (the
	// native layer's vocab-only load). nil never counts in-process.
	LoadVocab func(path string) (tokens.Counter, error)

	// warned is set once the upstream tokenizer's failure was logged.
	warned atomic.Bool
	// mu guards localPath and local.
	mu sync.Mutex
	// localPath is the model file last tried; local its tokenizer, nil
	// when it could not be loaded or does not count as the upstream does.
	localPath string
	local     tokens.Counter
}

// localProbe is counted both ways before a local vocabulary is trusted: a
// file at the same path on another machine may be another model.
var localProbe = []string{
	"Hello world",
	"The quick brown fox jumps over the lazy dog; 12.5% of $4,200,000.",
	" Montréal, Kraków and 東京: naïve café — “quotes” and emoji 🦙.",
}

// Name implements tokens.Counter.
func (u *UpstreamCounter) Name() string {
	if c := u.localCounter(); c != nil {
		return c.Name()
	}
	if info, ok := u.Client.LastInfo(); ok && info.CanTokenize {
		return "upstream:" + info.Kind
	}
	return "estimate"
}

// Unavailable implements tokens.Fallible: no discovery of the upstream
// has answered yet (it is down or unreachable), so counts fall back to the
// estimate. An upstream that answered but has no tokenizer (no /tokenize)
// is not unavailable: the estimate is then its tokenizer for good.
func (u *UpstreamCounter) Unavailable() bool {
	if u.localCounter() != nil {
		return false
	}
	_, ok := u.Client.LastInfo()
	return !ok
}

// Count implements tokens.Counter.
func (u *UpstreamCounter) Count(text string) int { return u.CountBatch([]string{text})[0] }

// CountBatch implements tokens.BatchCounter.
func (u *UpstreamCounter) CountBatch(texts []string) []int {
	if c := u.localCounter(); c != nil {
		return tokens.CountAll(c, texts)
	}
	if info, ok := u.Client.LastInfo(); ok && info.CanTokenize {
		counts, err := u.remote(texts)
		if err == nil {
			return counts
		}
		if u.Logger != nil && !u.warned.Swap(true) {
			u.Logger.Warn("upstream tokenizer failed; using the estimate", "err", err)
		}
	}
	return tokens.CountAll(tokens.Estimate{}, texts)
}

// remote counts texts with the upstream's /tokenize.
func (u *UpstreamCounter) remote(texts []string) ([]int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), u.Timeout)
	defer cancel()
	return u.Client.CountTokens(ctx, texts)
}

// localCounter returns the in-process tokenizer of the model the upstream
// serves, loading it the first time a discovery names its file (and again
// when the upstream's model changes); nil when there is none.
func (u *UpstreamCounter) localCounter() tokens.Counter {
	if u.LoadVocab == nil {
		return nil
	}
	info, ok := u.Client.LastInfo()
	if !ok || info.ModelPath == "" {
		return nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.localPath == info.ModelPath {
		return u.local
	}
	if c, ok := u.local.(io.Closer); ok {
		_ = c.Close() // a closed native tokenizer falls back to the estimate
	}
	u.localPath, u.local = info.ModelPath, nil
	tok, err := u.LoadVocab(info.ModelPath)
	if err != nil {
		u.log("the upstream's model file cannot be loaded here; counting tokens through the upstream", "model_path", info.ModelPath, "err", err)
		return nil
	}
	if info.CanTokenize {
		want, err := u.remote(localProbe)
		if err != nil {
			u.log("the upstream's model vocabulary is not checked (its /tokenize failed); counting tokens through the upstream", "model_path", info.ModelPath, "err", err)
			closeCounter(tok)
			return nil
		}
		for i, p := range localProbe {
			if got := tok.Count(p); got != want[i] {
				u.log("the model file here counts differently from the upstream; counting tokens through the upstream", "model_path", info.ModelPath, "probe", i, "local", got, "upstream", want[i])
				closeCounter(tok)
				return nil
			}
		}
	}
	u.local = tok
	u.log("counting tokens in-process with the upstream's model vocabulary", "model_path", info.ModelPath, "tokenizer", tok.Name())
	return tok
}

func (u *UpstreamCounter) log(msg string, args ...any) {
	if u.Logger != nil {
		u.Logger.Info(msg, args...)
	}
}

func closeCounter(c tokens.Counter) {
	if cl, ok := c.(io.Closer); ok {
		_ = cl.Close()
	}
}

// Close releases the in-process tokenizer, if one was loaded.
func (u *UpstreamCounter) Close() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.local != nil {
		closeCounter(u.local)
		u.local = nil
	}
	return nil
}
