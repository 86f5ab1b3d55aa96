package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/megacontext/megacontext/native"
	"github.com/megacontext/megacontext/tools/eval/gen"
	"github.com/megacontext/megacontext/tools/eval/report"
	"github.com/megacontext/megacontext/tools/eval/run"
)

// Files `eval report` writes into its output folder.
const (
	reportMarkdown = "README.md"   // the tables
	reportSVG      = "recall.svg"  // the plot
	reportJSON     = "matrix.json" // every report of the matrix, for diffs and scripts
)

// Default vocabularies of `eval report`: the Llama 3 vocabulary, and the
// small, token-expensive one of stories260K.gguf (issue 9).
var defaultReportVocabs = []string{
	"../shared/vocab/ggml-vocab-llama-bpe.gguf@512,1024,4096",
	"../shared/models/stories260K.gguf@512,1024,4096",
}

// newEvalReportCmd returns `megacontext eval report`: the whole matrix of
// issue 9 in one command, written as Markdown tables and an SVG plot.
func newEvalReportCmd() *cobra.Command {
	var (
		out, sizes, sets, variants string
		vocabs                     []string
		jobs                       int
		verbose                    bool
		af                         assetFlags
		base                       run.Options // engine tuning and budget rule
	)
	cmd := &cobra.Command{
		Use:   "report [-o docs/recall] [--vocab FILE.gguf@512,1024,4096]... [--sets chat:dev,chat:heldout,docs:dev,docs:heldout] [--jobs 2]",
		Short: "Run the whole recall matrix (sets × splits × vocabularies × budgets × assets) and write Markdown tables and an SVG plot",
		Long: `Report evaluates every set (the chat generator's dev and held-out seed splits, the
docs generator's) with every vocabulary at its budgets, once with the optional
assets installed here (WordNet, ...) and once without them (the pure-Go fallback),
comparing megacontext with rag (given the same expansions) and truncate. It writes
` + reportMarkdown + ` (tables by question type), ` + reportSVG + ` (recall per budget per split,
megacontext vs rag) and ` + reportJSON + ` into the output folder, and prints where the rag
floor does not hold. Needs "make native prose" (and the assets to compare).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sz, err := gen.ParseSizes(sizes)
			if err != nil {
				return fmt.Errorf("eval report: --sizes: %w", err)
			}
			cfg := report.Config{Jobs: jobs, Log: cmd.ErrOrStderr(), Verbose: verbose, Base: base}
			for _, name := range strings.Split(sets, ",") {
				g, sp, ok := strings.Cut(strings.TrimSpace(name), ":")
				if !ok {
					return fmt.Errorf("eval report: --sets: %q is not GENERATOR:SPLIT", name)
				}
				set, err := report.NewSet(g, sp, sz)
				if err != nil {
					return err
				}
				cfg.Sets = append(cfg.Sets, set)
			}
			lib, err := native.Open(af.nativeDir)
			if err != nil {
				return fmt.Errorf("eval report: the vocabularies need the native library (make native): %w", err)
			}
			for _, spec := range vocabs {
				path, budgets, ok := strings.Cut(spec, "@")
				if !ok {
					return fmt.Errorf("eval report: --vocab %q: want FILE.gguf@BUDGETS", spec)
				}
				bs, err := parseInts(budgets)
				if err != nil {
					return fmt.Errorf("eval report: --vocab %q: %w", spec, err)
				}
				tok, err := lib.LoadVocab(path)
				if err != nil {
					return fmt.Errorf("eval report: %w", err)
				}
				defer tok.Close()
				cfg.Vocabs = append(cfg.Vocabs, report.Vocab{Name: report.VocabName(tok), Counter: tok, Budgets: bs})
			}
			for _, v := range strings.Split(variants, ",") {
				switch strings.TrimSpace(v) {
				case "assets":
					eo, names, done, err := af.load()
					if err != nil {
						return err
					}
					defer done()
					cfg.Variants = append(cfg.Variants, report.Variant{Name: report.VariantAssets, Assets: strings.Join(names, ", "), Engine: eo})
				case "no-assets":
					cfg.Variants = append(cfg.Variants, report.Variant{Name: report.VariantNoAssets, Assets: "none (the pure-Go fallback; tokens still counted with the vocabulary)"})
				default:
					return fmt.Errorf("eval report: --variants: %q: want assets or no-assets", v)
				}
			}
			m, err := report.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return fmt.Errorf("eval report: %w", err)
			}
			command := commandLine(cmd)
			if err := writeReportFile(filepath.Join(out, reportMarkdown), func(f *os.File) error { return report.WriteMarkdown(f, m, command) }); err != nil {
				return err
			}
			if err := writeReportFile(filepath.Join(out, reportSVG), func(f *os.File) error { return report.WriteSVG(f, m) }); err != nil {
				return err
			}
			if err := writeReportFile(filepath.Join(out, reportJSON), func(f *os.File) error {
				enc := json.NewEncoder(f)
				enc.SetIndent("", " ")
				return enc.Encode(m)
			}); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "eval report: %d cells in %.0f s (%d at a time); wrote %s, %s, %s in %s\n",
				len(m.Cells), m.Seconds, m.Jobs, reportMarkdown, reportSVG, reportJSON, out)
			viol, err := m.Floor()
			if err != nil {
				return err
			}
			for _, v := range viol {
				fmt.Fprintf(w, "rag floor broken: %s\n", v)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "out", "o", "docs/recall", "output folder")
	f.StringArrayVar(&vocabs, "vocab", defaultReportVocabs, "GGUF vocabulary and its budgets, FILE.gguf@B1,B2,...; repeat for more")
	f.StringVar(&sets, "sets", "chat:dev,chat:heldout,docs:dev,docs:heldout", "GENERATOR:SPLIT list; generators chat and docs, splits dev and heldout")
	f.StringVar(&sizes, "sizes", "32k,128k,512k", "history sizes of each seed's cases, in tokens (bytes/4)")
	f.StringVar(&variants, "variants", "assets,no-assets", "asset variants: assets (whatever is installed), no-assets (the pure-Go fallback)")
	f.IntVarP(&jobs, "jobs", "j", report.DefaultJobs, "cells run at once (at most GOMAXPROCS)")
	f.BoolVarP(&verbose, "verbose", "v", false, "a progress line per case and strategy")
	af.register(cmd)
	_ = f.MarkHidden("no-assets") // the no-assets variant is --variants' business here
	o := &base
	f.IntVar(&o.PerMessage, "per-message", 0, "chat-template tokens charged per message (0: the harness default)")
	f.IntVar(&o.Engine.TailPercent, "tail-percent", 40, "engine verbatim tail cap, percent of the budget")
	f.StringVar(&o.Engine.Render, "render", "outline", "engine memory layout: chronological or outline")
	return cmd
}

// commandLine writes the command as it was run: its path and the flags
// set, in flag order, each as --name=value (a repeated flag once a value).
func commandLine(cmd *cobra.Command) string {
	words := []string{cmd.CommandPath()}
	cmd.Flags().Visit(func(f *pflag.Flag) {
		vals := []string{f.Value.String()}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			vals = sv.GetSlice()
		}
		for _, v := range vals {
			words = append(words, "--"+f.Name+"="+v)
		}
	})
	return strings.Join(words, " ")
}

// writeReportFile creates path and fills it with write.
func writeReportFile(path string, write func(*os.File) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("eval report: %w", err)
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("eval report: %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("eval report: %w", err)
	}
	return nil
}
