package bundle

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// GenerateKey creates an ed25519 key pair and returns both in PEM: the
// private key as PKCS #8 ("PRIVATE KEY"), the public key as PKIX ("PUBLIC
// KEY"), the forms `openssl genpkey -algorithm ed25519` and `openssl pkey
// -pubout` write.
func GenerateKey() (private, public []byte, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, err
	}
	pder, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pder}), nil
}

// LoadPrivateKey reads an ed25519 signing key from a PEM file (PKCS #8).
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	k, err := ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return k, nil
}

// ParsePrivateKey parses an ed25519 private key in PEM (PKCS #8).
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("want a PEM \"PRIVATE KEY\" block (PKCS #8, ed25519)")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("the key is a %T, want ed25519", k)
	}
	return priv, nil
}

// LoadPublicKey reads an ed25519 public key: a file holding it in PEM
// (PKIX "PUBLIC KEY") or in standard base64 (as a bundle's root record and
// X-MegaContext-Signed-By carry it), or that base64 text itself.
func LoadPublicKey(pathOrKey string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(pathOrKey)
	if err != nil {
		if k, perr := ParsePublicKey([]byte(pathOrKey)); perr == nil {
			return k, nil
		}
		return nil, fmt.Errorf("public key: %w", err)
	}
	k, err := ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", pathOrKey, err)
	}
	return k, nil
}

// ParsePublicKey parses an ed25519 public key in PEM (PKIX) or base64.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("PEM block %q, want \"PUBLIC KEY\"", blk.Type)
		}
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, err
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("the key is a %T, want ed25519", k)
		}
		return pub, nil
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, errors.New("want PEM (PUBLIC KEY) or the base64 of a 32-byte ed25519 key")
	}
	return ed25519.PublicKey(raw), nil
}
