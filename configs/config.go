// Package configs loads MegaContext's configuration from one YAML file,
// MEGACONTEXT_* environment variables and command-line flags (in rising
// precedence), with defaults that work out of the box.
package configs

import (
	"crypto/ed25519"
	_ "embed"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/megacontext/megacontext/memory"
	"github.com/megacontext/megacontext/memory/bundle"
	"github.com/megacontext/megacontext/memory/policy"
	"github.com/megacontext/megacontext/proxy/auth"
)

// DefaultYAML is the fully commented default configuration file; every value in
// it equals the built-in default.
//
//go:embed megacontext.yaml
var DefaultYAML []byte

// Config is the whole configuration of a megacontext process.
type Config struct {
	Listen  string `mapstructure:"listen"`
	Server  Server `mapstructure:"server"`
	DataDir string `mapstructure:"data_dir"`
	// DataSync is when stored records reach the disk: "second" (the
	// default: written to the OS before every acknowledgement, fsynced once a
	// second) or "always" (fsynced before every acknowledgement).
	DataSync   string     `mapstructure:"data_sync"`
	LogLevel   string     `mapstructure:"log_level"`
	Store      Store      `mapstructure:"store"`
	Upstream   Upstream   `mapstructure:"upstream"`
	Limits     Limits     `mapstructure:"limits"`
	Memory     Memory     `mapstructure:"memory"`
	Headers    Headers    `mapstructure:"headers"`
	Native     Native     `mapstructure:"native"`
	Tokenizer  Tokenizer  `mapstructure:"tokenizer"`
	Embeddings Embeddings `mapstructure:"embeddings"`
	Auth       Auth       `mapstructure:"auth"`
	Policy     Policy     `mapstructure:"policy"`
	Retention  Retention  `mapstructure:"retention"`
	Provenance Provenance `mapstructure:"provenance"`
}

// Provenance configures the signing and trust of snapshots (.mcx bundles).
type Provenance struct {
	// SigningKey is an ed25519 private key file (PEM, PKCS #8, as
	// `megacontext keygen` or `openssl genpkey -algorithm ed25519` write)
	// whose key signs every exported snapshot's root; empty (the default)
	// exports unsigned snapshots.
	SigningKey string `mapstructure:"signing_key"`
	// TrustedKeys lists ed25519 public keys (PEM files, or base64 as
	// X-MegaContext-Signed-By shows them); when not empty, only snapshots
	// signed by one of them import. Empty (the default) imports unsigned
	// snapshots too (a signature present is always checked).
	TrustedKeys []string `mapstructure:"trusted_keys"`
}

// Server configures the HTTP front end beyond its address.
type Server struct {
	// CORSOrigins are the browser origins allowed to call the proxy
	// ("https://app.example.com", or "*" for any); empty (the default)
	// allows none.
	CORSOrigins []string `mapstructure:"cors_origins"`
}

// Store selects where memory is kept.
type Store struct {
	// Kind is "buntdb" (the default: an embedded file in data_dir, owned by
	// one process) or "postgres" (a PostgreSQL database at DSN, shared by
	// any number of replicas).
	Kind string `mapstructure:"kind"`
	// DSN is the PostgreSQL connection string (postgres://user:password@
	// host:5432/db?sslmode=disable, or key=value form); empty by default.
	DSN string `mapstructure:"dsn"`
	// AutoMigrate lets serve bring the database schema up to date at start
	// (default true); off, serve refuses a schema that is behind and
	// `megacontext migrate` upgrades it.
	AutoMigrate bool `mapstructure:"auto_migrate"`
	// MaxConns bounds the connections one replica opens (default 16).
	MaxConns int `mapstructure:"max_conns"`
	// SynchronousCommit is PostgreSQL's synchronous_commit for the
	// replicas' sessions: "auto" (the default) follows data_sync, "second"
	// as off (a crash of the database machine may lose the last fraction
	// of a second of acknowledged writes, as a crash of the machine loses
	// the embedded store's; a replica's crash loses nothing either way),
	// "always" as the database's own setting (on unless its administrator
	// chose otherwise); or one of PostgreSQL's values (on, off, local,
	// remote_write, remote_apply), passed as it is.
	SynchronousCommit string `mapstructure:"synchronous_commit"`
}

