package native

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/megacontext/megacontext/tokens"
)

// ModelOptions configures LoadModel.
type ModelOptions struct {
	// CPUOnly keeps every layer on the CPU even when a GPU backend is loaded.
	CPUOnly bool
}

// Model is a GGUF model loaded for generation. Create Contexts with
// NewContext; the Model must outlive them. Its methods are safe for
// concurrent use.
type Model struct {
	lib  *Library
	name string

	mu       sync.RWMutex // write-held by Close only
	model    uintptr
	vocab    uintptr
	nCtxTrn  int
	template string
}

// LoadModel loads a GGUF model with its weights for generation.
func (l *Library) LoadModel(path string, opts ModelOptions) (*Model, error) {
	if err := l.initBackends(); err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	mp := defaultModelParams()
	if opts.CPUOnly {
		mp.NGPULayers = 0
	}
	m, err := l.loadModel(path, mp)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	mod := &Model{
		lib:     l,
		name:    strings.TrimSuffix(filepath.Base(path), ".gguf"),
		model:   m,
		vocab:   l.fn.modelGetVocab(m),
		nCtxTrn: int(l.fn.modelNCtxTrain(m)),
	}
	if !l.fn.modelHasDecoder(m) {
		mod.Close()
		return nil, fmt.Errorf("load model %s: the model has no decoder (an embedding-only model?)", path)
	}
	mod.template = goString(l.fn.modelChatTemplate(m, nil))
	return mod, nil
}

// Name returns the model's file name without ".gguf".
func (m *Model) Name() string { return m.name }

// TrainContext returns the context length the model was trained with.
func (m *Model) TrainContext() int { return m.nCtxTrn }

// ChatTemplate returns the model's chat template (tokenizer.chat_template
// of the GGUF file), or "" when it has none.
func (m *Model) ChatTemplate() string { return m.template }

// Description returns llama.cpp's one-line description of the model
// (architecture, size, quantization).
func (m *Model) Description() string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.model == 0 {
		return ""
	}
	var buf [256]byte
	n := m.lib.fn.modelDesc(m.model, &buf[0], uintptr(len(buf)))
	if n <= 0 {
		return ""
	}
	return string(buf[:min(int(n), len(buf)-1)])
}

// Tokenize returns the tokens of text. addSpecial adds the model's BOS/EOS
// as configured in the GGUF file; parseSpecial turns special-token text
// such as "<|im_start|>" into the special token.
func (m *Model) Tokenize(text string, addSpecial, parseSpecial bool) ([]int32, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.vocab == 0 {
		return nil, ErrClosed
	}
	return m.lib.tokenize(m.vocab, text, addSpecial, parseSpecial)
}

// Count returns the number of tokens of text with no special tokens added
// or parsed, like Tokenizer.Count (tokens.Estimate after Close).
func (m *Model) Count(text string) int {
	t, err := m.Tokenize(text, false, false)
	if err != nil {
		return tokens.Estimate{}.Count(text)
	}
	return len(t)
}

// Detokenize returns the text of tokens (special tokens render as "").
func (m *Model) Detokenize(tokens []int32) string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.vocab == 0 {
		return ""
	}
	var buf []byte
	for _, t := range tokens {
		buf = m.lib.piece(m.vocab, t, buf)
	}
	return string(buf)
}

// Close frees the model. Close its Contexts first. It is safe to call more
// than once.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.model != 0 {
		m.lib.fn.modelFree(m.model)
		m.model, m.vocab = 0, 0
	}
	return nil
}

// ChatMessage is one message of a chat for ApplyChatTemplate.
type ChatMessage struct {
	Role    string
	Content string
}

// ApplyChatTemplate renders msgs with the model's chat template, adding the
// assistant prefix when addAssistant is set. llama.cpp renders the
// templates it recognizes (ChatML, Llama 2/3, Mistral, Gemma, Phi, ...);
// for a model without a template, or one llama.cpp does not recognize, the
// plain format of PlainChat is used.
func (m *Model) ApplyChatTemplate(msgs []ChatMessage, addAssistant bool) string {
	if m.template != "" {
		if s, err := m.lib.ApplyChatTemplate(m.template, msgs, addAssistant); err == nil {
			return s
		}
	}
	return PlainChat(msgs, addAssistant)
}

// ApplyChatTemplate renders msgs with tmpl, a Jinja chat template that
// llama.cpp recognizes or the name of one of its built-in templates
// ("chatml", "llama3", "llama2", "mistral-v7", "gemma", "phi3", ...). It
// returns an error for a template llama.cpp does not support.
func (l *Library) ApplyChatTemplate(tmpl string, msgs []ChatMessage, addAssistant bool) (string, error) {
	ctmpl := cString(tmpl)
	strs := make([][]byte, 0, 2*len(msgs))
	chat := make([]chatMessage, len(msgs))
	size := len(tmpl) + 64
	for i, msg := range msgs {
		r, c := cString(msg.Role), cString(msg.Content)
		strs = append(strs, r, c)
		chat[i] = chatMessage{Role: &r[0], Content: &c[0]}
		size += 2*len(msg.Content) + len(msg.Role) + 64
	}
	var chatPtr *chatMessage
	if len(chat) > 0 {
		chatPtr = &chat[0]
	}
	for range 2 {
		buf := make([]byte, size)
		n := l.fn.chatApplyTemplate(&ctmpl[0], chatPtr, uintptr(len(chat)), addAssistant, &buf[0], int32(len(buf)))
		runtime.KeepAlive(strs)
		runtime.KeepAlive(chat)
		if n < 0 {
			return "", fmt.Errorf("native: chat template not supported by llama.cpp (%d)", n)
		}
		if int(n) <= len(buf) {
			return string(buf[:n]), nil
		}
		size = int(n)
	}
	return "", fmt.Errorf("native: chat template output changed size")
}

// PlainChat renders msgs in a plain format for models without a chat
// template: "Role: content" paragraphs, then "Assistant:" when addAssistant
// is set.
func PlainChat(msgs []ChatMessage, addAssistant bool) string {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString(roleTitle(m.Role))
		b.WriteString(": ")
		b.WriteString(m.Content)
		b.WriteString("\n\n")
	}
	if addAssistant {
		b.WriteString("Assistant:")
	}
	return b.String()
}

func roleTitle(role string) string {
	if role == "" {
		return "User"
	}
	return strings.ToUpper(role[:1]) + role[1:]
}
