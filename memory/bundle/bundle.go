// Package bundle reads and writes .mcx snapshot bundles: portable,
// versioned, streamable files that carry one MegaContext, under a root hash
// over every byte.
//
// A bundle is JSON Lines: one JSON object per line, each ending in '\n' and
// starting with its "type" member. The first record is the header (type
// "bundle", with the format name and version); records of one type form a
// section, and sections follow one another (a type never comes back once
// another started). Then come two trailer records:
//
//	{"type":"manifest","sections":[{"type":T,"records":N,"hash":H}, ...]}
//	{"type":"root","root":R[,"public_key":K,"signature":S]}
//
// H is the Merkle tree hash of the section's records (RFC 6962: a leaf is
// SHA-256(0x00 || line), an inner node SHA-256(0x01 || left || right), the
// line without its '\n'), so that one record can be proven part of a
// section with log2(N) hashes. R is SHA-256(0x02 || manifest line). A
// signed bundle carries the signer's ed25519 public key K and the
// signature S of "megacontext-snapshot-root:" + R (both standard base64).
//
// Both ends stream: the Writer hashes records as they go and the Reader
// verifies them as they come, holding O(log N) hashes, never the bundle.
// The Reader reports the end of the bundle only once the manifest, the
// root and the signature have been checked, so a caller that stores what it
// read only after io.EOF stores nothing from a damaged bundle. Every byte of
// a bundle is covered: a changed, missing or added byte anywhere fails the
// read.
package bundle

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
)

// Format names the bundle format in the header record.
const Format = "megacontext-snapshot"

// Version is the format version this package writes and the newest it reads.
const Version = 1

// Record types with a meaning to this package.
const (
	// TypeHeader is the first record's type.
	TypeHeader = "bundle"
	// typeManifest and typeRoot are the trailer records' types.
	typeManifest = "manifest"
	typeRoot     = "root"
)

// signPrefix is what a signature signs, followed by the hex root: a
// signature over a bundle root can never be mistaken for another message.
const signPrefix = "megacontext-snapshot-root:"

// DefaultMaxRecordBytes bounds one record line when ReadOptions sets none.
const DefaultMaxRecordBytes = 64 << 20

// Errors of reading, each wrapped with the details; test with errors.Is.
var (
	// ErrFormat means the input is not a bundle this version can read.
	ErrFormat = errors.New("not a MegaContext snapshot this version can read")
	// ErrTruncated means the bundle ends before its root record.
	ErrTruncated = errors.New("snapshot is truncated")
	// ErrTampered means a hash does not match: the bundle was altered or damaged.
	ErrTampered = errors.New("snapshot integrity check failed: the bundle was altered or damaged")
	// ErrSignature means the signature is missing, invalid, or by an untrusted key.
	ErrSignature = errors.New("snapshot signature check failed")
)

// Section describes one section in the manifest.
type Section struct {
	// Type is the record type of the section.
	Type string `json:"type"`
	// Records is the number of records in the section.
	Records int64 `json:"records"`
	// Hash is the hex Merkle tree hash of the section's records.
	Hash string `json:"hash"`
}

// manifest is the first trailer record.
type manifest struct {
	Type     string    `json:"type"`
	Sections []Section `json:"sections"`
}

// rootRecord is the last record.
type rootRecord struct {
	Type      string `json:"type"`
	Root      string `json:"root"`
	PublicKey string `json:"public_key,omitempty"`
	Signature string `json:"signature,omitempty"`
}

// header is what this package reads of the first record.
type header struct {
	Type    string `json:"type"`
	Format  string `json:"format"`
	Version int    `json:"version"`
}

// Root is the verified identity of a bundle.
type Root struct {
	// Hash is the root hash over the whole bundle.
	Hash [32]byte
	// Sections is the manifest, in bundle order.
	Sections []Section
	// Signer is the public key that signed the root; nil when unsigned.
	Signer ed25519.PublicKey
	// Bytes is the size of the bundle in bytes.
	Bytes int64
}

// String returns the root hash in hex, as the X-MegaContext-Root header
// and the CLI print it.
func (r Root) String() string { return hex.EncodeToString(r.Hash[:]) }

