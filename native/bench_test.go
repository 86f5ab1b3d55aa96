package native

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// Benchmarks: go test -run '^$' -bench . -benchtime 3x ./native/
// (see native/README.md for measured numbers).

func BenchmarkTokenize(b *testing.B) {
	lib := openTestLib(b)
	text := strings.Repeat(proseSample, 64) // about 64 KB
	for _, gguf := range vocabFiles(b) {
		b.Run(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(gguf), "ggml-vocab-"), ".gguf"), func(b *testing.B) {
			tok, err := lib.LoadVocab(gguf)
			if err != nil {
				b.Fatal(err)
			}
			defer tok.Close()
			n := tok.Count(text)
			b.SetBytes(int64(len(text)))
			b.ResetTimer()
			for b.Loop() {
				tok.Count(text)
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

func BenchmarkEmbed(b *testing.B) {
	lib := openTestLib(b)
	path := sharedFile(b, "models/stories260K.gguf")
	texts := strings.Split(strings.TrimSpace(proseSample), "\n")
	for len(texts) < 64 {
		texts = append(texts, texts...)
	}
	texts = texts[:64]
	for _, threads := range []int{1, 2} {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) {
			e, err := lib.LoadEmbedder(path, EmbedderOptions{Threads: threads})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			ntok := 0
			for _, t := range texts {
				ids, _ := lib.tokenize(e.vocab, t, true, false)
				ntok += len(ids)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := e.Embed(context.Background(), texts); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(ntok)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
			b.ReportMetric(float64(len(texts))*float64(b.N)/b.Elapsed().Seconds(), "texts/s")
		})
	}
}

func BenchmarkGenerate(b *testing.B) {
	m := loadTestModel(b)
	for _, threads := range []int{1, 2} {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) {
			c := newTestContext(b, m, ContextOptions{ContextSize: 1024, Threads: threads})
			gen := 0
			b.ResetTimer()
			for b.Loop() {
				res, err := c.Generate(context.Background(), storyPrompt, GenerateOptions{MaxTokens: 256})
				if err != nil {
					b.Fatal(err)
				}
				gen += res.CompletionTokens
			}
			b.ReportMetric(float64(gen)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

func BenchmarkPromptEval(b *testing.B) {
	m := loadTestModel(b)
	c := newTestContext(b, m, ContextOptions{ContextSize: 2048, BatchSize: 512})
	// Two prompts that differ after BOS, so nothing is reused.
	prompts := []string{strings.Repeat(proseSample, 3), "X " + strings.Repeat(proseSample, 3)}
	n := 0
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		res, err := c.Generate(context.Background(), prompts[i%2], GenerateOptions{MaxTokens: 1})
		if err != nil {
			b.Fatal(err)
		}
		n += res.PromptTokens - res.CachedTokens
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tokens/s")
}
