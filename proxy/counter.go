package proxy

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/megacontext/megacontext/proxy/upstream"
	"github.com/megacontext/megacontext/tokens"
)

// UpstreamCounter counts tokens exactly with the upstream's own tokenizer
// (llama.cpp or vLLM /tokenize) when it has one, and falls back to the
// conservative estimate when it has none or does not answer in time.
type UpstreamCounter struct {
	Client  *upstream.Client
	Timeout time.Duration
	Logger  *slog.Logger
	warned  atomic.Bool
}

// Name implements tokens.Counter.
func (u *UpstreamCounter) Name() string {
	if info, ok := u.Client.LastInfo(); ok && info.CanTokenize {
		return "upstream:" + info.Kind
	}
	return "estimate"
}

// Count implements tokens.Counter.
func (u *UpstreamCounter) Count(text string) int { return u.CountBatch([]string{text})[0] }

// CountBatch implements tokens.BatchCounter.
func (u *UpstreamCounter) CountBatch(texts []string) []int {
	if info, ok := u.Client.LastInfo(); ok && info.CanTokenize {
		ctx, cancel := context.WithTimeout(context.Background(), u.Timeout)
		defer cancel()
		counts, err := u.Client.CountTokens(ctx, texts)
		if err == nil {
			return counts
		}
		if u.Logger != nil && !u.warned.Swap(true) {
			u.Logger.Warn("upstream tokenizer failed; using the estimate", "err", err)
		}
	}
	return tokens.CountAll(tokens.Estimate{}, texts)
}
