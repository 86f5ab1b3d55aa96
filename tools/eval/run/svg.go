package run

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"slices"
)

// plot geometry.
const (
	plotW, plotH         = 720, 440
	plotLeft, plotRight  = 70, 170
	plotTop, plotBottom  = 50, 60
	plotInnerW           = plotW - plotLeft - plotRight
	plotInnerH           = plotH - plotTop - plotBottom
	plotLegendX          = plotW - plotRight + 20
	plotPointRadius      = 3.5
	plotTitle            = "Recall at budget"
	plotSubtitleTemplate = "%d questions, %d cases, tokens by %s"
)

var plotColors = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"}

// WriteSVG plots recall against budget for each strategy: evidence recall
// as solid lines, answer recall dashed, budgets on a log scale.
func WriteSVG(w io.Writer, r *Report) error {
	bw := bufio.NewWriter(w)
	strats, budgets := axes(r)
	slices.Sort(budgets)
	questions := 0
	for _, c := range r.Cases {
		questions += c.Questions
	}
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", plotW, plotH, plotW, plotH)
	fmt.Fprintf(bw, `<rect width="%d" height="%d" fill="white"/>`+"\n", plotW, plotH)
	fmt.Fprintf(bw, `<text x="%d" y="22" font-size="16" font-weight="bold">%s</text>`+"\n", plotLeft, plotTitle)
	fmt.Fprintf(bw, `<text x="%d" y="40" fill="#555">%s</text>`+"\n", plotLeft,
		html.EscapeString(fmt.Sprintf(plotSubtitleTemplate, questions, len(r.Cases), r.Counter)))

	x := func(b int) float64 {
		if len(budgets) < 2 {
			return plotLeft + plotInnerW/2
		}
		lo, hi := math.Log2(float64(budgets[0])), math.Log2(float64(budgets[len(budgets)-1]))
		return plotLeft + (math.Log2(float64(b))-lo)/(hi-lo)*plotInnerW
	}
	y := func(f float64) float64 { return plotTop + (1-f)*plotInnerH }

	// Grid and axes.
	for i := 0; i <= 10; i += 2 {
		f := float64(i) / 10
		fmt.Fprintf(bw, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", plotLeft, y(f), plotLeft+plotInnerW, y(f))
		fmt.Fprintf(bw, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%d%%</text>`+"\n", plotLeft-8, y(f), i*10)
	}
	for _, b := range budgets {
		fmt.Fprintf(bw, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>`+"\n", x(b), plotTop, x(b), plotTop+plotInnerH)
		fmt.Fprintf(bw, `<text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n", x(b), plotTop+plotInnerH+18, b)
	}
	fmt.Fprintf(bw, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", plotLeft, plotTop, plotInnerW, plotInnerH)
	fmt.Fprintf(bw, `<text x="%d" y="%d" text-anchor="middle">budget (tokens, log scale)</text>`+"\n", plotLeft+plotInnerW/2, plotH-15)
	fmt.Fprintf(bw, `<text transform="translate(18 %d) rotate(-90)" text-anchor="middle">recall</text>`+"\n", plotTop+plotInnerH/2)

	for si, s := range strats {
		color := plotColors[si%len(plotColors)]
		var res []Result
		for _, rr := range r.Results {
			if rr.Strategy == s {
				res = append(res, rr)
			}
		}
		slices.SortFunc(res, func(a, b Result) int { return a.Budget - b.Budget })
		for _, kind := range []struct {
			get  func(Result) float64
			dash string
		}{
			{func(r Result) float64 { return r.EvidenceRecall }, ""},
			{func(r Result) float64 { return r.AnswerRecall }, ` stroke-dasharray="6 4"`},
		} {
			fmt.Fprintf(bw, `<polyline fill="none" stroke="%s" stroke-width="2"%s points="`, color, kind.dash)
			for i, rr := range res {
				if i > 0 {
					bw.WriteByte(' ')
				}
				fmt.Fprintf(bw, "%.1f,%.1f", x(rr.Budget), y(kind.get(rr)))
			}
			bw.WriteString(`"/>` + "\n")
			for _, rr := range res {
				fmt.Fprintf(bw, `<circle cx="%.1f" cy="%.1f" r="%.1f" fill="%s"><title>%s %d: %.1f%%</title></circle>`+"\n",
					x(rr.Budget), y(kind.get(rr)), plotPointRadius, color, html.EscapeString(s), rr.Budget, 100*kind.get(rr))
			}
		}
		ly := plotTop + 10 + si*22
		fmt.Fprintf(bw, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>`+"\n", plotLegendX, ly, plotLegendX+24, ly, color)
		fmt.Fprintf(bw, `<text x="%d" y="%d" dominant-baseline="middle">%s</text>`+"\n", plotLegendX+30, ly, html.EscapeString(s))
	}
	ly := plotTop + 10 + len(strats)*22 + 14
	fmt.Fprintf(bw, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333" stroke-width="2"/>`+"\n", plotLegendX, ly, plotLegendX+24, ly)
	fmt.Fprintf(bw, `<text x="%d" y="%d" dominant-baseline="middle">evidence</text>`+"\n", plotLegendX+30, ly)
	fmt.Fprintf(bw, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333" stroke-width="2" stroke-dasharray="6 4"/>`+"\n", plotLegendX, ly+20, plotLegendX+24, ly+20)
	fmt.Fprintf(bw, `<text x="%d" y="%d" dominant-baseline="middle">answer</text>`+"\n", plotLegendX+30, ly+20)
	bw.WriteString("</svg>\n")
	return bw.Flush()
}
