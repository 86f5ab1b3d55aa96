package run

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/megacontext/megacontext/tools/eval/dataset"
	"github.com/megacontext/megacontext/tools/eval/gen"
)

// WriteTable writes the report as readable tables: the summary per
// strategy and budget, then evidence/answer recall by question type and
// by history size.
func WriteTable(w io.Writer, r *Report) error {
	bw := bufio.NewWriter(w)
	var sizes []string
	questions := 0
	for _, c := range r.Cases {
		sizes = append(sizes, c.Size)
		questions += c.Questions
	}
	fmt.Fprintf(bw, "counter %s, %d cases (%s), %d questions\n\n", r.Counter, len(r.Cases), strings.Join(sizes, ", "), questions)
	fmt.Fprintf(bw, "%-12s %7s %9s %9s %7s %7s %8s %8s %7s %7s %5s\n",
		"strategy", "budget", "questions", "evidence", "answer", "tokens", "p50 ms", "p99 ms", "stable", "cache", "over")
	for _, res := range r.Results {
		fmt.Fprintf(bw, "%-12s %7d %9d %9s %7s %7.0f %8.2f %8.2f %7s %7s %5d\n",
			res.Strategy, res.Budget, res.Questions, pct(res.EvidenceRecall), pct(res.AnswerRecall),
			res.WindowTokens, res.AssemblyMSP50, res.AssemblyMSP99, pct(res.PrefixStability), pct(res.CachePrefix), res.OverBudget)
	}
	fmt.Fprintln(bw)
	writeGroups(bw, r, "question type", TypeKeys(r), func(res Result) map[string]Group { return res.ByType })
	fmt.Fprintln(bw)
	writeGroups(bw, r, "history size", sizeKeys(r), func(res Result) map[string]Group { return res.BySize })
	if len(r.Cases) > 0 {
		fmt.Fprintln(bw)
		fmt.Fprintf(bw, "%-28s %7s %9s", "case", "size", "tokens")
		names := ingestNames(r)
		for _, n := range names {
			fmt.Fprintf(bw, " %14s", "ingest "+n)
		}
		fmt.Fprintln(bw)
		for _, c := range r.Cases {
			fmt.Fprintf(bw, "%-28s %7s %9d", c.ID, c.Size, c.HistoryTokens)
			for _, n := range names {
				fmt.Fprintf(bw, " %12.0fms", c.IngestMS[n])
			}
			fmt.Fprintln(bw)
		}
	}
	return bw.Flush()
}

// writeGroups writes one breakdown: a row per key, a column per strategy
// and budget, each cell "evidence/answer" in percent.
func writeGroups(w io.Writer, r *Report, what string, keys []string, get func(Result) map[string]Group) {
	strats, budgets := axes(r)
	fmt.Fprintf(w, "evidence/answer recall (%%) by %s\n", what)
	const cell = 8
	fmt.Fprintf(w, "%-22s", "")
	for _, s := range strats {
		fmt.Fprintf(w, " %-*s", cell*len(budgets), s)
	}
	fmt.Fprintln(w)
	words := strings.Fields(what)
	fmt.Fprintf(w, "%-22s", words[len(words)-1]+" (n)")
	for range strats {
		for _, b := range budgets {
			fmt.Fprintf(w, " %*d", cell-1, b)
		}
		fmt.Fprint(w, " ")
	}
	fmt.Fprintln(w)
	byKey := map[[2]string]Result{}
	for _, res := range r.Results {
		byKey[[2]string{res.Strategy, fmt.Sprint(res.Budget)}] = res
	}
	for _, k := range keys {
		n := 0
		for _, res := range r.Results {
			n = max(n, get(res)[k].Questions)
		}
		fmt.Fprintf(w, "%-22s", fmt.Sprintf("%s (%d)", k, n))
		for _, s := range strats {
			for _, b := range budgets {
				g, ok := get(byKey[[2]string{s, fmt.Sprint(b)}])[k]
				if !ok || g.Questions == 0 {
					fmt.Fprintf(w, " %*s", cell-1, "-")
					continue
				}
				fmt.Fprintf(w, " %*s", cell-1, fmt.Sprintf("%d/%d", pctInt(g.EvidenceRecall), pctInt(g.AnswerRecall)))
			}
			fmt.Fprint(w, " ")
		}
		fmt.Fprintln(w)
	}
}

// axes returns the strategies and budgets of the results, in order.
func axes(r *Report) (strats []string, budgets []int) {
	for _, res := range r.Results {
		if !slices.Contains(strats, res.Strategy) {
			strats = append(strats, res.Strategy)
		}
		if !slices.Contains(budgets, res.Budget) {
			budgets = append(budgets, res.Budget)
		}
	}
	return strats, budgets
}

// TypeKeys lists the question types of a report's results: the known
// ones (dataset.Types) in their order, then others sorted.
func TypeKeys(r *Report) []string {
	have := map[string]bool{}
	for _, res := range r.Results {
		for k := range res.ByType {
			have[k] = true
		}
	}
	var out []string
	for _, t := range dataset.Types() {
		if have[t] {
			out = append(out, t)
			delete(have, t)
		}
	}
	var rest []string
	for k := range have {
		rest = append(rest, k)
	}
	slices.Sort(rest)
	return append(out, rest...)
}

// sizeKeys lists the history sizes present, smallest first.
func sizeKeys(r *Report) []string {
	var out []string
	for _, c := range r.Cases {
		if !slices.Contains(out, c.Size) {
			out = append(out, c.Size)
		}
	}
	for _, res := range r.Results {
		for k := range res.BySize {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b string) int { return sizeValue(a) - sizeValue(b) })
	return out
}

// sizeValue parses a size label for sorting (0 when it is not one).
func sizeValue(s string) int {
	v, err := gen.ParseSizes(s)
	if err != nil || len(v) != 1 {
		return 0
	}
	return v[0]
}

func ingestNames(r *Report) []string {
	var out []string
	for _, res := range r.Results {
		if !slices.Contains(out, res.Strategy) {
			out = append(out, res.Strategy)
		}
	}
	return out
}

func pct(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) }

func pctInt(f float64) int { return int(math.Round(100 * f)) }
