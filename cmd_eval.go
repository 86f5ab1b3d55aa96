package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/megacontext/megacontext/memory/glove"
	"github.com/megacontext/megacontext/memory/thesaurus"
	"github.com/megacontext/megacontext/native"
	"github.com/megacontext/megacontext/tokens"
	"github.com/megacontext/megacontext/tools/eval/chatgen"
	"github.com/megacontext/megacontext/tools/eval/dataset"
	"github.com/megacontext/megacontext/tools/eval/gen"
	"github.com/megacontext/megacontext/tools/eval/report"
	"github.com/megacontext/megacontext/tools/eval/run"
)

func init() { extraCommands = append(extraCommands, newEvalCmd) }

// newEvalCmd returns `megacontext eval`: evidence recall at budget of the
// engine against the rag and truncate baselines (DESIGN.md §7), and
// `megacontext eval gen` to generate a dataset.
func newEvalCmd() *cobra.Command {
	var (
		data, plot string
		asJSON     bool
		ef         evalFlags
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
			opts, done, err := ef.options(cmd)
			if err != nil {
				return err
			}
			defer done()
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
	ef.register(cmd, "2048,4096,8192")
	f.BoolVar(&asJSON, "json", false, "print one JSON object instead of tables (no plot)")
	f.StringVar(&plot, "plot", "", `SVG file for the recall plot (default: next to the data file; "-" for none)`)
	cmd.AddCommand(newEvalGenCmd(), newEvalSplitsCmd(), newEvalReportCmd())
	return cmd
}

// evalFlags are the flags `eval` and `eval splits` share: what to measure
// and how the strategies run.
type evalFlags struct {
	assetFlags
	budgets, strategies, vocab, dumpDir string
	quiet                               bool
	opts                                run.Options
}

// assetFlags choose the optional assets of `eval`, `eval splits` and
// `eval report`: what the megacontext strategy's lens uses and rag's
// retrieval is given too.
type assetFlags struct {
	nativeDir, embeddings, wordnet, gloveDir string
	// noAssets turns every asset off: the pure-Go fallback.
	noAssets bool
}

// register adds the asset flags to cmd.
func (af *assetFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&af.wordnet, "thesaurus", "auto", "WordNet folder for the megacontext strategy's query expansion: auto (./.wordnet when `make wordnet` ran), off, or a folder")
	f.StringVar(&af.gloveDir, "glove", "auto", "GloVe folder for soft term matching, megacontext and rag alike: auto (./.glove when `make glove` ran), off, or a folder")
	f.StringVar(&af.embeddings, "embeddings", "", "embedding GGUF for the megacontext strategy's semantic lens (default: lexical only)")
	f.StringVar(&af.nativeDir, "native-dir", "", "folder of the llama.cpp libraries (default: $"+native.EnvDir+", ./"+native.DefaultDir+", or next to the executable)")
	f.BoolVar(&af.noAssets, "no-assets", false, "the pure-Go fallback: no thesaurus and no embeddings, whatever is installed (tokens are still counted with --vocab)")
}

// openAsset opens an optional asset by its flag's setting: nothing for
// "off"; for "auto" the default folder's, or nothing when it is absent; else
// the named folder's, where absence is an error.
func openAsset[T any](setting string, open func(dir string) (*T, error)) (*T, error) {
	if setting == "off" {
		return nil, nil
	}
	dir := setting
	if dir == "auto" {
		dir = ""
	}
	a, err := open(dir)
	switch {
	case err == nil:
		return a, nil
	case setting == "auto":
		return nil, nil
	default:
		return nil, fmt.Errorf("eval: %w", err)
	}
}

// load opens the assets the flags name into the engine options' asset
// fields, and names them ("none" for none); done releases them.
func (af *assetFlags) load() (eo run.EngineOptions, names []string, done func(), err error) {
	var closers []func()
	done = func() {
		for _, c := range closers {
			c()
		}
	}
	if af.noAssets {
		if af.embeddings != "" || (af.wordnet != "auto" && af.wordnet != "off") || (af.gloveDir != "auto" && af.gloveDir != "off") {
			return eo, nil, done, fmt.Errorf("eval: --no-assets turns assets off: drop --embeddings, --thesaurus and --glove")
		}
		return eo, []string{"none"}, done, nil
	}
	if af.embeddings != "" {
		lib, err := native.Open(af.nativeDir)
		if err != nil {
			return eo, nil, done, fmt.Errorf("eval: %w", err)
		}
		emb, err := lib.LoadEmbedder(af.embeddings, native.EmbedderOptions{})
		if err != nil {
			return eo, nil, done, fmt.Errorf("eval: %w", err)
		}
		closers = append(closers, func() { emb.Close() })
		eo.Embedder = emb
		names = append(names, "embeddings "+filepath.Base(af.embeddings))
	}
	th, err := openAsset(af.wordnet, thesaurus.Open)
	if err != nil {
		done()
		return eo, nil, func() {}, err
	}
	if th != nil {
		eo.Expander = th
		names = append(names, "WordNet")
	}
	v, err := openAsset(af.gloveDir, glove.Open)
	if err != nil {
		done()
		return eo, nil, func() {}, err
	}
	if v != nil {
		closers = append(closers, func() { v.Close() })
		eo.Vectors = v
		names = append(names, "GloVe")
	}
	if len(names) == 0 {
		names = []string{"none"}
	}
	return eo, names, done, nil
}

