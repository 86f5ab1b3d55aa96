package configs

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/megacontext/megacontext/memory"
)

func TestDefaultYAMLEqualsDefaults(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(path, DefaultYAML, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := Defaults()
	if err := d.normalize(); err != nil {
		t.Fatal(err)
	}
	if c.Listen != d.Listen || c.Upstream != d.Upstream || !reflect.DeepEqual(c.Memory, d.Memory) || c.Limits != d.Limits || c.Native != d.Native || c.Tokenizer != d.Tokenizer || c.Embeddings != d.Embeddings ||
		strings.Join(c.Headers.ContextID, ",") != strings.Join(d.Headers.ContextID, ",") || c.Auth.AllowOpen || len(c.Auth.Keys) != 0 || len(c.Policy.Rules) != 0 {
		t.Fatalf("default file differs from built-in defaults:\n%+v\n%+v", c, d)
	}
}

func TestPrecedenceFileEnvFlag(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	yaml := "listen: 127.0.0.1:1111\nupstream:\n  url: http://file:1/v1\nmemory:\n  fanout: 4\nauth:\n  keys:\n    - {key: sk-a, tenant: acme, scopes: [basic, pii]}\npolicy:\n  rules:\n    - {name: cards, detector: credit_card, action: redact, allow_scopes: [pii]}\n"
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MEGACONTEXT_UPSTREAM_URL", "http://env:2")
	t.Setenv("MEGACONTEXT_MEMORY_FANOUT", "6")
	t.Setenv("MEGACONTEXT_SERVER_CORS_ORIGINS", "https://a.example, http://localhost:3000")
	t.Setenv("MEGACONTEXT_HEADERS_CONTEXT_ID", "X-OpenWebUI-User-Id, X-MegaContext-Id")
	t.Setenv("MEGACONTEXT_HEADERS_THREAD_ID", " X-OpenWebUI-Chat-Id ,X-MegaContext-Thread")
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	fs.String("listen", "", "")
	fs.String("upstream", "", "")
	if err := fs.Parse([]string{"--listen", "127.0.0.1:3333"}); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, fs, map[string]string{"listen": "listen", "upstream": "upstream.url"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:3333" {
		t.Errorf("flag lost: listen %q", c.Listen)
	}
	if c.Upstream.URL != "http://env:2" {
		t.Errorf("env lost: upstream %q", c.Upstream.URL)
	}
	if got := strings.Join(c.Server.CORSOrigins, " "); got != "https://a.example http://localhost:3000" {
		t.Errorf("env list lost: cors_origins %q", got)
	}
	// Every list from the environment is split at commas and trimmed.
	if got := strings.Join(c.Headers.ContextID, "|"); got != "X-OpenWebUI-User-Id|X-MegaContext-Id" {
		t.Errorf("env list: headers.context_id %q", got)
	}
	if got := strings.Join(c.Headers.ThreadID, "|"); got != "X-OpenWebUI-Chat-Id|X-MegaContext-Thread" {
		t.Errorf("env list: headers.thread_id %q", got)
	}
	if c.Memory.Fanout != 6 {
		t.Errorf("env lost: fanout %d", c.Memory.Fanout)
	}
	if len(c.Auth.Keys) != 1 || c.Auth.Keys[0].Tenant != "acme" || len(c.Auth.Keys[0].Scopes) != 2 {
		t.Errorf("keys: %+v", c.Auth.Keys)
	}
	if len(c.Policy.Rules) != 1 || c.Policy.Rules[0].Detector != "credit_card" {
		t.Errorf("rules: %+v", c.Policy.Rules)
	}
}

func TestInvalidConfigs(t *testing.T) {
	cases := []string{
		"upstream:\n  url: ftp://x\n",
		"memory:\n  fanout: 1\n",
		"upstream:\n  tokenize: magic\n",
		"upstream:\n  responses: sometimes\n",
		"server:\n  cors_origins: [example.com]\n",
		"server:\n  cors_origins: ['https://example.com/app']\n",
		"auth:\n  keys:\n    - {key: sk-a, tenant: 'bad tenant'}\n",
		"policy:\n  rules:\n    - {name: x, detector: nope, action: redact}\n",
		"policy:\n  rules:\n    - {name: x, pattern: '(', action: redact}\n",
		"listen: [\n",
		"data_sync: never\n",
		"store:\n  synchronous_commit: maybe\n",
		"limits:\n  max_messages: 0\n",
		"memory:\n  pin_share: 1.5\n",
		"memory:\n  keep_windows: -2\n",
		"retention:\n  rules:\n    - {older_than_days: 30}\n",
		"retention:\n  rules:\n    - {name: r, older_than_days: 0}\n",
		"retention:\n  rules:\n    - {name: r, older_than_days: 3}\n    - {name: r, older_than_days: 9}\n",
	}
	for _, y := range cases {
		path := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(path, nil, nil); err == nil {
			t.Errorf("accepted %q", y)
		}
	}
}

func FuzzLoad(f *testing.F) {
	f.Add(string(DefaultYAML))
	f.Add("auth:\n  keys:\n    - {key: k, tenant: t, scopes: [a]}\n")
	f.Add("policy:\n  rules:\n    - {name: n, pattern: 'a+', action: exclude}\n")
	f.Fuzz(func(t *testing.T, y string) {
		path := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path, nil, nil)
		if err == nil && (c.Memory.Fanout < 2 || c.Upstream.URL == "") {
			t.Fatalf("invalid config accepted: %+v", c)
		}
	})
}