// SignerString returns the signer's public key in standard base64, or "".
func (r Root) SignerString() string {
	if r.Signer == nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(r.Signer)
}

// merkle computes an RFC 6962 Merkle tree hash over a stream of leaves,
// holding one hash per set bit of the leaf count.
type merkle struct {
	// stack holds the roots of complete subtrees, largest first; sizes
	// are distinct powers of two.
	stack []subtree
	n     int64
	h     hash.Hash
}

type subtree struct {
	sum  [32]byte
	size int64
}

func newMerkle() *merkle { return &merkle{h: sha256.New()} }

func (m *merkle) add(line []byte) {
	var leaf [32]byte
	m.h.Reset()
	m.h.Write([]byte{0})
	m.h.Write(line)
	m.h.Sum(leaf[:0])
	m.stack = append(m.stack, subtree{leaf, 1})
	m.n++
	for k := len(m.stack); k >= 2 && m.stack[k-1].size == m.stack[k-2].size; k = len(m.stack) {
		m.stack[k-2] = subtree{m.node(m.stack[k-2].sum, m.stack[k-1].sum), 2 * m.stack[k-1].size}
		m.stack = m.stack[:k-1]
	}
}

func (m *merkle) node(l, r [32]byte) [32]byte {
	var out [32]byte
	m.h.Reset()
	m.h.Write([]byte{1})
	m.h.Write(l[:])
	m.h.Write(r[:])
	m.h.Sum(out[:0])
	return out
}

// sum returns the tree hash: the complete subtrees folded from the right,
// which is RFC 6962's split at the largest power of two below n.
func (m *merkle) sum() [32]byte {
	if len(m.stack) == 0 {
		return sha256.Sum256(nil)
	}
	acc := m.stack[len(m.stack)-1].sum
	for i := len(m.stack) - 2; i >= 0; i-- {
		acc = m.node(m.stack[i].sum, acc)
	}
	return acc
}

// rootOf is the root hash of a manifest line.
func rootOf(manifestLine []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte{2})
	h.Write(manifestLine)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// recordType returns the type of a record line, which must start with
// {"type":"...". It returns "" when the line does not.
func recordType(line []byte) string {
	const prefix = `{"type":"`
	if !bytes.HasPrefix(line, []byte(prefix)) {
		return ""
	}
	rest := line[len(prefix):]
	end := bytes.IndexByte(rest, '"')
	if end <= 0 || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return ""
	}
	return string(rest[:end])
}

// Writer writes a bundle record by record. It is not safe for concurrent use.
type Writer struct {
	bw       *bufio.Writer
	key      ed25519.PrivateKey
	sections []Section
	tree     *merkle
	seen     map[string]bool
	bytes    int64
	err      error
}

// NewWriter starts a bundle on w; key, when not nil, signs its root. The
// first record written must be the header (see Header).
func NewWriter(w io.Writer, key ed25519.PrivateKey) *Writer {
	return &Writer{bw: bufio.NewWriterSize(w, 256<<10), key: key, tree: newMerkle(), seen: map[string]bool{}}
}

// Header returns the fields every header record starts with; callers embed
// it first in their header struct (so "type" comes first).
func Header() HeaderFields {
	return HeaderFields{Type: TypeHeader, Format: Format, Version: Version}
}

// HeaderFields are the leading fields of a header record.
type HeaderFields struct {
	// Type is TypeHeader.
	Type string `json:"type"`
	// Format is Format.
	Format string `json:"format"`
	// Version is the format version.
	Version int `json:"version"`
}

// Write appends a record: v must marshal to a JSON object whose first
// member is "type" (a struct whose first field is `json:"type"`).
func (w *Writer) Write(v any) error {
	line, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("bundle: encode %T: %w", v, err)
	}
	return w.WriteLine(line)
}

