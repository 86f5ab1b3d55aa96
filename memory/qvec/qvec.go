// Package qvec stores embedding vectors compactly: symmetric int8
// quantization with one float32 scale per vector (4x smaller than
// float32), and similarity computed directly on the quantized form.
// It is pure Go and independent of the native libraries.
package qvec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Vector is a quantized vector: element i stands for Data[i] * Scale.
type Vector struct {
	Scale float32
	Data  []int8
}

// Quantize maps v to int8 with scale max|v|/127, rounding to nearest.
// The round-trip error of each element is at most Scale/2.
func Quantize(v []float32) Vector {
	var maxAbs float32
	for _, x := range v {
		if a := float32(math.Abs(float64(x))); a > maxAbs {
			maxAbs = a
		}
	}
	q := Vector{Data: make([]int8, len(v))}
	if maxAbs == 0 || math.IsNaN(float64(maxAbs)) || math.IsInf(float64(maxAbs), 0) {
		return q
	}
	q.Scale = maxAbs / 127
	inv := 127 / maxAbs
	for i, x := range v {
		r := math.Round(float64(x * inv))
		q.Data[i] = int8(max(-127, min(127, r)))
	}
	return q
}

// Dequantize returns the float32 approximation of q.
func (q Vector) Dequantize() []float32 {
	out := make([]float32, len(q.Data))
	for i, x := range q.Data {
		out[i] = float32(x) * q.Scale
	}
	return out
}

// dotInt returns the integer dot product of two equal-length vectors.
func dotInt(a, b []int8) int64 {
	var s int64
	for i := range a {
		s += int64(a[i]) * int64(b[i])
	}
	return s
}

// Dot returns the dot product of the vectors a and b stand for.
// It panics when their lengths differ.
func Dot(a, b Vector) float32 {
	mustSameLen(len(a.Data), len(b.Data))
	return float32(dotInt(a.Data, b.Data)) * a.Scale * b.Scale
}

// Cosine returns the cosine similarity of a and b computed on the int8
// values (the scales cancel); 0 when either is zero. It panics when their
// lengths differ.
func Cosine(a, b Vector) float32 {
	mustSameLen(len(a.Data), len(b.Data))
	na, nb := dotInt(a.Data, a.Data), dotInt(b.Data, b.Data)
	if na == 0 || nb == 0 {
		return 0
	}
	return float32(float64(dotInt(a.Data, b.Data)) / math.Sqrt(float64(na)*float64(nb)))
}

// CosineFloat32 returns the cosine similarity of two float32 vectors; 0
// when either is zero. It panics when their lengths differ.
func CosineFloat32(a, b []float32) float32 {
	mustSameLen(len(a), len(b))
	var ab, aa, bb float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		ab += x * y
		aa += x * x
		bb += y * y
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return float32(ab / math.Sqrt(aa*bb))
}

func mustSameLen(a, b int) {
	if a != b {
		panic(fmt.Sprintf("qvec: vectors of different lengths %d and %d", a, b))
	}
}

// ErrEncoding is returned by Decode for malformed input.
var ErrEncoding = errors.New("qvec: malformed encoding")

// Append appends the compact encoding of q to dst: the scale as 4 bytes
// (little-endian IEEE 754) followed by one byte per element.
func (q Vector) Append(dst []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(q.Scale))
	for _, x := range q.Data {
		dst = append(dst, byte(x))
	}
	return dst
}

// Encode returns the compact encoding of q (see Append).
func (q Vector) Encode() []byte { return q.Append(make([]byte, 0, 4+len(q.Data))) }

// Decode parses an encoding made by Encode or Append. The result does not
// alias b.
func Decode(b []byte) (Vector, error) {
	if len(b) < 4 {
		return Vector{}, fmt.Errorf("%w: %d bytes", ErrEncoding, len(b))
	}
	scale := math.Float32frombits(binary.LittleEndian.Uint32(b))
	if math.IsNaN(float64(scale)) || math.IsInf(float64(scale), 0) || scale < 0 {
		return Vector{}, fmt.Errorf("%w: scale %v", ErrEncoding, scale)
	}
	q := Vector{Scale: scale, Data: make([]int8, len(b)-4)}
	for i, x := range b[4:] {
		q.Data[i] = int8(x)
	}
	return q, nil
}

// Normalize scales v to unit length in place and returns false when it
// cannot: a zero vector, or one with a NaN or an infinity, is left as it
// is. Every vector the project compares by cosine (word vectors, block
// embeddings from the native layer or an embedding server) is normalized
// by this one function.
func Normalize(v []float32) bool {
	var n float64
	for _, x := range v {
		n += float64(x) * float64(x)
	}
	if n == 0 || math.IsNaN(n) || math.IsInf(n, 0) {
		return false
	}
	inv := float32(1 / math.Sqrt(n))
	for i := range v {
		v[i] *= inv
	}
	return true
}
