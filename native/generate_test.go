package native

import (
	"context"
	"errors"
	"strings"
	"testing"
)

const storyPrompt = "Once upon a time there was a little girl"

func loadTestModel(t testing.TB) *Model {
	t.Helper()
	path := sharedFile(t, "models/stories260K.gguf")
	lib := openTestLib(t)
	m, err := lib.LoadModel(path, ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// newTestContext creates a context; tests use one thread unless told
// otherwise, since ggml's spinning worker threads slow down badly on a
// busy 2-core machine.
func newTestContext(t testing.TB, m *Model, opts ContextOptions) *Context {
	t.Helper()
	if opts.Threads == 0 {
		opts.Threads = 1
	}
	c, err := m.NewContext(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestGenerateGreedy(t *testing.T) {
	m := loadTestModel(t)
	c := newTestContext(t, m, ContextOptions{})
	t.Logf("model %s (%s), train ctx %d, context %d", m.Name(), m.Description(), m.TrainContext(), c.Size())
	ctx := context.Background()
	res, err := c.Generate(ctx, storyPrompt, GenerateOptions{MaxTokens: 40})
	if err != nil {
		t.Fatal(err)
	}
	const want = " named Lily. She loved to play outside in the park."
	if !strings.HasPrefix(res.Text, want) {
		t.Fatalf("greedy continuation %q, want prefix %q", res.Text, want)
	}
	if res.CompletionTokens != 40 || res.FinishReason != FinishLength || res.CachedTokens != 0 {
		t.Errorf("result %+v", res)
	}
	t.Logf("%+v", res)

	// The same prompt again reuses all but its last token and gives the same text.
	again, err := c.Generate(ctx, storyPrompt, GenerateOptions{MaxTokens: 40})
	if err != nil {
		t.Fatal(err)
	}
	if again.Text != res.Text || again.CachedTokens != res.PromptTokens-1 {
		t.Errorf("second run: %+v", again)
	}
	// Prompt + output as the next prompt reuses the output's tokens too.
	next, err := c.Generate(ctx, storyPrompt+res.Text+" One day", GenerateOptions{MaxTokens: 10})
	if err != nil {
		t.Fatal(err)
	}
	if next.CachedTokens < res.PromptTokens+res.CompletionTokens-2 {
		t.Errorf("continuation reused %d of %d prompt tokens", next.CachedTokens, next.PromptTokens)
	}
	t.Logf("continuation: %d of %d prompt tokens reused", next.CachedTokens, next.PromptTokens)
	// A different prompt shares only BOS.
	other, err := c.Generate(ctx, "The dog", GenerateOptions{MaxTokens: 5})
	if err != nil {
		t.Fatal(err)
	}
	if other.CachedTokens != 1 {
		t.Errorf("different prompt reused %d tokens, want 1 (BOS)", other.CachedTokens)
	}
	// After unrelated requests the story prompt still gives the same text.
	fresh, err := c.Generate(ctx, storyPrompt, GenerateOptions{MaxTokens: 40})
	if err != nil || fresh.Text != res.Text {
		t.Errorf("after other prompts: %q, %v", fresh.Text, err)
	}
}

func TestGenerateStopAndStream(t *testing.T) {
	m := loadTestModel(t)
	c := newTestContext(t, m, ContextOptions{})
	var streamed strings.Builder
	res, err := c.Generate(context.Background(), storyPrompt, GenerateOptions{
		MaxTokens: 60,
		Stop:      []string{"outside"},
		OnText:    func(s string) error { streamed.WriteString(s); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Text != " named Lily. She loved to play " || res.FinishReason != FinishStop {
		t.Fatalf("stop: %+v", res)
	}
	if streamed.String() != res.Text {
		t.Fatalf("streamed %q, result %q", streamed.String(), res.Text)
	}
	// A callback error stops generation.
	boom := errors.New("boom")
	_, err = c.Generate(context.Background(), storyPrompt, GenerateOptions{
		MaxTokens: 20, OnText: func(string) error { return boom },
	})
	if !errors.Is(err, boom) {
		t.Fatalf("callback error: %v", err)
	}
}

func TestGenerateSampled(t *testing.T) {
	m := loadTestModel(t)
	c := newTestContext(t, m, ContextOptions{})
	opts := GenerateOptions{MaxTokens: 30, Temperature: 0.9, TopK: 40, TopP: 0.95, Seed: 42}
	a, err := c.Generate(context.Background(), storyPrompt, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Generate(context.Background(), storyPrompt, opts)
	if err != nil {
		t.Fatal(err)
	}
	if a.Text != b.Text {
		t.Errorf("same seed, different text:\n%q\n%q", a.Text, b.Text)
	}
	opts.Seed = 7
	diff := false
	for range 3 {
		r, err := c.Generate(context.Background(), storyPrompt, opts)
		if err != nil {
			t.Fatal(err)
		}
		diff = diff || r.Text != a.Text
		opts.Seed++
	}
	if !diff {
		t.Errorf("other seeds give the same text %q", a.Text)
	}
}

func TestGenerateContextLimits(t *testing.T) {
	m := loadTestModel(t)
	c := newTestContext(t, m, ContextOptions{ContextSize: 32, BatchSize: 8})
	n := c.Size() // llama.cpp may round the size up
	if n < 32 || n > 1024 {
		t.Fatalf("Size() = %d", n)
	}
	long := strings.Repeat("Once upon a time there was a dog. ", n/4)
	_, err := c.Generate(context.Background(), long, GenerateOptions{MaxTokens: 4})
	var ce *ContextExceededError
	if !errors.As(err, &ce) || ce.ContextSize != n || ce.PromptTokens < n {
		t.Fatalf("long prompt: %v", err)
	}
	t.Log(err)
	// Generation stops when the context is full; prompt spans several batches.
	res, err := c.Generate(context.Background(), storyPrompt+" named Lily. She", GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.FinishReason != FinishLength || res.PromptTokens+res.CompletionTokens != n+1 {
		t.Errorf("full context: %+v", res)
	}
	// Cancellation.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Generate(ctx, storyPrompt, GenerateOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
}

func TestChatTemplates(t *testing.T) {
	m := loadTestModel(t)
	msgs := []ChatMessage{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Hi"}}
	got, err := m.lib.ApplyChatTemplate("chatml", msgs, true)
	if err != nil {
		t.Fatal(err)
	}
	want := "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
	if got != want {
		t.Errorf("chatml: %q", got)
	}
	if _, err := m.lib.ApplyChatTemplate("{{ no such template }}", msgs, true); err == nil {
		t.Error("unknown template accepted")
	}
	// stories260K has no template: the plain format is used.
	if m.ChatTemplate() != "" {
		t.Logf("model template: %q", m.ChatTemplate())
	}
	plain := m.ApplyChatTemplate(msgs, true)
	if m.ChatTemplate() == "" && plain != "System: Be brief.\n\nUser: Hi\n\nAssistant:" {
		t.Errorf("plain: %q", plain)
	}
	long := []ChatMessage{{Role: "user", Content: strings.Repeat("word ", 5000)}}
	if s, err := m.lib.ApplyChatTemplate("llama3", long, false); err != nil || !strings.Contains(s, "word word") {
		t.Errorf("long llama3: %v", err)
	}
}

func TestSafeEnd(t *testing.T) {
	for _, c := range []struct {
		text  string
		stops []string
		want  int
	}{
		{"hello", nil, 5},
		{"hello wor", []string{"world"}, 6},
		{"hello w", []string{"world", "xyz"}, 6},
		{"hi \xe2\x82", nil, 3},
		{"hi \xe2\x82\xac", nil, 6},
		{"abc", []string{"c"}, 3},
	} {
		if got := safeEnd([]byte(c.text), 0, c.stops); got != c.want {
			t.Errorf("safeEnd(%q, %q) = %d, want %d", c.text, c.stops, got, c.want)
		}
	}
}
