//go:build !unix

package glove

import (
	"fmt"
	"os"
	"unsafe"
)

// mapFile reads the whole file where memory mapping is not available.
func mapFile(path string) ([]byte, func() error, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	if len(b) == 0 {
		return nil, nil, fmt.Errorf("%w: empty file", ErrFormat)
	}
	// Copy into 8-byte aligned memory for the typed views.
	words := make([]uint64, (len(b)+7)/8)
	data := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*8)[:len(b)]
	copy(data, b)
	return data, func() error { return nil }, nil
}
