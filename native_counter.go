package main

import (
	"log/slog"

	"github.com/megacontext/megacontext/configs"
	"github.com/megacontext/megacontext/memory/tokens"
)

// nativeCounter returns an exact tokenizer from native.vocab when one is
// configured. ok is false when none is configured.
func nativeCounter(cfg configs.Config, logger *slog.Logger) (tokens.Counter, bool, error) {
	if cfg.Native.Vocab == "" {
		return nil, false, nil
	}
	logger.Warn("native.vocab is set but the native tokenizer is not wired into serve yet; using the upstream tokenizer or the estimate", "vocab", cfg.Native.Vocab)
	return nil, false, nil
}
