package report

import (
	"fmt"
	"io"
	"slices"

	"github.com/megacontext/megacontext/tools/eval/plot"
	"github.com/megacontext/megacontext/tools/eval/run"
)

// plotStrategies are the strategies the plot compares.
var plotStrategies = []string{run.StrategyMegaContext, run.StrategyRAG}

// WriteSVG plots evidence recall against budget, megacontext against rag,
// each split a line (dev solid, held-out dashed): a panel per generator
// and asset variant (rows) and vocabulary (columns).
func WriteSVG(w io.Writer, m *Matrix) error {
	var generators []string
	for _, s := range m.Sets {
		if !slices.Contains(generators, s.Generator) {
			generators = append(generators, s.Generator)
		}
	}
	chart := plot.Chart{
		Title:    "Evidence recall at budget: megacontext vs rag",
		Subtitle: "dev split solid, held-out split dashed; rag with the same expansions",
		Columns:  len(m.Vocabs),
	}
	for si, strat := range plotStrategies {
		color := plot.Colors[si%len(plot.Colors)]
		for _, split := range []string{SplitDev, SplitHeldOut} {
			chart.Legend = append(chart.Legend, plot.Line{Label: strat + " " + split, Color: color, Dashed: split == SplitHeldOut})
		}
	}
	for _, g := range generators {
		for _, va := range m.Variants {
			for _, v := range m.Vocabs {
				p := plot.Panel{Title: fmt.Sprintf("%s set, %s, %s", g, va.Name, v.Name)}
				for si, strat := range plotStrategies {
					color := plot.Colors[si%len(plot.Colors)]
					for _, s := range m.Sets {
						if s.Generator != g {
							continue
						}
						l := plot.Line{Label: strat + " " + s.Name(), Color: color, Dashed: s.Split == SplitHeldOut}
						c := m.Cell(s.Name(), v.Name, va.Name)
						for _, b := range v.Budgets {
							if r, ok := c.Result(strat, b); ok {
								l.Points = append(l.Points, plot.Point{Budget: b, Recall: r.EvidenceRecall})
							}
						}
						if len(l.Points) > 0 {
							p.Lines = append(p.Lines, l)
						}
					}
				}
				chart.Panels = append(chart.Panels, p)
			}
		}
	}
	return plot.WriteSVG(w, chart)
}
