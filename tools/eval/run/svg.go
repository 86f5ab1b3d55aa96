package run

import (
	"fmt"
	"io"

	"github.com/megacontext/megacontext/tools/eval/plot"
)

// WriteSVG plots recall against budget for each strategy of one report:
// evidence recall as solid lines, answer recall dashed, budgets on a log
// scale.
func WriteSVG(w io.Writer, r *Report) error {
	strats, _ := axes(r)
	questions := 0
	for _, c := range r.Cases {
		questions += c.Questions
	}
	var panel plot.Panel
	var legend []plot.Line
	for si, s := range strats {
		color := plot.Colors[si%len(plot.Colors)]
		ev := plot.Line{Label: s + " evidence", Color: color}
		ans := plot.Line{Label: s + " answer", Color: color, Dashed: true}
		for _, res := range r.Results {
			if res.Strategy == s {
				ev.Points = append(ev.Points, plot.Point{Budget: res.Budget, Recall: res.EvidenceRecall})
				ans.Points = append(ans.Points, plot.Point{Budget: res.Budget, Recall: res.AnswerRecall})
			}
		}
		panel.Lines = append(panel.Lines, ev, ans)
		legend = append(legend, plot.Line{Label: s, Color: color})
	}
	legend = append(legend,
		plot.Line{Label: "evidence", Color: "#333"},
		plot.Line{Label: "answer", Color: "#333", Dashed: true})
	return plot.WriteSVG(w, plot.Chart{
		Title:    "Recall at budget",
		Subtitle: fmt.Sprintf("%d questions, %d cases, tokens by %s", questions, len(r.Cases), r.Counter),
		Panels:   []plot.Panel{panel},
		Legend:   legend,
	})
}
