package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/megacontext/megacontext/configs"
	"github.com/megacontext/megacontext/memory"
	"github.com/megacontext/megacontext/memory/glove"
	"github.com/megacontext/megacontext/memory/pgstore"
	"github.com/megacontext/megacontext/memory/policy"
	"github.com/megacontext/megacontext/memory/store"
	"github.com/megacontext/megacontext/memory/thesaurus"
	"github.com/megacontext/megacontext/proxy"
	"github.com/megacontext/megacontext/proxy/auth"
	"github.com/megacontext/megacontext/proxy/upstream"
	"github.com/megacontext/megacontext/tokens"
)

// serve runs the proxy until ctx ends.
func serve(ctx context.Context, cfg configs.Config, logger *slog.Logger) error {
	if cfg.Upstream.URL == "local" {
		url, stop, err := startLocalUpstream(ctx, cfg, logger)
		if err != nil {
			return err
		}
		defer stop()
		cfg.Upstream.URL = url
	}
	up, err := upstream.New(upstream.Options{
		BaseURL:     cfg.Upstream.URL,
		APIKey:      cfg.Upstream.APIKey,
		Timeout:     cfg.Upstream.Timeout,
		DialTimeout: cfg.Upstream.DialTimeout,
		Logger:      logger,
	})
	if err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	defer up.Close()

	counter, err := newCounter(cfg, up, logger)
	if err != nil {
		return err
	}
	if c, ok := counter.(io.Closer); ok {
		defer c.Close()
	}
	keyring, err := auth.NewKeyring(cfg.Auth.Keys)
	if err != nil {
		return fmt.Errorf("auth.keys: %w", err)
	}
	pol, err := policy.Compile(cfg.Policy.Rules)
	if err != nil {
		return fmt.Errorf("policy.rules: %w", err)
	}
	if keyring.Open() {
		if !isLoopback(cfg.Listen) && !cfg.Auth.AllowOpen {
			return fmt.Errorf("no auth.keys configured: refusing to serve an open proxy on %s; configure keys, listen on loopback, or set auth.allow_open", cfg.Listen)
		}
		logger.Warn("no auth.keys configured: the proxy is open (tenant \"default\", no scopes)", "listen", cfg.Listen)
	}
	var embedder memory.Embedder
	if cfg.Embeddings.URL != "" {
		emb, stop, err := remoteEmbedder(cfg, logger)
		if err != nil {
			return err
		}
		defer stop()
		embedder = emb
	} else if emb, ok := nativeEmbedder(cfg, logger); ok {
		defer emb.Close()
		embedder = emb
	}
	mopts, err := engineOptions(ctx, cfg, counter, pol, logger)
	if err != nil {
		return err
	}
	mopts.Embedder = embedder
	mopts.Expander = openThesaurus(cfg.Memory.Thesaurus, logger)
	if v := openGlove(cfg.Memory.Glove, logger); v != nil {
		defer v.Close()
		mopts.Vectors = v
	}
	eng, err := memory.Open(mopts)
	if err != nil {
		return err
	}
	defer eng.Close()
	signing, trusted, err := cfg.Provenance.Keys()
	if err != nil {
		return err
	}

	srv := proxy.New(proxy.Options{
		Engine:           eng,
		Upstream:         up,
		Logger:           logger,
		NCtx:             cfg.Upstream.NCtx,
		DefaultNCtx:      cfg.Memory.DefaultNCtx,
		DefaultMaxTokens: cfg.Memory.DefaultMaxTokens,
		SafetyMargin:     cfg.Memory.SafetyMargin,
		TailPercent:      cfg.Memory.TailPercent,
		MaxBodyBytes:     cfg.Limits.MaxBodyBytes,
		MaxMessages:      cfg.Limits.MaxMessages,
		ContextHeaders:   cfg.Headers.ContextID,
		ThreadHeaders:    cfg.Headers.ThreadID,
		Keyring:          keyring,
		Policy:           pol,
		PassThrough:      cfg.Auth.PassThrough,
		Responses:        cfg.Upstream.Responses,
		CORSOrigins:      cfg.Server.CORSOrigins,
		RequireID:        cfg.Memory.RequireID,
		Mounts:           cfg.Memory.Mounts,
		SigningKey:       signing,
		TrustedKeys:      trusted,
	})
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	info, err := srv.Discover(dctx)
	cancel()
	if err != nil {
		logger.Warn("upstream not discovered yet; will retry on the first request", "upstream", cfg.Upstream.URL, "err", err)
	} else {
		logger.Info("upstream", "url", cfg.Upstream.URL, "kind", info.Kind, "model", info.Model, "n_ctx", info.NCtx, "exact_tokens", info.CanTokenize)
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	where := []any{"store", cfg.Store.Kind, "data", cfg.DataDir}
	if cfg.Store.Kind == "postgres" {
		where = where[:2]
	}
	logger.Info("megacontext listening", append([]any{"base_url", clientBaseURL(ln.Addr(), cfg.Listen), "addr", ln.Addr().String(), "tokens", counter.Name()}, where...)...)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// engineOptions are the memory engine's options from the configuration:
// what serve and the offline commands (export, import…) share.
// engineOptions are the engine's options of cfg; with store.kind postgres
// it connects to the database (and migrates it when store.auto_migrate).
func engineOptions(ctx context.Context, cfg configs.Config, counter tokens.Counter, pol *policy.Policy, logger *slog.Logger) (memory.Options, error) {
	var st store.Backend
	if cfg.Store.Kind == "postgres" {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		pg, err := pgstore.Open(pctx, pgstore.Options{DSN: cfg.Store.DSN, MaxConns: cfg.Store.MaxConns, AutoMigrate: cfg.Store.AutoMigrate, Logger: logger,
			SynchronousCommit: cfg.PostgresSynchronousCommit()})
		cancel()
		if err != nil {
			return memory.Options{}, fmt.Errorf("store: %w", err)
		}
		st = pg
	}
	return memory.Options{
		Store:       st,
		Render:      cfg.Memory.Render,
		Dir:         cfg.DataDir,
		Sync:        store.Sync(cfg.DataSync),
		BlockTokens: cfg.Memory.BlockTokens,
		Fanout:      cfg.Memory.Fanout,
		GistTokens:  cfg.Memory.GistTokens,
		CacheBytes:  cfg.Memory.CacheBytes,
		KeepWindows: cfg.Memory.KeepWindows,
		PinShare:    cfg.Memory.PinShare,
		Retention:   cfg.Retention.Rules,
		Counter:     counter,
		Policy:      pol,
		Logger:      logger,
	}, nil
}

// openThesaurus loads WordNet for query expansion; nil (lexical lens only)
// when off, or when auto finds none.
func openThesaurus(setting string, logger *slog.Logger) memory.Expander {
	th := openServeAsset(setting, thesaurus.Open, logger, "no thesaurus: questions are not expanded with synonyms (run `make wordnet`)")
	if th == nil {
		return nil
	}
	logger.Info("thesaurus on: questions expanded with WordNet synonyms")
	return th
}

// openGlove maps the GloVe vectors for soft term matching; nil (no soft
// matching) when off, or when auto finds none.
func openGlove(setting string, logger *slog.Logger) *glove.Vectors {
	v := openServeAsset(setting, glove.Open, logger, "no word vectors: questions match the history's words only as written (run `make glove`)")
	if v != nil {
		logger.Info("word vectors on: questions also match the history's near words (GloVe)", "words", v.Len())
	}
	return v
}

// openServeAsset opens an optional asset by its setting (off, auto or a
// folder); nil when off or absent, said in the log with missing: as a
// warning when a folder was named, as information for auto.
func openServeAsset[T any](setting string, open func(dir string) (*T, error), logger *slog.Logger, missing string) *T {
	if setting == "off" {
		return nil
	}
	dir := setting
	if dir == "auto" {
		dir = ""
	}
	a, err := open(dir)
	if err != nil {
		level := slog.LevelWarn
		if setting == "auto" {
			level = slog.LevelInfo
		}
		logger.Log(context.Background(), level, missing, "err", err)
		return nil
	}
	return a
}

// clientBaseURL is the base URL clients give their OpenAI SDK for a proxy
// listening on addr, as configured by listen (host:port): http://HOST:PORT/v1,
// with 127.0.0.1 for a wildcard address, or ::1 when listen named an IPv6
// one ("[::]:8787"). Go listens on "0.0.0.0" or ":8787" with a dual-stack
// socket that reports itself as [::], and takes IPv4 connections too.
func clientBaseURL(addr net.Addr, listen string) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return "http://" + addr.String() + "/v1"
	}
	ip := tcp.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
		if host, _, err := net.SplitHostPort(listen); err == nil && strings.Contains(host, ":") {
			ip = net.IPv6loopback
		}
	}
	return "http://" + net.JoinHostPort(ip.String(), strconv.Itoa(tcp.Port)) + "/v1"
}

