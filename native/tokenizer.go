package native

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	"github.com/megacontext/megacontext/tokens"
)

// Tokenizer tokenizes text exactly as llama.cpp does with one GGUF
// vocabulary, loaded without weights. It implements tokens.Counter and is
// safe for concurrent use.
type Tokenizer struct {
	lib  *Library
	name string

	mu    sync.RWMutex // write-held by Close only
	model uintptr
	vocab uintptr
}

var _ tokens.Counter = (*Tokenizer)(nil)

// loadModel loads a GGUF file with the given parameters.
func (l *Library) loadModel(path string, p modelParams) (uintptr, error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("native: load %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return 0, fmt.Errorf("native: load %s: not a regular file", path)
	}
	clearRecentErrors()
	m := l.fn.modelLoadFromFile(path, p)
	if m == 0 {
		return 0, fmt.Errorf("native: llama.cpp cannot load %s%s", path, recentErrors())
	}
	return m, nil
}

// LoadVocab loads the vocabulary of a GGUF file (weights are not read) and
// returns its tokenizer. Close it to free its memory.
func (l *Library) LoadVocab(path string) (*Tokenizer, error) {
	p := defaultModelParams()
	p.VocabOnly = true
	p.NGPULayers = 0
	m, err := l.loadModel(path, p)
	if err != nil {
		return nil, fmt.Errorf("load vocabulary: %w", err)
	}
	return &Tokenizer{lib: l, name: vocabName(path), model: m, vocab: l.fn.modelGetVocab(m)}, nil
}

// vocabName names a tokenizer after its file: "llama.cpp:NAME" for NAME.gguf
// (a "ggml-vocab-" prefix dropped).
func vocabName(path string) string {
	base := strings.TrimSuffix(filepath.Base(path), ".gguf")
	return "llama.cpp:" + strings.TrimPrefix(base, "ggml-vocab-")
}

// Name implements tokens.Counter: "llama.cpp:" and the vocabulary file name.
func (t *Tokenizer) Name() string { return t.name }

// Count implements tokens.Counter: the number of tokens of text, with no
// special tokens added or parsed. After Close, or for text too large for
// llama.cpp (2 GiB), it falls back to tokens.Estimate.
func (t *Tokenizer) Count(text string) int {
	if text == "" {
		return 0
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.vocab == 0 || len(text) > math.MaxInt32 {
		return tokens.Estimate{}.Count(text)
	}
	// With no room for tokens, llama_tokenize returns minus the count.
	n := t.lib.fn.tokenize(t.vocab, unsafe.StringData(text), int32(len(text)), nil, 0, false, false)
	if n == math.MinInt32 {
		return tokens.Estimate{}.Count(text)
	}
	if n < 0 {
		n = -n
	}
	return int(n)
}

// Tokenize returns the token ids of text (add_special=false,
// parse_special=false: special-token text is tokenized as plain text).
func (t *Tokenizer) Tokenize(text string) ([]int32, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.vocab == 0 {
		return nil, ErrClosed
	}
	return t.lib.tokenize(t.vocab, text, false, false)
}

// VocabSize returns the number of tokens of the vocabulary.
func (t *Tokenizer) VocabSize() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.vocab == 0 {
		return 0
	}
	return int(t.lib.fn.vocabNTokens(t.vocab))
}

// Close frees the vocabulary. It is safe to call more than once.
func (t *Tokenizer) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.model != 0 {
		t.lib.fn.modelFree(t.model)
		t.model, t.vocab = 0, 0
	}
	return nil
}

// tokenize runs llama_tokenize with a buffer sized from the text, retrying
// once with the exact size when it was too small.
func (l *Library) tokenize(vocab uintptr, text string, addSpecial, parseSpecial bool) ([]int32, error) {
	if len(text) > math.MaxInt32 {
		return nil, fmt.Errorf("native: tokenize: text of %d bytes exceeds llama.cpp's limit", len(text))
	}
	var ptr *byte
	if text != "" {
		ptr = unsafe.StringData(text)
	}
	size := len(text)/2 + 8
	for range 2 {
		buf := make([]int32, size)
		n := l.fn.tokenize(vocab, ptr, int32(len(text)), &buf[0], int32(len(buf)), addSpecial, parseSpecial)
		switch {
		case n == math.MinInt32:
			return nil, fmt.Errorf("native: tokenize: result exceeds llama.cpp's limit")
		case n >= 0:
			if int(n) < len(buf)/2 && len(buf) > 64 {
				return append([]int32(nil), buf[:n]...), nil
			}
			return buf[:n:n], nil
		}
		size = int(-n)
	}
	return nil, fmt.Errorf("native: tokenize: token count changed between calls")
}

// piece returns the text of one token (special tokens render as "").
func (l *Library) piece(vocab uintptr, tok int32, buf []byte) []byte {
	var tmp [64]byte
	n := l.fn.tokenToPiece(vocab, tok, &tmp[0], int32(len(tmp)), 0, false)
	if n >= 0 {
		return append(buf, tmp[:n]...)
	}
	big := make([]byte, -n)
	n = l.fn.tokenToPiece(vocab, tok, &big[0], int32(len(big)), 0, false)
	if n < 0 {
		return buf
	}
	return append(buf, big[:n]...)
}
