// Package auth maps API keys to tenants and scopes.
//
// A Keyring is built from configured keys, each given either in plain text
// or as "sha256:<hex>" of the key. Only SHA-256 digests are kept in memory;
// Authenticate hashes the key of an "Authorization: Bearer KEY" header and
// compares it with every stored digest in constant time. A Keyring with no
// keys is open: every caller is the DefaultTenant with no scopes.
package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// DefaultTenant is the tenant of every caller of an open Keyring.
const DefaultTenant = "default"

// hashPrefix prefixes the hex SHA-256 digest of a key in configuration.
const hashPrefix = "sha256:"

// Sentinel errors of Authenticate; test with errors.Is.
var (
	// ErrMissingKey means the request carries no bearer API key.
	ErrMissingKey = errors.New("auth: missing API key")
	// ErrUnknownKey means the bearer key matches no configured key.
	ErrUnknownKey = errors.New("auth: unknown API key")
)

// Key is one configured API key. Exactly one of Key and Hash is set.
type Key struct {
	// Key is the API key in plain text.
	Key string `mapstructure:"key" yaml:"key"`
	// Hash is "sha256:" and the hex SHA-256 digest of the key, for
	// configurations that must not hold the key itself (see HashKey).
	Hash string `mapstructure:"hash" yaml:"hash"`
	// Tenant names the tenant the key belongs to: 1 to 64 characters of
	// letters, digits, '.', '_' and '-'.
	Tenant string `mapstructure:"tenant" yaml:"tenant"`
	// Scopes lists what the key's holder is cleared for (policy scopes).
	Scopes []string `mapstructure:"scopes" yaml:"scopes"`
	// Mounts, when set, are the memories of the key's tenant its requests
	// draw on besides their own (mounted read-only), and the only ones they
	// may mount (X-MegaContext-Mount naming another is refused). Unset, the
	// key gets memory.mounts and may mount any memory of its tenant.
	Mounts []string `mapstructure:"mounts" yaml:"mounts"`
}

// Principal is an authenticated caller.
type Principal struct {
	// Tenant is the caller's tenant: the hard isolation boundary.
	Tenant string
	// Scopes lists what the caller is cleared for.
	Scopes []string
	// KeyID names the caller's key in records of what it did (provenance):
	// "sha256:" and the first 16 hex digits of the key's digest, which
	// match the start of its configured hash; empty on an open Keyring.
	KeyID string
	// Mounts are the key's configured mounts; MountsSet says they were
	// configured (an empty list then mounts nothing and allows nothing).
	Mounts    []string
	MountsSet bool
}

// Caller names the principal in records: its tenant and its key.
func (p Principal) Caller() string {
	if p.KeyID == "" {
		return p.Tenant
	}
	return p.Tenant + " " + p.KeyID
}

// Has reports whether p holds scope.
func (p Principal) Has(scope string) bool {
	return slices.Contains(p.Scopes, scope)
}

// Keyring authenticates API keys. It is immutable and safe for concurrent
// use. A nil or empty Keyring is open.
type Keyring struct {
	entries []entry
}

type entry struct {
	digest    [sha256.Size]byte
	tenant    string
	scopes    []string
	mounts    []string
	mountsSet bool
}

// NewKeyring validates keys and builds a Keyring holding only their
// digests. It rejects a key with both or neither of Key and Hash, a
// malformed hash, keys holding whitespace or control characters, invalid
// tenant names, empty scopes, and the same key configured twice (in plain
// text or hashed). No keys make an open Keyring.
func NewKeyring(keys []Key) (*Keyring, error) {
	k := &Keyring{entries: make([]entry, 0, len(keys))}
	seen := make(map[[sha256.Size]byte]int, len(keys))
	for i, key := range keys {
		e, err := newEntry(key)
		if err != nil {
			return nil, fmt.Errorf("auth: key %d (tenant %q): %w", i, key.Tenant, err)
		}
		if j, dup := seen[e.digest]; dup {
			return nil, fmt.Errorf("auth: key %d (tenant %q): same key as key %d", i, key.Tenant, j)
		}
		seen[e.digest] = i
		k.entries = append(k.entries, e)
	}
	return k, nil
}