// register adds the shared flags to cmd, budgets defaulting to budgets.
func (ef *evalFlags) register(cmd *cobra.Command, budgets string) {
	f := cmd.Flags()
	f.StringVar(&ef.budgets, "budgets", budgets, "comma-separated window budgets in tokens")
	f.StringVar(&ef.strategies, "strategies", strings.Join(run.Strategies(), ","), "comma-separated strategies: "+strings.Join(run.Strategies(), ", "))
	f.StringVar(&ef.vocab, "vocab", "", "GGUF file whose tokenizer counts tokens (default: the pure-Go estimate)")
	ef.assetFlags.register(cmd)
	f.StringVar(&ef.dumpDir, "dump", "", "folder to write the window of every question whose evidence was missed")
	f.BoolVarP(&ef.quiet, "quiet", "q", false, "no progress lines on stderr")
	o := &ef.opts
	f.IntVar(&o.PerMessage, "per-message", run.DefaultPerMessage, "chat-template tokens charged per message")
	f.IntVar(&o.ChunkTokens, "chunk-tokens", run.DefaultChunkTokens, "rag chunk size in tokens")
	f.IntVar(&o.Engine.BlockTokens, "block-tokens", 0, "engine block size K (0: engine default)")
	f.IntVar(&o.Engine.Fanout, "fanout", 0, "engine gist fan-out F (0: engine default)")
	f.IntVar(&o.Engine.GistTokens, "gist-tokens", 0, "engine full gist cap (0: engine default)")
	f.IntVar(&o.Engine.ShortTokens, "short-tokens", 0, "engine headline cap (0: engine default)")
	f.Float64Var(&o.Engine.MinRelevance, "min-relevance", 0, "engine expansion threshold, share of the best match (0: engine default)")
	f.IntVar(&o.Engine.TailPercent, "tail-percent", 40, "engine verbatim tail cap, percent of the budget")
	f.StringVar(&o.Engine.Render, "render", "outline", "engine memory layout: chronological, or outline (a query-independent outline, then the question's details)")
	f.Float64Var(&o.Engine.OutlineShare, "outline-share", 0, "with --render outline, the outline's share of the memory budget (0: engine default)")
}

// options builds the run options from the flags, loading the tokenizer
// and the assets they name; done releases what was loaded.
func (ef *evalFlags) options(cmd *cobra.Command) (run.Options, func(), error) {
	opts := ef.opts
	var closers []func()
	done := func() {
		for _, c := range closers {
			c()
		}
	}
	fail := func(err error) (run.Options, func(), error) {
		done()
		return run.Options{}, func() {}, err
	}
	var err error
	if opts.Budgets, err = parseInts(ef.budgets); err != nil {
		return fail(fmt.Errorf("eval: --budgets: %w", err))
	}
	for _, s := range strings.Split(ef.strategies, ",") {
		if s = strings.TrimSpace(s); s != "" {
			opts.Strategies = append(opts.Strategies, s)
		}
	}
	opts.Counter = tokens.Estimate{}
	if ef.vocab != "" {
		lib, err := native.Open(ef.nativeDir)
		if err != nil {
			return fail(fmt.Errorf("eval: %w", err))
		}
		tok, err := lib.LoadVocab(ef.vocab)
		if err != nil {
			return fail(fmt.Errorf("eval: %w", err))
		}
		closers = append(closers, func() { tok.Close() })
		opts.Counter = tok
	}
	assets, _, release, err := ef.assetFlags.load()
	if err != nil {
		return fail(err)
	}
	closers = append(closers, release)
	opts.Engine = opts.Engine.WithAssets(assets)
	if !ef.quiet {
		opts.Log = cmd.ErrOrStderr()
	}
	opts.DumpDir = ef.dumpDir
	return opts, done, nil
}

// Dataset generator styles of `eval gen --style`.
const (
	styleDocs = report.GeneratorDocs // package gen: Go-documentation chats, the first generator
	styleChat = report.GeneratorChat // package chatgen: everyday chats, the second
)

