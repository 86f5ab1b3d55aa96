package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/megacontext/megacontext/memory/thesaurus"
	"github.com/megacontext/megacontext/native"
	"github.com/megacontext/megacontext/tokens"
	"github.com/megacontext/megacontext/tools/eval/dataset"
	"github.com/megacontext/megacontext/tools/eval/gen"
	"github.com/megacontext/megacontext/tools/eval/run"
)

func init() { extraCommands = append(extraCommands, newEvalCmd) }

// newEvalCmd returns `megacontext eval`: evidence recall at budget of the
// engine against the rag and truncate baselines (DESIGN.md §7), and
// `megacontext eval gen` to generate a dataset.
func newEvalCmd() *cobra.Command {
	var (
		data, budgets, strategies, vocab, nativeDir, plot, dumpDir, embeddings, wordnet string
		asJSON, quiet                                                                   bool
		opts                                                                            run.Options
	)
	cmd := &cobra.Command{
		Use:   "eval --data FILE.jsonl[.gz] [--budgets 2048,4096,8192] [--strategies megacontext,rag,truncate] [--vocab FILE.gguf] [--json]",
		Short: "Measure evidence recall at budget of megacontext against the rag and truncate baselines",
		Long: `Eval replays every case of a dataset (JSON Lines, plain or gzip; see "eval gen")
into each strategy, asks each question at each budget, and reports evidence recall
(every evidence string verbatim in the window), answer recall (every answer part
anywhere in it), mean window tokens, assembly latency and prefix stability, overall,
by question type and by history size. Without --json it prints tables and writes
an SVG plot of recall against budget (--plot, default next to the data file).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if data == "" {
				return fmt.Errorf("eval: --data is required")
			}
			var err error
			if opts.Budgets, err = parseInts(budgets); err != nil {
				return fmt.Errorf("eval: --budgets: %w", err)
			}
			for _, s := range strings.Split(strategies, ",") {
				if s = strings.TrimSpace(s); s != "" {
					opts.Strategies = append(opts.Strategies, s)
				}
			}
			opts.Counter = tokens.Estimate{}
			if vocab != "" {
				lib, err := native.Open(nativeDir)
				if err != nil {
					return fmt.Errorf("eval: %w", err)
				}
				tok, err := lib.LoadVocab(vocab)
				if err != nil {
					return fmt.Errorf("eval: %w", err)
				}
				defer tok.Close()
				opts.Counter = tok
			}
			if embeddings != "" {
				lib, err := native.Open(nativeDir)
				if err != nil {
					return fmt.Errorf("eval: %w", err)
				}
				emb, err := lib.LoadEmbedder(embeddings, native.EmbedderOptions{})
				if err != nil {
					return fmt.Errorf("eval: %w", err)
				}
				defer emb.Close()
				opts.Engine.Embedder = emb
			}
			if wordnet != "off" {
				dir := wordnet
				if dir == "auto" {
					dir = ""
				}
				th, err := thesaurus.Open(dir)
				switch {
				case err == nil:
					opts.Engine.Expander = th
				case wordnet != "auto":
					return fmt.Errorf("eval: %w", err)
				}
			}
			if !quiet {
				opts.Log = cmd.ErrOrStderr()
			}
			opts.DumpDir = dumpDir
			rep, err := run.RunFile(cmd.Context(), data, opts)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			if err := run.WriteTable(out, rep); err != nil {
				return err
			}
			if plot == "" {
				plot = plotPath(data)
			}
			if plot == "-" {
				return nil
			}
			f, err := os.Create(plot)
			if err != nil {
				return fmt.Errorf("eval: plot: %w", err)
			}
			if err := run.WriteSVG(f, rep); err != nil {
				f.Close()
				return fmt.Errorf("eval: plot: %w", err)
			}
			if err := f.Close(); err != nil {
				return fmt.Errorf("eval: plot: %w", err)
			}
			_, err = fmt.Fprintf(out, "\nplot: %s\n", plot)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&data, "data", "", "dataset file (.jsonl or .jsonl.gz)")
	f.StringVar(&budgets, "budgets", "2048,4096,8192", "comma-separated window budgets in tokens")
	f.StringVar(&strategies, "strategies", strings.Join(run.Strategies(), ","), "comma-separated strategies: "+strings.Join(run.Strategies(), ", "))
	f.StringVar(&vocab, "vocab", "", "GGUF file whose tokenizer counts tokens (default: the pure-Go estimate)")
	f.StringVar(&wordnet, "thesaurus", "auto", "WordNet folder for the megacontext strategy's query expansion: auto (./.wordnet when `make wordnet` ran), off, or a folder")
	f.StringVar(&embeddings, "embeddings", "", "embedding GGUF for the megacontext strategy's semantic lens (default: lexical only)")
	f.StringVar(&nativeDir, "native-dir", "", "folder of the llama.cpp libraries (default: $"+native.EnvDir+", ./"+native.DefaultDir+", or next to the executable)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object instead of tables (no plot)")
	f.StringVar(&plot, "plot", "", `SVG file for the recall plot (default: next to the data file; "-" for none)`)
	f.StringVar(&dumpDir, "dump", "", "folder to write the window of every question whose evidence was missed")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress lines on stderr")
	f.IntVar(&opts.PerMessage, "per-message", run.DefaultPerMessage, "chat-template tokens charged per message")
	f.IntVar(&opts.ChunkTokens, "chunk-tokens", run.DefaultChunkTokens, "rag chunk size in tokens")
	f.IntVar(&opts.Engine.BlockTokens, "block-tokens", 0, "engine block size K (0: engine default)")
	f.IntVar(&opts.Engine.Fanout, "fanout", 0, "engine gist fan-out F (0: engine default)")
	f.IntVar(&opts.Engine.GistTokens, "gist-tokens", 0, "engine full gist cap (0: engine default)")
	f.IntVar(&opts.Engine.ShortTokens, "short-tokens", 0, "engine headline cap (0: engine default)")
	f.Float64Var(&opts.Engine.MinRelevance, "min-relevance", 0, "engine expansion threshold, share of the best match (0: engine default)")
	f.IntVar(&opts.Engine.TailPercent, "tail-percent", 40, "engine verbatim tail cap, percent of the budget")
	f.StringVar(&opts.Engine.Render, "render", "outline", "engine memory layout: chronological, or outline (a query-independent outline, then the question's details)")
	f.Float64Var(&opts.Engine.OutlineShare, "outline-share", 0, "with --render outline, the outline's share of the memory budget (0: engine default)")
	cmd.AddCommand(newEvalGenCmd())
	return cmd
}

// newEvalGenCmd returns `megacontext eval gen`.
func newEvalGenCmd() *cobra.Command {
	var (
		out, sizes string
		seed       int64
		questions  int
	)
	cmd := &cobra.Command{
		Use:   "gen --out FILE.jsonl[.gz] [--seed N] [--sizes 32k,128k,512k]",
		Short: "Generate an evaluation dataset: one case per size, questions of every type",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("eval gen: --out is required")
			}
			sz, err := gen.ParseSizes(sizes)
			if err != nil {
				return fmt.Errorf("eval gen: --sizes: %w", err)
			}
			cases, err := gen.Generate(gen.Options{Seed: seed, Sizes: sz, QuestionsPerType: questions})
			if err != nil {
				return err
			}
			if err := dataset.WriteFile(out, cases); err != nil {
				return err
			}
			n := 0
			for _, c := range cases {
				n += len(c.Questions)
			}
			_, err = fmt.Fprintf(cmd.ErrOrStderr(), "eval gen: wrote %d cases, %d questions to %s\n", len(cases), n, out)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "output file; gzip-compressed when it ends in .gz")
	f.Int64Var(&seed, "seed", 1, "random seed (same seed and Go version: same bytes)")
	f.StringVar(&sizes, "sizes", "32k,128k,512k", "comma-separated history sizes in tokens (k = ×1024, m = ×1024²)")
	f.IntVar(&questions, "questions", gen.DefaultQuestionsPerType, fmt.Sprintf("questions per type and case (1..%d)", gen.MaxQuestionsPerType))
	return cmd
}

// parseInts parses a comma-separated list of positive integers.
func parseInts(s string) ([]int, error) {
	var out []int
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		n, err := strconv.Atoi(item)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive integer", item)
		}
		out = append(out, n)
	}
	return out, nil
}

// plotPath is the default plot file: the data file's name without its
// .gz and .jsonl extensions, plus .eval.svg.
func plotPath(data string) string {
	base := strings.TrimSuffix(data, ".gz")
	base = strings.TrimSuffix(base, filepath.Ext(base))
	return base + ".eval.svg"
}