func newEntry(key Key) (entry, error) {
	e := entry{tenant: key.Tenant}
	if !validTenant(key.Tenant) {
		return e, fmt.Errorf("invalid tenant name %q: want 1 to 64 of A-Z a-z 0-9 . _ -", key.Tenant)
	}
	switch {
	case key.Key != "" && key.Hash != "":
		return e, errors.New("both key and hash are set; use one")
	case key.Key != "":
		if strings.IndexFunc(key.Key, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
			return e, errors.New("key holds whitespace or control characters")
		}
		e.digest = sha256.Sum256([]byte(key.Key))
	case key.Hash != "":
		d, err := parseHash(key.Hash)
		if err != nil {
			return e, err
		}
		e.digest = d
	default:
		return e, errors.New("neither key nor hash is set")
	}
	for _, s := range key.Scopes {
		if strings.TrimSpace(s) == "" || strings.ContainsAny(s, " \t\r\n") {
			return e, fmt.Errorf("invalid scope %q", s)
		}
	}
	e.scopes = slices.Clone(key.Scopes)
	for _, m := range key.Mounts {
		if strings.TrimSpace(m) == "" || strings.ContainsAny(m, ",\x00\r\n") {
			return e, fmt.Errorf("invalid mount %q", m)
		}
	}
	e.mounts, e.mountsSet = slices.Clone(key.Mounts), key.Mounts != nil
	return e, nil
}

// parseHash parses "sha256:<64 hex digits>" (hex in either case).
func parseHash(h string) ([sha256.Size]byte, error) {
	var d [sha256.Size]byte
	hx, ok := strings.CutPrefix(h, hashPrefix)
	if !ok {
		return d, fmt.Errorf("malformed hash: want %q and 64 hex digits", hashPrefix)
	}
	if len(hx) != 2*sha256.Size {
		return d, fmt.Errorf("malformed hash: %d hex digits, want %d", len(hx), 2*sha256.Size)
	}
	if _, err := hex.Decode(d[:], []byte(hx)); err != nil {
		return d, fmt.Errorf("malformed hash: %w", err)
	}
	return d, nil
}

// validTenant reports whether name matches [A-Za-z0-9._-]{1,64}.
func validTenant(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Open reports whether no keys are configured, so that every caller is
// admitted as DefaultTenant.
func (k *Keyring) Open() bool {
	return k == nil || len(k.entries) == 0
}

// Len returns the number of configured keys.
func (k *Keyring) Len() int {
	if k == nil {
		return 0
	}
	return len(k.entries)
}

// Authenticate returns the principal of the API key in an Authorization
// header value of the form "Bearer KEY" (scheme in any case, surrounding
// whitespace ignored). The key's digest is compared with every configured
// digest in constant time. It returns ErrMissingKey when the header holds
// no bearer key and ErrUnknownKey when the key matches none. An open
// Keyring admits every caller, with or without a header, as DefaultTenant
// with no scopes.
func (k *Keyring) Authenticate(authorization string) (Principal, error) {
	if k.Open() {
		return Principal{Tenant: DefaultTenant}, nil
	}
	key, err := ParseBearer(authorization)
	if err != nil {
		return Principal{}, err
	}
	digest := sha256.Sum256([]byte(key))
	found, idx := 0, 0
	for i := range k.entries {
		eq := subtle.ConstantTimeCompare(digest[:], k.entries[i].digest[:])
		idx = subtle.ConstantTimeSelect(eq, i, idx)
		found |= eq
	}
	if found == 0 {
		return Principal{}, ErrUnknownKey
	}
	e := &k.entries[idx]
	return Principal{Tenant: e.tenant, Scopes: slices.Clone(e.scopes), KeyID: hashPrefix + hex.EncodeToString(e.digest[:8]),
		Mounts: slices.Clone(e.mounts), MountsSet: e.mountsSet}, nil
}

// ParseBearer extracts the key from an Authorization header value of the
// form "Bearer KEY": the scheme is matched in any case and whitespace
// around the scheme and the key is ignored. It returns an error wrapping
// ErrMissingKey when the value is empty, uses another scheme, or has an
// empty key.
func ParseBearer(authorization string) (string, error) {
	v := strings.TrimSpace(authorization)
	if v == "" {
		return "", ErrMissingKey
	}
	scheme, rest, _ := strings.Cut(v, " ")
	if t, r, ok := strings.Cut(scheme, "\t"); ok { // "Bearer\tKEY"
		scheme, rest = t, r+" "+rest
	}
	if !strings.EqualFold(scheme, "bearer") {
		if !isSchemeName(scheme) {
			// Likely a bare key: never echo it into errors and logs.
			return "", fmt.Errorf("%w: authorization scheme missing (want \"Bearer KEY\")", ErrMissingKey)
		}
		return "", fmt.Errorf("%w: unsupported authorization scheme %q", ErrMissingKey, scheme)
	}
	key := strings.TrimSpace(rest)
	if key == "" {
		return "", fmt.Errorf("%w: empty bearer token", ErrMissingKey)
	}
	return key, nil
}

// isSchemeName reports whether s looks like an HTTP authentication scheme
// name (Basic, Digest, Negotiate…) rather than a credential.
func isSchemeName(s string) bool {
	if s == "" || len(s) > 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// HashKey returns the configuration form of a key's digest,
// "sha256:<hex>", for use in Key.Hash.
func HashKey(key string) string {
	d := sha256.Sum256([]byte(key))
	return hashPrefix + hex.EncodeToString(d[:])
}
