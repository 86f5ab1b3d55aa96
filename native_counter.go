package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"

	"github.com/megacontext/megacontext/configs"
	"github.com/megacontext/megacontext/native"
	"github.com/megacontext/megacontext/native/localserver"
	"github.com/megacontext/megacontext/tokens"
)

// nativeCounter returns an exact tokenizer from tokenizer.vocab when one is
// configured and loads. ok is false when none is configured or the native
// libraries are unavailable (the proxy then runs on its pure-Go fallbacks,
// which one log line says).
func nativeCounter(cfg configs.Config, logger *slog.Logger) (tokens.Counter, bool, error) {
	if cfg.Tokenizer.Vocab == "" {
		return nil, false, nil
	}
	lib, err := native.Open(cfg.Native.Dir)
	if err != nil {
		logger.Warn("native libraries unavailable; counting tokens without tokenizer.vocab (run `make native`)", "err", err)
		return nil, false, nil
	}
	tok, err := lib.LoadVocab(cfg.Tokenizer.Vocab)
	if err != nil {
		logger.Warn("tokenizer.vocab could not be loaded; counting tokens without it", "vocab", cfg.Tokenizer.Vocab, "err", err)
		return nil, false, nil
	}
	logger.Info("exact token counts from native vocabulary", "vocab", cfg.Tokenizer.Vocab, "tokenizer", tok.Name())
	return tok, true, nil
}

// upstreamVocabLoader returns the loader the proxy's counter uses for the
// model file the upstream names (/props model_path): a vocab-only load
// through the native layer, opened on first use. nil when
// upstream.tokenize is not auto.
func upstreamVocabLoader(cfg configs.Config) func(string) (tokens.Counter, error) {
	if cfg.Upstream.Tokenize != "auto" {
		return nil
	}
	return func(path string) (tokens.Counter, error) {
		lib, err := native.Open(cfg.Native.Dir)
		if err != nil {
			return nil, fmt.Errorf("native libraries unavailable (run `make native`): %w", err)
		}
		return lib.LoadVocab(path)
	}
}

// startLocalUpstream serves native.model in-process on a loopback port and
// returns its URL and a stop function: `--upstream local`.
func startLocalUpstream(ctx context.Context, cfg configs.Config, logger *slog.Logger) (string, func(), error) {
	if cfg.Native.Model == "" {
		return "", nil, fmt.Errorf("upstream local needs a model: --model FILE.gguf (native.model)")
	}
	lib, err := native.Open(cfg.Native.Dir)
	if err != nil {
		return "", nil, fmt.Errorf("upstream local: %w (run `make native`)", err)
	}
	model, err := lib.LoadModel(cfg.Native.Model, native.ModelOptions{CPUOnly: cfg.Native.GPULayers == 0})
	if err != nil {
		return "", nil, fmt.Errorf("upstream local: %w", err)
	}
	srv, err := localserver.NewServer(model, localserver.Options{
		ModelName: filepath.Base(cfg.Native.Model),
		Context:   native.ContextOptions{ContextSize: cfg.Upstream.NCtx, Threads: cfg.Native.Threads},
		Logger:    logger,
	})
	if err != nil {
		model.Close()
		return "", nil, fmt.Errorf("upstream local: %w", err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		model.Close()
		return "", nil, fmt.Errorf("upstream local: listen: %w", err)
	}
	go func() {
		if err := srv.Serve(ln); err != nil {
			logger.Error("local upstream stopped", "err", err)
		}
	}()
	url := "http://" + ln.Addr().String()
	logger.Info("local upstream serving", "model", cfg.Native.Model, "url", url, "n_ctx", srv.ContextSize())
	return url, func() { _ = srv.Shutdown(); _ = model.Close() }, nil
}

// nativeEmbedder loads embeddings.model when configured. ok is false when
// none is configured or it cannot load (the lens then stays lexical, which
// one log line says).
func nativeEmbedder(cfg configs.Config, logger *slog.Logger) (*native.Embedder, bool) {
	if cfg.Embeddings.Model == "" {
		return nil, false
	}
	lib, err := native.Open(cfg.Native.Dir)
	if err != nil {
		logger.Warn("native libraries unavailable; the lens stays lexical (run `make native`)", "err", err)
		return nil, false
	}
	emb, err := lib.LoadEmbedder(cfg.Embeddings.Model, native.EmbedderOptions{Threads: cfg.Native.Threads})
	if err != nil {
		logger.Warn("embeddings.model could not be loaded; the lens stays lexical", "model", cfg.Embeddings.Model, "err", err)
		return nil, false
	}
	logger.Info("semantic lens on", "model", cfg.Embeddings.Model, "dim", emb.Dim())
	return emb, true
}