// isLoopback reports whether addr (host:port) listens on loopback only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// remoteEmbedder embeds through embeddings.url (an OpenAI-compatible
// /v1/embeddings; "upstream" is upstream.url, with its key unless
// embeddings.api_key is set). stop closes its connections.
func remoteEmbedder(cfg configs.Config, logger *slog.Logger) (*upstream.Embedder, func(), error) {
	base, key := cfg.Embeddings.URL, cfg.Embeddings.APIKey
	if base == "upstream" {
		base = cfg.Upstream.URL
		if key == "" {
			key = cfg.Upstream.APIKey
		}
	}
	c, err := upstream.New(upstream.Options{BaseURL: upstream.EmbeddingsBaseURL(base), APIKey: key,
		Timeout: time.Minute, DialTimeout: cfg.Upstream.DialTimeout, Logger: logger})
	if err != nil {
		return nil, nil, fmt.Errorf("embeddings.url: %w", err)
	}
	logger.Info("semantic lens on", "embeddings_url", c.BaseURL()+"/v1/embeddings", "model", cfg.Embeddings.Model)
	return upstream.NewEmbedder(c, upstream.EmbedderOptions{Model: cfg.Embeddings.Model}), func() { _ = c.Close() }, nil
}

// newCounter picks the token counter: the native tokenizer of a configured
// GGUF vocabulary, else the upstream's tokenizer (when tokenize allows),
// else the estimate.
func newCounter(cfg configs.Config, up *upstream.Client, logger *slog.Logger) (tokens.Counter, error) {
	if c, ok, err := nativeCounter(cfg, logger); err != nil || ok {
		return c, err
	}
	switch cfg.Upstream.Tokenize {
	case "estimate":
		return tokens.Estimate{}, nil
	default:
		return &proxy.UpstreamCounter{Client: up, Timeout: 5 * time.Second, Logger: logger, LoadVocab: upstreamVocabLoader(cfg)}, nil
	}
}