// The default file documents every key: each built-in default appears in it.
// TestPostgresSynchronousCommit: "auto" makes data_sync's promise on
// PostgreSQL (second: commits do not wait for the WAL flush; always: the
// database's own setting); an explicit value goes to PostgreSQL as it is.
func TestPostgresSynchronousCommit(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"", "off"},
		{"data_sync: always\n", ""},
		{"data_sync: second\nstore:\n  synchronous_commit: auto\n", "off"},
		{"store:\n  synchronous_commit: on\n", "on"},
		{"data_sync: always\nstore:\n  synchronous_commit: remote_apply\n", "remote_apply"},
	} {
		path := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path, nil, nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		if got := c.PostgresSynchronousCommit(); got != tc.want {
			t.Errorf("%q: synchronous_commit %q, want %q", tc.yaml, got, tc.want)
		}
	}
}

func TestDefaultYAMLHasEveryKey(t *testing.T) {
	v := viper.New()
	setDefaults(v, Defaults())
	f := viper.New()
	f.SetConfigType("yaml")
	if err := f.ReadConfig(bytes.NewReader(DefaultYAML)); err != nil {
		t.Fatal(err)
	}
	for _, k := range v.AllKeys() {
		if !f.InConfig(k) {
			t.Errorf("key %q has a default but is not in configs/megacontext.yaml", k)
		}
	}
}

// Without --config, only megacontext.yaml (or .yml) in the working
// directory is read: viper's own search also tried the extension-less
// "megacontext", which is the binary after `go build .`, and failed with
// "yaml: control characters are not allowed".
func TestDefaultFileIgnoresBinary(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := os.WriteFile("megacontext", []byte("\x7fELF\x02\x01\x01\x00\x00binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	c, err := Load("", nil, nil)
	if err != nil {
		t.Fatalf("with the binary in the working directory: %v", err)
	}
	if c.Listen != Defaults().Listen {
		t.Errorf("listen %q, want the default", c.Listen)
	}
	if err := os.WriteFile("megacontext.yml", []byte("listen: 127.0.0.1:9999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err = Load("", nil, nil); err != nil || c.Listen != "127.0.0.1:9999" {
		t.Fatalf("megacontext.yml beside the binary: %v, listen %q", err, c.Listen)
	}
}

// TestCacheBytesDefaultIsTheEngines: the configured default is the
// engine's own.
func TestCacheBytesDefaultIsTheEngines(t *testing.T) {
	if Defaults().Memory.CacheBytes != memory.DefaultCacheBytes {
		t.Fatalf("memory.cache_bytes default %d, engine default %d", Defaults().Memory.CacheBytes, memory.DefaultCacheBytes)
	}
}

// TestRetentionRulesLoad: rules read from the file keep their fields.
func TestRetentionRulesLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	y := "retention:\n  rules:\n    - {name: stale, older_than_days: 365, never_expanded: true}\n    - {name: year, older_than_days: 400}\n"
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Retention.Rules; len(r) != 2 || r[0].Name != "stale" || r[0].OlderThanDays != 365 || !r[0].NeverExpanded || r[1].NeverExpanded {
		t.Errorf("rules %+v", r)
	}
}
