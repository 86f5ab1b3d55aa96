package report

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/megacontext/megacontext/tools/eval/run"
)

// floorMark follows a cell where megacontext recalls less than rag.
const floorMark = " ▼"

// WriteMarkdown writes the matrix as Markdown: what was run and how long
// it took, overall evidence recall per set, assets, vocabulary and budget,
// the rag floor's verdict, mean window tokens, then evidence recall by
// question type for each set and asset variant. command is the command
// line that produced it, quoted in the header.
func WriteMarkdown(w io.Writer, m *Matrix, command string) error {
	bw := bufio.NewWriter(w)
	strats := m.strategies()
	fmt.Fprintf(bw, "# Recall by question type, budget, split and assets\n\n")
	fmt.Fprintf(bw, "Written by `%s`, which ran the %d cells below in %s (%d at a time, %d CPUs).\n",
		command, len(m.Cells), (time.Duration(m.Seconds) * time.Second).String(), m.Jobs, m.CPUs)
	fmt.Fprintf(bw, "Each cell is **evidence recall** in %% (every evidence string of a question verbatim in the window), %s.\n",
		strings.Join(strats, " / "))
	fmt.Fprintf(bw, "%s marks a cell where megacontext recalls less than rag (the rag floor of issue 9).\n\n", strings.TrimSpace(floorMark))
	for _, s := range m.Sets {
		fmt.Fprintf(bw, "- %s: %d questions\n", s.Describe(), m.questions(s.Name()))
	}
	for _, v := range m.Vocabs {
		fmt.Fprintf(bw, "- vocabulary %s at %s tokens\n", v.Name, intList(v.Budgets))
	}
	for _, va := range m.Variants {
		fmt.Fprintf(bw, "- %s: %s\n", va.Name, va.Assets)
	}

	fmt.Fprintf(bw, "\n## Overall\n\n")
	m.writeGrid(bw, strats, true, func(r run.Result) string { return fmt.Sprintf("%.1f", 100*r.EvidenceRecall) })

	viol, err := m.Floor()
	checked := 0
	for _, v := range m.Vocabs {
		checked += len(v.Budgets) * len(m.Sets) * len(m.Variants)
	}
	switch {
	case err != nil:
		fmt.Fprintf(bw, "\nRag floor: not checked (%v).\n", err)
	case len(viol) == 0:
		fmt.Fprintf(bw, "\nRag floor: megacontext's evidence recall is at least rag's in all %d set × vocabulary × assets × budget cells.\n", checked)
	default:
		fmt.Fprintf(bw, "\nRag floor: megacontext recalls less than rag in %d of %d set × vocabulary × assets × budget cells:\n\n", len(viol), checked)
		for _, v := range viol {
			fmt.Fprintf(bw, "- %s\n", v)
		}
	}

	fmt.Fprintf(bw, "\n## Mean window tokens\n\n")
	m.writeGrid(bw, strats, false, func(r run.Result) string { return fmt.Sprintf("%.0f", r.WindowTokens) })

	fmt.Fprintf(bw, "\n## By question type\n")
	for _, s := range m.Sets {
		for _, va := range m.Variants {
			fmt.Fprintf(bw, "\n### %s, %s\n\n", s.Name(), va.Name)
			m.writeTypes(bw, strats, s.Name(), va.Name)
		}
	}
	return bw.Flush()
}

// strategies lists the strategies of the matrix's results, in order.
func (m *Matrix) strategies() []string {
	var out []string
	for _, c := range m.Cells {
		if c.Report == nil {
			continue
		}
		for _, r := range c.Report.Results {
			if !slices.Contains(out, r.Strategy) {
				out = append(out, r.Strategy)
			}
		}
	}
	return out
}

// questions counts a set's questions (from its first measured cell).
func (m *Matrix) questions(set string) int {
	for _, c := range m.Cells {
		if c.Set == set && c.Report != nil {
			n := 0
			for _, ci := range c.Report.Cases {
				n += ci.Questions
			}
			return n
		}
	}
	return 0
}

// column is one vocabulary and budget of the tables.
type column struct {
	vocab  string
	budget int
}

