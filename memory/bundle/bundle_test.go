package bundle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

type testHeader struct {
	HeaderFields
	Context string `json:"context"`
}

type testRecord struct {
	Type string `json:"type"`
	N    int    `json:"n"`
	Text string `json:"text"`
}

// sample writes a bundle with the given section sizes.
func sample(t testing.TB, key ed25519.PrivateKey, sizes ...int) ([]byte, Root) {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf, key)
	if err := w.Write(testHeader{HeaderFields: Header(), Context: "ctx"}); err != nil {
		t.Fatal(err)
	}
	for s, n := range sizes {
		for i := 0; i < n; i++ {
			if err := w.Write(testRecord{Type: fmt.Sprintf("sec%d", s), N: i, Text: strings.Repeat("x", i%7) + "é\"<"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	root, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), root
}

func readAll(b []byte, opts ReadOptions) (Root, []string, error) {
	r := NewReader(bytes.NewReader(b), opts)
	var types []string
	for {
		typ, _, err := r.Next()
		if errors.Is(err, io.EOF) {
			root, ok := r.Root()
			if !ok {
				return Root{}, nil, errors.New("EOF without a root")
			}
			return root, types, nil
		}
		if err != nil {
			return Root{}, nil, err
		}
		types = append(types, typ)
	}
}

func TestRoundTrip(t *testing.T) {
	b, root := sample(t, nil, 3, 0, 5)
	got, types, err := readAll(b, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Hash != root.Hash || got.Bytes != int64(len(b)) || root.Bytes != int64(len(b)) || got.Signer != nil {
		t.Fatalf("read root %v (%d bytes), wrote %v (%d bytes), bundle %d bytes", got, got.Bytes, root, root.Bytes, len(b))
	}
	if len(types) != 1+3+5 || types[0] != TypeHeader || types[8] != "sec2" {
		t.Fatalf("types %v", types)
	}
	if len(got.Sections) != 3 || got.Sections[2].Records != 5 {
		t.Fatalf("sections %+v", got.Sections)
	}
}

// rfc6962 is the recursive definition of the Merkle tree hash.
func rfc6962(leaves [][]byte) [32]byte {
	switch len(leaves) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return sha256.Sum256(append([]byte{0}, leaves[0]...))
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	l, r := rfc6962(leaves[:k]), rfc6962(leaves[k:])
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

func TestMerkleMatchesRFC6962Property(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		leaves := rapid.SliceOfN(rapid.SliceOfN(rapid.Byte(), 0, 8), 0, 70).Draw(t, "leaves")
		m := newMerkle()
		for _, l := range leaves {
			m.add(l)
		}
		if got, want := m.sum(), rfc6962(leaves); got != want {
			t.Fatalf("streaming %x, recursive %x", got, want)
		}
	})
}

func TestRootIsTheManifestHash(t *testing.T) {
	b, root := sample(t, nil, 2)
	lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	mline := lines[len(lines)-2]
	want := sha256.Sum256(append([]byte{2}, mline...))
	if root.Hash != want {
		t.Fatalf("root %x, sha256(2||manifest) %x", root.Hash, want)
	}
	leaves := lines[1:3]
	sec := rfc6962(leaves)
	if !bytes.Contains(mline, []byte(hex.EncodeToString(sec[:]))) {
		t.Fatalf("manifest %s lacks the section hash %x", mline, sec)
	}
}

// TestEveryByteIsCovered flips every byte of a signed bundle in several
// ways, truncates it at every length and appends to it: each must fail.
func TestEveryByteIsCovered(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	b, _ := sample(t, priv, 2, 1)
	for i := range b {
		for _, x := range []byte{0x01, 0x20, 0x80, 0xff} {
			m := bytes.Clone(b)
			m[i] ^= x
			if _, _, err := readAll(m, ReadOptions{}); err == nil {
				t.Fatalf("byte %d ^ %#x (%q -> %q) not detected", i, x, b[i], m[i])
			}
		}
	}
	for n := 0; n < len(b); n++ {
		if _, _, err := readAll(b[:n], ReadOptions{}); err == nil {
			t.Fatalf("truncation to %d of %d bytes not detected", n, len(b))
		}
	}
	if _, _, err := readAll(append(bytes.Clone(b), '\n'), ReadOptions{}); err == nil {
		t.Fatal("trailing data not detected")
	}
}

func TestErrorsSayWhat(t *testing.T) {
	b, _ := sample(t, nil, 3)
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrFormat},
		{"not a bundle", []byte("hello\n"), ErrFormat},
		{"newer version", bytes.Replace(b, []byte(`"version":1`), []byte(`"version":9`), 1), ErrFormat},
		{"truncated", b[:len(b)/2], ErrTruncated},
		{"record changed", bytes.Replace(b, []byte(`"n":1`), []byte(`"n":7`), 1), ErrTampered},
	}
	for _, c := range cases {
		_, _, err := readAll(c.in, ReadOptions{})
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestSignatures(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	other, _, _ := ed25519.GenerateKey(nil)
	signed, root := sample(t, priv, 2)
	got, _, err := readAll(signed, ReadOptions{Trusted: []ed25519.PublicKey{pub}})
	if err != nil || !got.Signer.Equal(pub) || got.Hash != root.Hash {
		t.Fatalf("trusted signed bundle: %v, signer %x", err, got.Signer)
	}
	if _, _, err := readAll(signed, ReadOptions{Trusted: []ed25519.PublicKey{other}}); !errors.Is(err, ErrSignature) {
		t.Fatalf("untrusted signer: %v", err)
	}
	unsigned, _ := sample(t, nil, 2)
	if _, _, err := readAll(unsigned, ReadOptions{Trusted: []ed25519.PublicKey{pub}}); !errors.Is(err, ErrSignature) {
		t.Fatalf("unsigned with a trusted key required: %v", err)
	}
	// A bundle re-signed by someone else keeps its root but not its signer.
	_, priv2, _ := ed25519.GenerateKey(nil)
	resigned, root2 := sample(t, priv2, 2)
	if root2.Hash != root.Hash {
		t.Fatal("the root depends on the key")
	}
	if _, _, err := readAll(resigned, ReadOptions{Trusted: []ed25519.PublicKey{pub}}); !errors.Is(err, ErrSignature) {
		t.Fatalf("bundle signed by another key: %v", err)
	}
}

func TestWriterRefusesMalformedRecords(t *testing.T) {
	for name, recs := range map[string][]any{
		"no header first": {testRecord{Type: "a"}},
		"reserved type":   {testHeader{HeaderFields: Header()}, testRecord{Type: "manifest"}},
		"not contiguous":  {testHeader{HeaderFields: Header()}, testRecord{Type: "a"}, testRecord{Type: "b"}, testRecord{Type: "a"}},
		"no type member":  {testHeader{HeaderFields: Header()}, struct{ N int }{1}},
		"type not leading": {testHeader{HeaderFields: Header()}, struct {
			N    int    `json:"n"`
			Type string `json:"type"`
		}{1, "a"}},
	} {
		w := NewWriter(io.Discard, nil)
		var err error
		for _, r := range recs {
			if err = w.Write(r); err != nil {
				break
			}
		}
		if err == nil {
			_, err = w.Close()
		}
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestKeys(t *testing.T) {
	privPEM, pubPEM, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(pubPEM)
	if err != nil || !pub.Equal(priv.Public()) {
		t.Fatalf("public key %v", err)
	}
	_, root := sample(t, priv, 1)
	b64, err := ParsePublicKey([]byte(root.SignerString() + "\n"))
	if err != nil || !b64.Equal(pub) {
		t.Fatalf("base64 public key: %v", err)
	}
	if _, err := ParsePrivateKey(pubPEM); err == nil {
		t.Fatal("a public key parsed as private")
	}
	if _, err := ParsePublicKey([]byte("c2hvcnQ=")); err == nil {
		t.Fatal("a short key parsed")
	}
}

// FuzzReader feeds arbitrary input: the reader must fail cleanly or verify.
func FuzzReader(f *testing.F) {
	b, _ := sample(f, nil, 2, 1)
	f.Add(b)
	f.Add([]byte(`{"type":"bundle","format":"megacontext-snapshot","version":1}` + "\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		root, _, err := readAll(in, ReadOptions{MaxRecordBytes: 1 << 16})
		if err == nil && root.Bytes != int64(len(in)) {
			t.Fatalf("verified %d of %d bytes", root.Bytes, len(in))
		}
	})
}

// FuzzTamper changes one byte of a valid signed bundle: always detected.
func FuzzTamper(f *testing.F) {
	_, priv, _ := ed25519.GenerateKey(nil)
	b, _ := sample(f, priv, 3, 2)
	f.Add(uint(0), byte(1))
	f.Add(uint(len(b)-2), byte(0x40))
	f.Fuzz(func(t *testing.T, pos uint, x byte) {
		if x == 0 {
			return
		}
		m := bytes.Clone(b)
		m[pos%uint(len(m))] ^= x
		if _, _, err := readAll(m, ReadOptions{}); err == nil {
			t.Fatalf("byte %d ^ %#x not detected", pos%uint(len(m)), x)
		}
	})
}