// newEvalGenCmd returns `megacontext eval gen`.
func newEvalGenCmd() *cobra.Command {
	var (
		out, sizes, style string
		seed              int64
		questions         int
	)
	cmd := &cobra.Command{
		Use:   "gen --out FILE.jsonl[.gz] [--style docs|chat] [--seed N] [--sizes 32k,128k,512k]",
		Short: "Generate an evaluation dataset: one case per size, questions of every type",
		Long: `Gen writes an evaluation dataset. --style docs (the default) is the first
generator (tools/eval/gen): chats about the Go distribution's packages, prose from
GOROOT. --style chat is the second, independent one (tools/eval/chatgen): a person's
chats with an assistant over a year, prose from public-domain books (run
"make prose" first), questions written the way people ask about their own past.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("eval gen: --out is required")
			}
			sz, err := gen.ParseSizes(sizes)
			if err != nil {
				return fmt.Errorf("eval gen: --sizes: %w", err)
			}
			var cases []dataset.Case
			switch style {
			case styleDocs:
				cases, err = gen.Generate(gen.Options{Seed: seed, Sizes: sz, QuestionsPerType: questions})
			case styleChat:
				cases, err = chatgen.Generate(chatgen.Options{Seed: seed, Sizes: sz, QuestionsPerType: questions})
			default:
				return fmt.Errorf("eval gen: --style %q: want %s or %s", style, styleDocs, styleChat)
			}
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
	f.StringVar(&style, "style", styleDocs, "generator: "+styleDocs+" (the first, Go documentation prose) or "+styleChat+" (the second, independent set: everyday chats, public-domain book prose)")
	f.Int64Var(&seed, "seed", 1, "random seed (same seed, same prose: same bytes)")
	f.StringVar(&sizes, "sizes", "32k,128k,512k", "comma-separated history sizes in tokens (k = ×1024, m = ×1024²)")
	f.IntVar(&questions, "questions", 0, fmt.Sprintf("questions per type and case (0: the style's default, %d for docs, %d for chat; at most %d and %d)",
		gen.DefaultQuestionsPerType, chatgen.DefaultQuestionsPerType, gen.MaxQuestionsPerType, chatgen.MaxQuestionsPerType))
	return cmd
}

// Splits of `eval splits`.
const (
	splitDev     = report.SplitDev
	splitHeldOut = report.SplitHeldOut
	splitBoth    = "both"
)

// newEvalSplitsCmd returns `megacontext eval splits`: the second dataset's
// dev and held-out seeds generated and evaluated, one table per split.
func newEvalSplitsCmd() *cobra.Command {
	var (
		split, sizes string
		asJSON       bool
		ef           evalFlags
	)
	cmd := &cobra.Command{
		Use:   "splits [--split dev|heldout|both] [--budgets 512,1024,4096] [--vocab FILE.gguf]",
		Short: "Evaluate the chat-style dataset's dev and/or held-out seed split, one table per split",
		Long: fmt.Sprintf(`Splits generates the chat-style dataset (see "eval gen --style chat") for every seed
of a split, one case per size and seed, and evaluates them together like "eval" does.
The dev split (seeds %s) may be looked at and tuned on; the held-out split (seeds %s)
is for reporting only. Needs "make prose".`, report.SeedList(chatgen.DevSeeds), report.SeedList(chatgen.HeldOutSeeds)),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sz, err := gen.ParseSizes(sizes)
			if err != nil {
				return fmt.Errorf("eval splits: --sizes: %w", err)
			}
			var splits []string
			switch split {
			case splitDev, splitHeldOut:
				splits = []string{split}
			case splitBoth:
				splits = []string{splitDev, splitHeldOut}
			default:
				return fmt.Errorf("eval splits: --split %q: want %s, %s or %s", split, splitDev, splitHeldOut, splitBoth)
			}
			if _, err := chatgen.LoadProse(""); err != nil {
				return err
			}
			opts, done, err := ef.options(cmd)
			if err != nil {
				return err
			}
			defer done()
			out := cmd.OutOrStdout()
			reports := map[string]*run.Report{}
			src := &report.Sources{}
			for i, sp := range splits {
				set, err := report.NewSet(report.GeneratorChat, sp, sz)
				if err != nil {
					return err
				}
				rep, err := run.Run(cmd.Context(), set.Cases(src), opts)
				if err != nil {
					return fmt.Errorf("eval splits: %s: %w", sp, err)
				}
				reports[sp] = rep
				if asJSON {
					continue
				}
				if i > 0 {
					fmt.Fprintln(out)
				}
				fmt.Fprintf(out, "== %s split: seeds %s, sizes %s, %s ==\n\n", sp, report.SeedList(set.Seeds), sizes, rep.Counter)
				if err := run.WriteTable(out, rep); err != nil {
					return err
				}
			}
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(reports)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&split, "split", splitDev, "which seeds: "+splitDev+", "+splitHeldOut+" (report only) or "+splitBoth)
	f.StringVar(&sizes, "sizes", "32k,128k,512k", "history sizes of each seed's cases, in tokens (bytes/4)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object, split name to report, instead of tables")
	ef.register(cmd, "512,1024,4096")
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
