package auth

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func testKeyring(t *testing.T) *Keyring {
	t.Helper()
	k, err := NewKeyring([]Key{
		{Key: "alpha-key-0001", Tenant: "alpha", Scopes: []string{"pii", "ops"}},
		{Hash: HashKey("beta-key-0002"), Tenant: "beta"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestNewKeyringValidation(t *testing.T) {
	good := HashKey("k")
	cases := []struct {
		name string
		keys []Key
		want string
	}{
		{"bad tenant chars", []Key{{Key: "k1", Tenant: "a b"}}, "invalid tenant name"},
		{"empty tenant", []Key{{Key: "k1"}}, "invalid tenant name"},
		{"long tenant", []Key{{Key: "k1", Tenant: strings.Repeat("t", 65)}}, "invalid tenant name"},
		{"both", []Key{{Key: "k", Hash: good, Tenant: "t"}}, "both key and hash"},
		{"neither", []Key{{Tenant: "t"}}, "neither key nor hash"},
		{"no prefix", []Key{{Hash: good[7:], Tenant: "t"}}, "malformed hash"},
		{"short hash", []Key{{Hash: "sha256:abcd", Tenant: "t"}}, "malformed hash"},
		{"bad hex", []Key{{Hash: "sha256:" + strings.Repeat("zz", 32), Tenant: "t"}}, "malformed hash"},
		{"md5", []Key{{Hash: "md5:" + strings.Repeat("00", 16), Tenant: "t"}}, "malformed hash"},
		{"whitespace key", []Key{{Key: "a b", Tenant: "t"}}, "whitespace"},
		{"empty scope", []Key{{Key: "k", Tenant: "t", Scopes: []string{""}}}, "invalid scope"},
		{"duplicate plain", []Key{{Key: "k", Tenant: "a"}, {Key: "k", Tenant: "b"}}, "same key as key 0"},
		{"duplicate plain/hash", []Key{{Key: "k", Tenant: "a"}, {Hash: good, Tenant: "b"}}, "same key as key 0"},
		{"duplicate hash case", []Key{{Hash: good, Tenant: "a"}, {Hash: "sha256:" + strings.ToUpper(good[7:]), Tenant: "a"}}, "same key"},
	}
	for _, c := range cases {
		_, err := NewKeyring(c.keys)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to contain %q", c.name, err, c.want)
		}
	}
	for _, tenant := range []string{"a", "A.b_c-9", strings.Repeat("x", 64)} {
		if _, err := NewKeyring([]Key{{Key: "k", Tenant: tenant}}); err != nil {
			t.Errorf("tenant %q rejected: %v", tenant, err)
		}
	}
}

func TestAuthenticate(t *testing.T) {
	k := testKeyring(t)
	if k.Open() || k.Len() != 2 {
		t.Fatalf("Open=%v Len=%d", k.Open(), k.Len())
	}
	cases := []struct {
		header string
		tenant string
		scopes []string
		err    error
	}{
		{"Bearer alpha-key-0001", "alpha", []string{"pii", "ops"}, nil},
		{"bearer alpha-key-0001", "alpha", []string{"pii", "ops"}, nil},
		{"  BEARER   alpha-key-0001  ", "alpha", []string{"pii", "ops"}, nil},
		{"Bearer\talpha-key-0001", "alpha", []string{"pii", "ops"}, nil},
		{"Bearer beta-key-0002", "beta", nil, nil},
		{"", "", nil, ErrMissingKey},
		{"   ", "", nil, ErrMissingKey},
		{"Bearer", "", nil, ErrMissingKey},
		{"Bearer    ", "", nil, ErrMissingKey},
		{"Basic YWxhZGRpbjpvcGVuc2VzYW1l", "", nil, ErrMissingKey},
		{"alpha-key-0001", "", nil, ErrMissingKey},
		{"Bearer alpha-key-000", "", nil, ErrUnknownKey},
		{"Bearer alpha-key-00011", "", nil, ErrUnknownKey},
		{"Bearer ALPHA-KEY-0001", "", nil, ErrUnknownKey},
		{"Bearer alpha-key-0001 beta-key-0002", "", nil, ErrUnknownKey},
		{"Bearer " + HashKey("beta-key-0002"), "", nil, ErrUnknownKey}, // the hash is not the key
	}
	for _, c := range cases {
		p, err := k.Authenticate(c.header)
		if !errors.Is(err, c.err) || p.Tenant != c.tenant || !slices.Equal(p.Scopes, c.scopes) {
			t.Errorf("Authenticate(%q) = %+v, %v; want tenant %q scopes %q err %v", c.header, p, err, c.tenant, c.scopes, c.err)
		}
	}
	// Errors never echo a bare key.
	if _, err := k.Authenticate("alpha-key-0001"); strings.Contains(err.Error(), "alpha") {
		t.Errorf("error echoes the key: %v", err)
	}
}

func TestKeyNeverAuthenticatesAnotherTenant(t *testing.T) {
	var keys []Key
	for i, tenant := range []string{"t1", "t2", "t3", "t4"} {
		for j := range 3 {
			key := Key{Key: tenant + "-secret-" + string(rune('a'+j)), Tenant: tenant, Scopes: []string{tenant + "-scope"}}
			if (i+j)%2 == 1 {
				key = Key{Hash: HashKey(key.Key), Tenant: key.Tenant, Scopes: key.Scopes}
			}
			keys = append(keys, key)
		}
	}
	k, err := NewKeyring(keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, key := range keys {
		plain := key.Key
		if plain == "" {
			plain = []string{"t1", "t2", "t3", "t4"}[i/3] + "-secret-" + string(rune('a'+i%3))
		}
		p, err := k.Authenticate("Bearer " + plain)
		if err != nil || p.Tenant != key.Tenant || !p.Has(key.Tenant+"-scope") {
			t.Fatalf("key %d: %+v, %v", i, p, err)
		}
		for _, other := range []string{"t1", "t2", "t3", "t4"} {
			if other != key.Tenant && (p.Tenant == other || p.Has(other+"-scope")) {
				t.Fatalf("key %d of %s authenticated as %s", i, key.Tenant, other)
			}
		}
	}
	// Mutating a returned principal does not affect the keyring.
	p, _ := k.Authenticate("Bearer t1-secret-a")
	p.Scopes[0] = "t2-scope"
	if p2, _ := k.Authenticate("Bearer t1-secret-a"); p2.Has("t2-scope") {
		t.Fatal("principal scopes alias keyring state")
	}
}

func TestOpenKeyring(t *testing.T) {
	for _, k := range []*Keyring{nil, {}, must(NewKeyring(nil))} {
		if !k.Open() {
			t.Fatal("keyring without keys is not open")
		}
		p, err := k.Authenticate("")
		if err != nil || p.Tenant != DefaultTenant || len(p.Scopes) != 0 {
			t.Fatalf("open Authenticate = %+v, %v", p, err)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestHashKeyAndHas(t *testing.T) {
	// sha256("abc"), FIPS 180-2 test vector.
	if got := HashKey("abc"); got != "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("HashKey(abc) = %s", got)
	}
	p := Principal{Tenant: "t", Scopes: []string{"a", "b"}}
	if !p.Has("a") || p.Has("c") || (Principal{}).Has("") {
		t.Error("Has wrong")
	}
}

// FuzzParseBearer checks that the Authorization parser never panics, that
// what it accepts round-trips, and that Authenticate agrees with it.
func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{"", "Bearer k", "bearer\tk", "Basic x", " BEARER  k  ", "Bearer", "k", "Bearer a b", "Bearer \x00", "Bearer\u00a0k"} {
		f.Add(s)
	}
	k, err := NewKeyring([]Key{{Key: "secret-key", Tenant: "t"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, header string) {
		key, err := ParseBearer(header)
		if err != nil {
			if !errors.Is(err, ErrMissingKey) {
				t.Fatalf("ParseBearer error %v is not ErrMissingKey", err)
			}
			if _, aerr := k.Authenticate(header); !errors.Is(aerr, ErrMissingKey) {
				t.Fatalf("Authenticate error %v, ParseBearer %v", aerr, err)
			}
			return
		}
		if key == "" || key != strings.TrimSpace(key) {
			t.Fatalf("ParseBearer(%q) = %q", header, key)
		}
		if again, err := ParseBearer("Bearer " + key); err != nil || again != key {
			t.Fatalf("round trip of %q: %q, %v", key, again, err)
		}
		p, aerr := k.Authenticate(header)
		if (key == "secret-key") != (aerr == nil) || aerr == nil && p.Tenant != "t" || aerr != nil && !errors.Is(aerr, ErrUnknownKey) {
			t.Fatalf("Authenticate(%q) = %+v, %v", header, p, aerr)
		}
	})
}

func BenchmarkAuthenticate(b *testing.B) {
	var keys []Key
	for i := range 100 {
		keys = append(keys, Key{Key: "key-" + string(rune('A'+i%26)) + strings.Repeat("x", i), Tenant: "t"})
	}
	k := must(NewKeyring(keys))
	for b.Loop() {
		_, _ = k.Authenticate("Bearer key-Axxxxxx")
	}
}