// PostgresSynchronousCommit is the synchronous_commit the replicas' database
// sessions use: store.synchronous_commit, or what data_sync makes of
// "auto"; "" leaves the database's own setting.
func (c Config) PostgresSynchronousCommit() string {
	if c.Store.SynchronousCommit != "auto" {
		return c.Store.SynchronousCommit
	}
	if c.DataSync == "second" {
		return "off"
	}
	return ""
}

// Tokenizer configures exact token counting with a model's own vocabulary.
type Tokenizer struct {
	// Vocab is a GGUF whose vocabulary counts tokens exactly (vocab-only
	// load through the native layer), e.g. the served model.
	Vocab string `mapstructure:"vocab"`
}

// Embeddings configures the lens's semantic similarity.
type Embeddings struct {
	// URL is an OpenAI-compatible embeddings endpoint (a server root, its
	// /v1 or /v1/embeddings; "upstream" is upstream.url): when set, blocks
	// are embedded there in the background. Default empty: Model is a GGUF
	// embedded in-process, if set.
	URL string `mapstructure:"url"`
	// Model is an embedding GGUF embedded in-process when URL is empty; the
	// "model" field of each request when URL is set. Default empty: no
	// semantic lens (or, with URL, no model field).
	Model string `mapstructure:"model"`
	// APIKey is sent as Authorization: Bearer to URL; empty sends
	// upstream.api_key when URL is "upstream", else nothing. Default empty.
	APIKey string `mapstructure:"api_key"`
}

// Auth maps API keys to tenants and scopes.
type Auth struct {
	// Keys are the accepted client keys. With none, the proxy is open and
	// listens on loopback only (unless AllowOpen).
	Keys []auth.Key `mapstructure:"keys"`
	// AllowOpen permits an open proxy on a non-loopback address.
	AllowOpen bool `mapstructure:"allow_open"`
	// PassThrough forwards the client's Authorization header upstream when
	// upstream.api_key is empty (for upstreams that check the caller's key).
	PassThrough bool `mapstructure:"pass_through"`
}

// Policy lists the rules that filter sensitive spans.
type Policy struct {
	Rules []policy.Rule `mapstructure:"rules"`
}

// Retention lists the rules that prune old raw text (previewed and applied
// through the admin API and the inspector; gists stay). None by default.
type Retention struct {
	Rules []memory.RetentionRule `mapstructure:"rules"`
}

// Upstream describes the OpenAI-compatible LLM server behind the proxy.
type Upstream struct {
	// URL is the server root; a trailing /v1 is accepted and stripped.
	URL string `mapstructure:"url"`
	// APIKey is sent upstream as a Bearer token when set.
	APIKey string `mapstructure:"api_key"`
	// NCtx overrides the discovered context size when > 0.
	NCtx int `mapstructure:"n_ctx"`
	// Timeout bounds one whole upstream request (streams included).
	Timeout time.Duration `mapstructure:"timeout"`
	// DialTimeout bounds connecting to the upstream.
	DialTimeout time.Duration `mapstructure:"dial_timeout"`
	// Tokenize selects how tokens are counted: auto, upstream or estimate.
	Tokenize string `mapstructure:"tokenize"`
	// Responses selects how /v1/responses reaches the upstream: auto (the
	// default: natively when the upstream serves /v1/responses, else
	// translated to /v1/chat/completions), native or translate.
	Responses string `mapstructure:"responses"`
}

// Limits bounds what the proxy accepts from clients.
type Limits struct {
	// MaxBodyBytes bounds a request body (16 MiB).
	MaxBodyBytes int `mapstructure:"max_body_bytes"`
	// MaxMessages bounds the messages of one chat request (10,000).
	MaxMessages int `mapstructure:"max_messages"`
}