// WriteLine appends an encoded record (without its '\n').
func (w *Writer) WriteLine(line []byte) error {
	if w.err != nil {
		return w.err
	}
	typ := recordType(line)
	switch {
	case typ == "" || typ == typeManifest || typ == typeRoot:
		w.err = fmt.Errorf("bundle: record must start with a non-reserved \"type\" member: %.40q", line)
	case bytes.IndexByte(line, '\n') >= 0:
		w.err = errors.New("bundle: record holds a raw line break")
	case len(w.sections) == 0 && typ != TypeHeader:
		w.err = fmt.Errorf("bundle: the first record must be the %q header, not %q", TypeHeader, typ)
	}
	if w.err != nil {
		return w.err
	}
	if n := len(w.sections); n == 0 || w.sections[n-1].Type != typ {
		if w.seen[typ] {
			w.err = fmt.Errorf("bundle: records of type %q are not contiguous", typ)
			return w.err
		}
		w.closeSection()
		w.seen[typ] = true
		w.sections = append(w.sections, Section{Type: typ})
	}
	w.sections[len(w.sections)-1].Records++
	w.tree.add(line)
	w.put(line)
	return w.err
}

func (w *Writer) put(line []byte) {
	if w.err != nil {
		return
	}
	if _, err := w.bw.Write(line); err != nil {
		w.err = err
		return
	}
	w.err = w.bw.WriteByte('\n')
	w.bytes += int64(len(line)) + 1
}

// closeSection stores the current section's hash and starts a new tree.
func (w *Writer) closeSection() {
	if n := len(w.sections); n > 0 {
		s := w.tree.sum()
		w.sections[n-1].Hash = hex.EncodeToString(s[:])
	}
	w.tree = newMerkle()
}

// Close writes the manifest and the (signed) root and flushes. It does not
// close the underlying writer.
func (w *Writer) Close() (Root, error) {
	if w.err != nil {
		return Root{}, w.err
	}
	if len(w.sections) == 0 {
		return Root{}, errors.New("bundle: no header written")
	}
	w.closeSection()
	mline, err := json.Marshal(manifest{Type: typeManifest, Sections: w.sections})
	if err != nil {
		return Root{}, err
	}
	w.put(mline)
	root := Root{Hash: rootOf(mline), Sections: w.sections}
	rr := rootRecord{Type: typeRoot, Root: root.String()}
	if w.key != nil {
		root.Signer = w.key.Public().(ed25519.PublicKey)
		rr.PublicKey = base64.StdEncoding.EncodeToString(root.Signer)
		rr.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(w.key, []byte(signPrefix+rr.Root)))
	}
	rline, err := json.Marshal(rr)
	if err != nil {
		return Root{}, err
	}
	w.put(rline)
	if w.err == nil {
		w.err = w.bw.Flush()
	}
	root.Bytes = w.bytes
	if w.err != nil {
		return Root{}, fmt.Errorf("bundle: write: %w", w.err)
	}
	w.err = errors.New("bundle: writer closed")
	return root, nil
}

// ReadOptions configure a Reader.
type ReadOptions struct {
	// MaxRecordBytes bounds one record; 0 uses DefaultMaxRecordBytes.
	MaxRecordBytes int
	// Trusted, when not empty, requires the root to be signed by one of
	// these keys. A signature is always checked when present.
	Trusted []ed25519.PublicKey
}

// Reader reads and verifies a bundle record by record.
type Reader struct {
	br       *bufio.Reader
	opts     ReadOptions
	buf      []byte
	sections []Section
	tree     *merkle
	seen     map[string]bool
	bytes    int64
	root     Root
	done     bool
	err      error
}

// NewReader starts reading a bundle from r.
func NewReader(r io.Reader, opts ReadOptions) *Reader {
	if opts.MaxRecordBytes <= 0 {
		opts.MaxRecordBytes = DefaultMaxRecordBytes
	}
	return &Reader{br: bufio.NewReaderSize(r, 64<<10), opts: opts, tree: newMerkle(), seen: map[string]bool{}}
}