// columns are the vocabulary × budget columns of the tables, with their
// headings.
func (m *Matrix) columns() (heads []string, cols []column) {
	for _, v := range m.Vocabs {
		for _, b := range v.Budgets {
			heads = append(heads, fmt.Sprintf("%s %d", v.Name, b))
			cols = append(cols, column{v.Name, b})
		}
	}
	return heads, cols
}

// writeGrid writes one row per set and variant, one column per
// vocabulary and budget, each cell the strategies' values by format
// (marked where the rag floor breaks when mark is set).
func (m *Matrix) writeGrid(w io.Writer, strats []string, mark bool, format func(run.Result) string) {
	heads, cols := m.columns()
	fmt.Fprintf(w, "| set | assets | %s |\n", strings.Join(heads, " | "))
	fmt.Fprintf(w, "| --- | --- |%s\n", strings.Repeat(" --- |", len(heads)))
	for _, s := range m.Sets {
		for _, va := range m.Variants {
			fmt.Fprintf(w, "| %s | %s |", s.Name(), va.Name)
			for _, col := range cols {
				c := m.Cell(s.Name(), col.vocab, va.Name)
				fmt.Fprintf(w, " %s |", cellText(c, strats, col.budget, mark, format))
			}
			fmt.Fprintln(w)
		}
	}
}

// cellText joins the strategies' values at a budget with " / ", marking a
// broken rag floor when mark is set.
func cellText(c *Cell, strats []string, budget int, mark bool, format func(run.Result) string) string {
	var parts []string
	for _, s := range strats {
		r, ok := c.Result(s, budget)
		if !ok {
			parts = append(parts, "-")
			continue
		}
		parts = append(parts, format(r))
	}
	text := strings.Join(parts, " / ")
	mc, ok1 := c.Result(run.StrategyMegaContext, budget)
	rg, ok2 := c.Result(run.StrategyRAG, budget)
	if mark && ok1 && ok2 && mc.EvidenceRecall < rg.EvidenceRecall {
		text += floorMark
	}
	return text
}

// writeTypes writes a set and variant's evidence recall by question type:
// a row per type (all types first), a column per vocabulary and budget.
func (m *Matrix) writeTypes(w io.Writer, strats []string, set, variant string) {
	heads, cols := m.columns()
	var types []string
	for _, v := range m.Vocabs {
		if c := m.Cell(set, v.Name, variant); c != nil && c.Report != nil {
			for _, t := range run.TypeKeys(c.Report) {
				if !slices.Contains(types, t) {
					types = append(types, t)
				}
			}
		}
	}
	fmt.Fprintf(w, "| type (questions) | %s |\n", strings.Join(heads, " | "))
	fmt.Fprintf(w, "| --- |%s\n", strings.Repeat(" --- |", len(heads)))
	fmt.Fprintf(w, "| **all** (%d) |", m.questions(set))
	for _, col := range cols {
		fmt.Fprintf(w, " %s |", cellText(m.Cell(set, col.vocab, variant), strats, col.budget, true,
			func(r run.Result) string { return pctInt(r.EvidenceRecall) }))
	}
	fmt.Fprintln(w)
	for _, t := range types {
		n := 0
		row := make([]string, len(cols))
		for i, col := range cols {
			c := m.Cell(set, col.vocab, variant)
			var parts []string
			for _, s := range strats {
				r, ok := c.Result(s, col.budget)
				g, has := r.ByType[t]
				if !ok || !has {
					parts = append(parts, "-")
					continue
				}
				n = max(n, g.Questions)
				parts = append(parts, pctInt(g.EvidenceRecall))
			}
			row[i] = strings.Join(parts, " / ")
		}
		fmt.Fprintf(w, "| %s (%d) | %s |\n", t, n, strings.Join(row, " | "))
	}
}

func pctInt(f float64) string { return fmt.Sprint(int(math.Round(100 * f))) }

func intList(v []int) string {
	var parts []string
	for _, n := range v {
		parts = append(parts, fmt.Sprint(n))
	}
	return strings.Join(parts, ", ")
}