// Memory tunes the gist tree and the working-window assembly.
type Memory struct {
	BlockTokens      int `mapstructure:"block_tokens"`
	Fanout           int `mapstructure:"fanout"`
	GistTokens       int `mapstructure:"gist_tokens"`
	DefaultMaxTokens int `mapstructure:"default_max_tokens"`
	SafetyMargin     int `mapstructure:"safety_margin"`
	// DefaultNCtx is used when the upstream's context size cannot be discovered.
	DefaultNCtx int `mapstructure:"default_n_ctx"`
	// TailTokens caps the verbatim recent tail as a share of the budget (percent).
	TailPercent int `mapstructure:"tail_percent"`
	// Render lays out the memory text: "outline" (the default: a
	// query-independent outline, then the question's details, so that
	// consecutive prompts share a long prefix) or "chronological"
	// (expansions in place).
	Render string `mapstructure:"render"`
	// Thesaurus expands questions with WordNet synonyms: "auto" (./.wordnet
	// or $MEGACONTEXT_WORDNET_DIR when present), "off", or a folder.
	Thesaurus string `mapstructure:"thesaurus"`
	// Glove matches questions' words to the history's near words with
	// GloVe vectors: "auto" (./.glove or $MEGACONTEXT_GLOVE_DIR when
	// present), "off", or a folder.
	Glove string `mapstructure:"glove"`
	// CacheBytes bounds the memory of the MegaContexts held loaded, by
	// their estimated footprint (default 256 MiB, memory.DefaultCacheBytes);
	// idle ones are evicted least recently used first and read back from
	// the store when needed. 0 keeps the default; -1 sets no bound.
	CacheBytes int64 `mapstructure:"cache_bytes"`
	// RequireID refuses (400) chat and responses requests that name no
	// MegaContext (no context header, no user field) instead of putting
	// them in the shared "default" memory; off by default.
	RequireID bool `mapstructure:"require_id"`
	// Mounts are the memories of the caller's tenant every request draws
	// on besides its own, read-only (a key's own auth.keys[].mounts
	// replaces them); empty (the default) mounts none. Requests add more
	// with X-MegaContext-Mount.
	Mounts []string `mapstructure:"mounts"`
	// KeepWindows is how many recent windows each context keeps, explained,
	// for the inspector (default 20); the same background worker keeps the
	// focus telemetry. -1 turns both off.
	KeepWindows int `mapstructure:"keep_windows"`
	// PinShare is the most of a request's budget pinned messages may take
	// (default 0.25); pins that do not fit are left out of that window.
	PinShare float64 `mapstructure:"pin_share"`
}

// Headers maps client headers to MegaContext selection.
type Headers struct {
	// ContextID lists headers, in order, whose first non-empty value names the MegaContext.
	ContextID []string `mapstructure:"context_id"`
	// ThreadID lists headers whose value names the conversation (chat id),
	// so identical messages in different chats stay apart.
	ThreadID []string `mapstructure:"thread_id"`
}

// Native configures the llama.cpp libraries loaded with purego.
type Native struct {
	// Dir holds the llama.cpp shared libraries (default ./.native).
	Dir string `mapstructure:"dir"`
	// Model is the GGUF served in-process by `--upstream local`.
	Model string `mapstructure:"model"`
	// Threads is the CPU threads of local generation (0: half the cores).
	Threads int `mapstructure:"threads"`
	// GPULayers > 0 lets a GPU backend (CUDA build) take the model's layers.
	GPULayers int `mapstructure:"gpu_layers"`
}

// Defaults returns the built-in configuration.
func Defaults() Config {
	return Config{
		Listen:   "127.0.0.1:8787",
		DataDir:  "./data",
		DataSync: "second",
		LogLevel: "info",
		Store:    Store{Kind: "buntdb", AutoMigrate: true, MaxConns: 16, SynchronousCommit: "auto"},
		Upstream: Upstream{
			URL:         "http://127.0.0.1:8080",
			Timeout:     10 * time.Minute,
			DialTimeout: 5 * time.Second,
			Tokenize:    "auto",
			Responses:   "auto",
		},
		Limits: Limits{MaxBodyBytes: 16 << 20, MaxMessages: 10000},
		Memory: Memory{
			BlockTokens:      32,
			Fanout:           8,
			GistTokens:       48,
			DefaultMaxTokens: 512,
			SafetyMargin:     32,
			DefaultNCtx:      4096,
			TailPercent:      40,
			Thesaurus:        "auto",
			Glove:            "auto",
			Render:           "outline",
			CacheBytes:       256 << 20,
			KeepWindows:      20,
			PinShare:         0.25,
		},
		Headers: Headers{ContextID: []string{"X-MegaContext-Id"}, ThreadID: []string{"X-MegaContext-Thread"}},
	}
}