// line reads the next line without its '\n'; io.EOF at a clean end.
func (r *Reader) line() ([]byte, error) {
	r.buf = r.buf[:0]
	for {
		chunk, err := r.br.ReadSlice('\n')
		r.buf = append(r.buf, chunk...)
		if len(r.buf) > r.opts.MaxRecordBytes+1 {
			return nil, fmt.Errorf("%w: a record is longer than %d bytes", ErrFormat, r.opts.MaxRecordBytes)
		}
		switch {
		case err == nil:
			r.bytes += int64(len(r.buf))
			return r.buf[:len(r.buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(r.buf) == 0:
			return nil, io.EOF
		case errors.Is(err, io.EOF):
			return nil, fmt.Errorf("%w: the last record has no line end (%d bytes)", ErrTruncated, len(r.buf))
		default:
			return nil, err
		}
	}
}

// Next returns the next record's type and line (without '\n'; the slice is
// reused by the next call). After the last record it verifies the
// manifest, the root and the signature, and returns io.EOF only when all
// hold; Root then describes the bundle.
func (r *Reader) Next() (typ string, line []byte, err error) {
	if r.err != nil {
		return "", nil, r.err
	}
	typ, line, err = r.next()
	if err != nil {
		r.err = err
	}
	return typ, line, err
}

func (r *Reader) next() (string, []byte, error) {
	line, err := r.line()
	if errors.Is(err, io.EOF) {
		if len(r.sections) == 0 {
			return "", nil, fmt.Errorf("%w: the input is empty", ErrFormat)
		}
		return "", nil, fmt.Errorf("%w: it ends after %d records, before its manifest and root", ErrTruncated, r.records())
	}
	if err != nil {
		return "", nil, err
	}
	typ := recordType(line)
	if len(r.sections) == 0 {
		if err := checkHeader(line, typ); err != nil {
			return "", nil, err
		}
	}
	switch typ {
	case "":
		return "", nil, fmt.Errorf("%w: record %d does not start with a \"type\" member", ErrTampered, r.records()+1)
	case typeManifest:
		return "", nil, r.finish(line)
	case typeRoot:
		return "", nil, fmt.Errorf("%w: root record before the manifest", ErrTampered)
	}
	if n := len(r.sections); n == 0 || r.sections[n-1].Type != typ {
		if r.seen[typ] {
			return "", nil, fmt.Errorf("%w: records of type %q are not contiguous", ErrTampered, typ)
		}
		r.closeSection()
		r.seen[typ] = true
		r.sections = append(r.sections, Section{Type: typ})
	}
	r.sections[len(r.sections)-1].Records++
	r.tree.add(line)
	return typ, line, nil
}

func (r *Reader) records() int64 {
	var n int64
	for _, s := range r.sections {
		n += s.Records
	}
	return n
}

func (r *Reader) closeSection() {
	if n := len(r.sections); n > 0 {
		s := r.tree.sum()
		r.sections[n-1].Hash = hex.EncodeToString(s[:])
	}
	r.tree = newMerkle()
}

// checkHeader checks the first record: a header of a known format and a
// version this package reads.
func checkHeader(line []byte, typ string) error {
	if typ != TypeHeader {
		return fmt.Errorf("%w: the first record is not a %q header", ErrFormat, TypeHeader)
	}
	var h header
	if err := json.Unmarshal(line, &h); err != nil {
		return fmt.Errorf("%w: header: %v", ErrFormat, err)
	}
	if h.Format != Format {
		return fmt.Errorf("%w: format %q, want %q", ErrFormat, h.Format, Format)
	}
	if h.Version < 1 || h.Version > Version {
		return fmt.Errorf("%w: format version %d (this binary reads 1 to %d)", ErrFormat, h.Version, Version)
	}
	return nil
}

// finish verifies the manifest line, the root record and the end of input.
func (r *Reader) finish(mline []byte) error {
	r.closeSection()
	var m manifest
	if err := strictDecode(mline, &m); err != nil {
		return fmt.Errorf("%w: manifest: %v", ErrTampered, err)
	}
	if len(m.Sections) != len(r.sections) {
		return fmt.Errorf("%w: the manifest lists %d sections, the bundle holds %d", ErrTampered, len(m.Sections), len(r.sections))
	}
	for i, s := range m.Sections {
		got := r.sections[i]
		switch {
		case s.Type != got.Type:
			return fmt.Errorf("%w: section %d is %q, the manifest says %q", ErrTampered, i, got.Type, s.Type)
		case s.Records != got.Records:
			return fmt.Errorf("%w: section %q holds %d records, the manifest says %d", ErrTampered, s.Type, got.Records, s.Records)
		case s.Hash != got.Hash:
			return fmt.Errorf("%w: section %q hash mismatch", ErrTampered, s.Type)
		}
	}
	root := rootOf(mline)
	rline, err := r.line()
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: it ends after its manifest, before its root", ErrTruncated)
	}
	if err != nil {
		return err
	}
	var rr rootRecord
	if err := strictDecode(rline, &rr); err != nil || rr.Type != typeRoot {
		return fmt.Errorf("%w: root record: %v", ErrTampered, err)
	}
	if rr.Root != hex.EncodeToString(root[:]) {
		return fmt.Errorf("%w: the root does not match the manifest", ErrTampered)
	}
	r.root = Root{Hash: root, Sections: r.sections}
	if err := r.checkSignature(rr); err != nil {
		return err
	}
	if _, err := r.br.ReadByte(); !errors.Is(err, io.EOF) {
		if err == nil {
			return fmt.Errorf("%w: data after the root record", ErrTampered)
		}
		return err
	}
	r.root.Bytes = r.bytes
	r.done = true
	return io.EOF
}

func (r *Reader) checkSignature(rr rootRecord) error {
	if rr.PublicKey == "" && rr.Signature == "" {
		if len(r.opts.Trusted) > 0 {
			return fmt.Errorf("%w: the bundle is not signed, and a signature by a trusted key is required", ErrSignature)
		}
		return nil
	}
	pub, err := decodeB64(rr.PublicKey, ed25519.PublicKeySize)
	if err != nil {
		return fmt.Errorf("%w: public key: %v", ErrTampered, err)
	}
	sig, err := decodeB64(rr.Signature, ed25519.SignatureSize)
	if err != nil {
		return fmt.Errorf("%w: signature: %v", ErrTampered, err)
	}
	if !ed25519.Verify(pub, []byte(signPrefix+rr.Root), sig) {
		return fmt.Errorf("%w: the signature does not match the root and the bundle's key", ErrSignature)
	}
	if len(r.opts.Trusted) > 0 {
		trusted := false
		for _, k := range r.opts.Trusted {
			trusted = trusted || k.Equal(ed25519.PublicKey(pub))
		}
		if !trusted {
			return fmt.Errorf("%w: signed by %s, which is not a trusted key", ErrSignature, rr.PublicKey)
		}
	}
	r.root.Signer = pub
	return nil
}

// decodeB64 decodes canonical standard base64 of exactly n bytes.
func decodeB64(s string, n int) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, err
	}
	if len(b) != n || base64.StdEncoding.EncodeToString(b) != s {
		return nil, fmt.Errorf("want canonical base64 of %d bytes", n)
	}
	return b, nil
}

// strictDecode decodes line into v, refusing any line that is not exactly
// how v encodes (unknown members, other spacing or escapes, other order),
// so that no byte of it escapes the check.
func strictDecode(line []byte, v any) error {
	// Unknown members do not survive the round trip below.
	if err := json.Unmarshal(line, v); err != nil {
		return err
	}
	again, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if !bytes.Equal(again, line) {
		return errors.New("not in canonical form")
	}
	return nil
}

// Root returns the verified root; valid once Next returned io.EOF.
func (r *Reader) Root() (Root, bool) { return r.root, r.done }

// Verify reads a whole bundle, checking every hash and the signature, and
// returns its root.
func Verify(src io.Reader, opts ReadOptions) (Root, error) {
	r := NewReader(src, opts)
	for {
		_, _, err := r.Next()
		if errors.Is(err, io.EOF) {
			root, _ := r.Root()
			return root, nil
		}
		if err != nil {
			return Root{}, err
		}
	}
}

// Canonical reports whether line is exactly how v, decoded from it,
// encodes again: callers check records this way so that a round trip
// through storage reproduces the bundle byte for byte.
func Canonical(line []byte, v any) error { return strictDecode(line, v) }
