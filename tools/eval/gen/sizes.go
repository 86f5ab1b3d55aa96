package gen

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseSizes parses a comma-separated list of history sizes in tokens, each
// a positive integer optionally followed by k (×1024) or m (×1024×1024),
// case-insensitive: "32k,128k,512k" → [32768 131072 524288]. Spaces around
// items are ignored; empty items are errors.
func ParseSizes(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("gen: empty size list")
	}
	var out []int
	for i, item := range strings.Split(s, ",") {
		n, err := parseSize(strings.TrimSpace(item))
		if err != nil {
			return nil, fmt.Errorf("gen: size %d (%q): %w", i+1, strings.TrimSpace(item), err)
		}
		out = append(out, n)
	}
	return out, nil
}

// parseSize parses one size.
func parseSize(s string) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("empty size")
	}
	mult := 1
	switch s[len(s)-1] {
	case 'k', 'K':
		mult = 1 << 10
		s = s[:len(s)-1]
	case 'm', 'M':
		mult = 1 << 20
		s = s[:len(s)-1]
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("want digits with an optional k or m suffix")
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("want digits with an optional k or m suffix")
	}
	if n <= 0 {
		return 0, fmt.Errorf("size must be positive")
	}
	if n > math.MaxInt32/mult {
		return 0, fmt.Errorf("size too large")
	}
	return n * mult, nil
}

// FormatSize formats a size in tokens the way ParseSizes reads it, with the
// largest exact suffix: 32768 → "32k", 1048576 → "1m", 1000 → "1000".
func FormatSize(n int) string {
	switch {
	case n > 0 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + "m"
	case n > 0 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + "k"
	}
	return strconv.Itoa(n)
}