// Load builds the configuration: defaults, then the YAML file at path (if
// path is empty, ./megacontext.yaml when present), then MEGACONTEXT_*
// environment variables (MEGACONTEXT_UPSTREAM_URL for upstream.url), then
// flags that were set explicitly. Flags are bound by their config key
// through FlagKeys.
func Load(path string, flags *pflag.FlagSet, flagKeys map[string]string) (Config, error) {
	v := viper.New()
	setDefaults(v, Defaults())
	v.SetConfigType("yaml")
	if path != "" {
		v.SetConfigFile(path)
		if err := v.ReadInConfig(); err != nil {
			return Config{}, fmt.Errorf("read config %s: %w", path, err)
		}
	} else if found := defaultFile(); found != "" {
		// Named explicitly: viper's own search also tries the bare name
		// "megacontext", which is the binary after `go build .`.
		v.SetConfigFile(found)
		if err := v.ReadInConfig(); err != nil {
			return Config{}, fmt.Errorf("read config %s: %w", found, err)
		}
	}
	v.SetEnvPrefix("MEGACONTEXT")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	if flags != nil {
		for name, key := range flagKeys {
			if f := flags.Lookup(name); f != nil {
				if err := v.BindPFlag(key, f); err != nil {
					return Config{}, fmt.Errorf("bind flag %s: %w", name, err)
				}
			}
		}
	}
	var c Config
	if err := v.Unmarshal(&c); err != nil {
		return Config{}, fmt.Errorf("decode config: %w", err)
	}
	// Env vars for list values arrive as one string, or split at commas
	// with the spaces after them kept: trim and split every list the same way.
	for _, l := range []*[]string{&c.Headers.ContextID, &c.Headers.ThreadID, &c.Server.CORSOrigins, &c.Provenance.TrustedKeys, &c.Memory.Mounts} {
		*l = splitList(strings.Join(*l, ","))
	}
	if err := c.normalize(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// DefaultFiles are the config files looked for in the working directory
// when no --config is given, in order.
var DefaultFiles = []string{"megacontext.yaml", "megacontext.yml"}

// defaultFile returns the first of DefaultFiles that exists as a regular
// file, or "".
func defaultFile() string {
	for _, name := range DefaultFiles {
		if fi, err := os.Stat(name); err == nil && fi.Mode().IsRegular() {
			return name
		}
	}
	return ""
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// setDefaults registers every leaf of d with viper so that env variables
// and Unmarshal see all keys.
func setDefaults(v *viper.Viper, d Config) {
	v.SetDefault("listen", d.Listen)
	v.SetDefault("data_dir", d.DataDir)
	v.SetDefault("data_sync", d.DataSync)
	v.SetDefault("log_level", d.LogLevel)
	v.SetDefault("store.kind", d.Store.Kind)
	v.SetDefault("store.dsn", d.Store.DSN)
	v.SetDefault("store.auto_migrate", d.Store.AutoMigrate)
	v.SetDefault("store.max_conns", d.Store.MaxConns)
	v.SetDefault("store.synchronous_commit", d.Store.SynchronousCommit)
	v.SetDefault("upstream.url", d.Upstream.URL)
	v.SetDefault("upstream.api_key", d.Upstream.APIKey)
	v.SetDefault("upstream.n_ctx", d.Upstream.NCtx)
	v.SetDefault("upstream.timeout", d.Upstream.Timeout)
	v.SetDefault("upstream.dial_timeout", d.Upstream.DialTimeout)
	v.SetDefault("upstream.tokenize", d.Upstream.Tokenize)
	v.SetDefault("upstream.responses", d.Upstream.Responses)
	v.SetDefault("server.cors_origins", d.Server.CORSOrigins)
	v.SetDefault("memory.require_id", d.Memory.RequireID)
	v.SetDefault("memory.mounts", d.Memory.Mounts)
	v.SetDefault("limits.max_body_bytes", d.Limits.MaxBodyBytes)
	v.SetDefault("limits.max_messages", d.Limits.MaxMessages)
	v.SetDefault("memory.block_tokens", d.Memory.BlockTokens)
	v.SetDefault("memory.fanout", d.Memory.Fanout)
	v.SetDefault("memory.gist_tokens", d.Memory.GistTokens)
	v.SetDefault("memory.default_max_tokens", d.Memory.DefaultMaxTokens)
	v.SetDefault("memory.safety_margin", d.Memory.SafetyMargin)
	v.SetDefault("memory.default_n_ctx", d.Memory.DefaultNCtx)
	v.SetDefault("memory.tail_percent", d.Memory.TailPercent)
	v.SetDefault("memory.thesaurus", d.Memory.Thesaurus)
	v.SetDefault("memory.glove", d.Memory.Glove)
	v.SetDefault("memory.render", d.Memory.Render)
	v.SetDefault("memory.cache_bytes", d.Memory.CacheBytes)
	v.SetDefault("memory.keep_windows", d.Memory.KeepWindows)
	v.SetDefault("memory.pin_share", d.Memory.PinShare)
	v.SetDefault("headers.context_id", d.Headers.ContextID)
	v.SetDefault("headers.thread_id", d.Headers.ThreadID)
	v.SetDefault("native.dir", d.Native.Dir)
	v.SetDefault("auth.allow_open", d.Auth.AllowOpen)
	v.SetDefault("auth.pass_through", d.Auth.PassThrough)
	v.SetDefault("tokenizer.vocab", d.Tokenizer.Vocab)
	v.SetDefault("embeddings.url", d.Embeddings.URL)
	v.SetDefault("embeddings.model", d.Embeddings.Model)
	v.SetDefault("embeddings.api_key", d.Embeddings.APIKey)
	v.SetDefault("native.model", d.Native.Model)
	v.SetDefault("native.threads", d.Native.Threads)
	v.SetDefault("native.gpu_layers", d.Native.GPULayers)
	v.SetDefault("provenance.signing_key", d.Provenance.SigningKey)
	v.SetDefault("provenance.trusted_keys", d.Provenance.TrustedKeys)
}

// normalize validates c and canonicalizes values such as the upstream URL.
func (c *Config) normalize() error {
	u := strings.TrimRight(strings.TrimSpace(c.Upstream.URL), "/")
	u = strings.TrimSuffix(u, "/v1")
	if u != "local" {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return fmt.Errorf("upstream.url %q: want http(s)://host[:port][/v1] or \"local\"", c.Upstream.URL)
		}
	}
	c.Upstream.URL = u
	if e := strings.TrimSpace(c.Embeddings.URL); e != "" && e != "upstream" {
		pu, err := url.Parse(e)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return fmt.Errorf("embeddings.url %q: want http(s)://host[:port][/v1[/embeddings]] or \"upstream\"", c.Embeddings.URL)
		}
	}
	switch c.DataSync {
	case "second", "always":
	default:
		return fmt.Errorf("data_sync %q: want second or always", c.DataSync)
	}
	switch c.Store.Kind {
	case "buntdb":
	case "postgres":
		if strings.TrimSpace(c.Store.DSN) == "" {
			return errors.New("store.kind postgres needs store.dsn (e.g. postgres://megacontext@127.0.0.1:5432/megacontext)")
		}
	default:
		return fmt.Errorf("store.kind %q: want buntdb or postgres", c.Store.Kind)
	}
	if c.Store.MaxConns < 1 {
		return fmt.Errorf("store.max_conns %d: want >= 1", c.Store.MaxConns)
	}
	switch c.Store.SynchronousCommit {
	case "auto", "on", "off", "local", "remote_write", "remote_apply":
	default:
		return fmt.Errorf("store.synchronous_commit %q: want auto, on, off, local, remote_write or remote_apply", c.Store.SynchronousCommit)
	}
	switch c.Upstream.Tokenize {
	case "auto", "upstream", "estimate":
	default:
		return fmt.Errorf("upstream.tokenize %q: want auto, upstream or estimate", c.Upstream.Tokenize)
	}
	switch c.Upstream.Responses {
	case "auto", "native", "translate":
	default:
		return fmt.Errorf("upstream.responses %q: want auto, native or translate", c.Upstream.Responses)
	}
	for _, o := range c.Server.CORSOrigins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return fmt.Errorf("server.cors_origins %q: want an origin (scheme://host[:port]) or \"*\"", o)
		}
	}
	m := c.Memory
	switch {
	case m.BlockTokens < 4 || m.BlockTokens > 4096:
		return fmt.Errorf("memory.block_tokens %d: want 4..4096", m.BlockTokens)
	case m.Fanout < 2 || m.Fanout > 256:
		return fmt.Errorf("memory.fanout %d: want 2..256", m.Fanout)
	case m.GistTokens < 4:
		return fmt.Errorf("memory.gist_tokens %d: want >= 4", m.GistTokens)
	case m.DefaultMaxTokens < 1:
		return fmt.Errorf("memory.default_max_tokens %d: want >= 1", m.DefaultMaxTokens)
	case m.SafetyMargin < 0:
		return fmt.Errorf("memory.safety_margin %d: want >= 0", m.SafetyMargin)
	case m.DefaultNCtx < 256:
		return fmt.Errorf("memory.default_n_ctx %d: want >= 256", m.DefaultNCtx)
	case m.Render != "outline" && m.Render != "chronological":
		return fmt.Errorf("memory.render %q: want outline or chronological", m.Render)
	case m.CacheBytes < -1:
		return fmt.Errorf("memory.cache_bytes %d: want a byte count, 0 for the default or -1 for no bound", m.CacheBytes)
	case m.PinShare <= 0 || m.PinShare > 1:
		return fmt.Errorf("memory.pin_share %v: want a share in (0, 1]", m.PinShare)
	case m.KeepWindows < -1 || m.KeepWindows > 10000:
		return fmt.Errorf("memory.keep_windows %d: want 1..10000, or -1 for none", m.KeepWindows)
	case m.TailPercent < 5 || m.TailPercent > 95:
		return fmt.Errorf("memory.tail_percent %d: want 5..95", m.TailPercent)
	case c.Limits.MaxBodyBytes < 1024:
		return fmt.Errorf("limits.max_body_bytes %d: want >= 1024", c.Limits.MaxBodyBytes)
	case c.Limits.MaxMessages < 1:
		return fmt.Errorf("limits.max_messages %d: want >= 1", c.Limits.MaxMessages)
	case len(c.Headers.ContextID) == 0:
		return errors.New("headers.context_id: want at least one header name")
	}
	if _, err := auth.NewKeyring(c.Auth.Keys); err != nil {
		return fmt.Errorf("auth.keys: %w", err)
	}
	seen := map[string]bool{}
	for _, r := range c.Retention.Rules {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("retention.rules: %w", err)
		}
		if seen[r.Name] {
			return fmt.Errorf("retention.rules: two rules named %q", r.Name)
		}
		seen[r.Name] = true
	}
	if _, err := policy.Compile(c.Policy.Rules); err != nil {
		return fmt.Errorf("policy.rules: %w", err)
	}
	if _, _, err := c.Provenance.Keys(); err != nil {
		return err
	}
	return nil
}

// Keys loads the signing key (nil when none is configured) and the trusted
// public keys.
func (p Provenance) Keys() (ed25519.PrivateKey, []ed25519.PublicKey, error) {
	var signing ed25519.PrivateKey
	if p.SigningKey != "" {
		k, err := bundle.LoadPrivateKey(p.SigningKey)
		if err != nil {
			return nil, nil, fmt.Errorf("provenance.signing_key: %w", err)
		}
		signing = k
	}
	var trusted []ed25519.PublicKey
	for _, t := range p.TrustedKeys {
		k, err := bundle.LoadPublicKey(t)
		if err != nil {
			return nil, nil, fmt.Errorf("provenance.trusted_keys: %w", err)
		}
		trusted = append(trusted, k)
	}
	return signing, trusted, nil
}
