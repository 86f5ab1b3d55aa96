// Package plot draws the evaluation's recall-against-budget charts as
// hand-written SVG (stdlib only), so that a README can embed them and a
// diff shows what moved: one or more panels in a grid, each a set of
// lines over budgets on a log scale, recall from 0 to 100 % on the other
// axis, one shared legend.
package plot

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"slices"
)

// Point is one measurement of a line: recall at a budget.
type Point struct {
	// Budget is the window budget in tokens (the x axis, log scale).
	Budget int
	// Recall is a share from 0 to 1 (the y axis).
	Recall float64
}

// Line is one series of a panel.
type Line struct {
	// Label names the line in the legend and in each point's tooltip.
	Label string
	// Color is an SVG colour, for example "#1f77b4".
	Color string
	// Dashed draws the line dashed (another split, another measure).
	Dashed bool
	// Points are the measurements; they are drawn in budget order.
	Points []Point
}

// Panel is one chart of the grid.
type Panel struct {
	// Title is written above the panel.
	Title string
	// Lines are its series.
	Lines []Line
}

// Chart is a grid of panels sharing a legend.
type Chart struct {
	// Title and Subtitle head the whole chart.
	Title, Subtitle string
	// Columns is the number of panels a row (default 1).
	Columns int
	// Panels are laid out row by row.
	Panels []Panel
	// Legend lists the distinct lines to explain, in order: each entry's
	// Label, Color and Dashed are drawn, its Points ignored.
	Legend []Line
}

// Geometry of one panel and of the page around the grid.
const (
	panelW, panelH       = 480, 300 // a panel's box, axes' labels included
	innerLeft, innerTop  = 56, 30   // plot area offset in the panel
	innerW, innerH       = 400, 220 // plot area
	pageTop, pageLeft    = 56, 10   // room for the chart's title
	legendW              = 200      // room right of the grid
	legendRow            = 22
	pointRadius          = 3.5
	dash                 = ` stroke-dasharray="6 4"`
	gridSteps            = 5 // horizontal grid lines: every 20 %
	defaultChartColumns  = 1
	budgetAxisLabel      = "budget (tokens, log scale)"
	recallAxisLabel      = "recall"
	titleFontSize        = 16
	panelTitleFontSize   = 13
	defaultFontSize      = 12
	subtitleColor        = "#555"
	gridColor, axisColor = "#ddd", "#333"
)

// Colors is a palette for lines, in order.
var Colors = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"}

// WriteSVG writes the chart as one standalone SVG document.
func WriteSVG(w io.Writer, c Chart) error {
	cols := c.Columns
	if cols <= 0 {
		cols = defaultChartColumns
	}
	rows := (len(c.Panels) + cols - 1) / cols
	width := pageLeft + cols*panelW + legendW
	height := pageTop + max(rows, 1)*panelH
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="%d">`+"\n",
		width, height, width, height, defaultFontSize)
	fmt.Fprintf(bw, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(bw, `<text x="%d" y="22" font-size="%d" font-weight="bold">%s</text>`+"\n", pageLeft+innerLeft, titleFontSize, html.EscapeString(c.Title))
	fmt.Fprintf(bw, `<text x="%d" y="40" fill="%s">%s</text>`+"\n", pageLeft+innerLeft, subtitleColor, html.EscapeString(c.Subtitle))
	for i, p := range c.Panels {
		writePanel(bw, pageLeft+(i%cols)*panelW, pageTop+(i/cols)*panelH, p)
	}
	lx := pageLeft + cols*panelW + 10
	for i, l := range c.Legend {
		ly := pageTop + innerTop + 10 + i*legendRow
		fmt.Fprintf(bw, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n", lx, ly, lx+24, ly, l.Color, dashAttr(l.Dashed))
		fmt.Fprintf(bw, `<text x="%d" y="%d" dominant-baseline="middle">%s</text>`+"\n", lx+30, ly, html.EscapeString(l.Label))
	}
	bw.WriteString("</svg>\n")
	return bw.Flush()
}

func dashAttr(dashed bool) string {
	if dashed {
		return dash
	}
	return ""
}

// writePanel draws one panel with its top-left corner at (x0, y0).
func writePanel(bw *bufio.Writer, x0, y0 int, p Panel) {
	var budgets []int
	for _, l := range p.Lines {
		for _, pt := range l.Points {
			if !slices.Contains(budgets, pt.Budget) {
				budgets = append(budgets, pt.Budget)
			}
		}
	}
	slices.Sort(budgets)
	left, top := float64(x0+innerLeft), float64(y0+innerTop)
	x := func(b int) float64 {
		if len(budgets) < 2 {
			return left + innerW/2
		}
		lo, hi := math.Log2(float64(budgets[0])), math.Log2(float64(budgets[len(budgets)-1]))
		return left + (math.Log2(float64(b))-lo)/(hi-lo)*innerW
	}
	y := func(f float64) float64 { return top + (1-f)*innerH }

	fmt.Fprintf(bw, `<text x="%.1f" y="%.1f" font-size="%d" font-weight="bold">%s</text>`+"\n", left, top-10, panelTitleFontSize, html.EscapeString(p.Title))
	for i := 0; i <= gridSteps; i++ {
		f := float64(i) / gridSteps
		fmt.Fprintf(bw, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", left, y(f), left+innerW, y(f), gridColor)
		fmt.Fprintf(bw, `<text x="%.1f" y="%.1f" text-anchor="end" dominant-baseline="middle">%d%%</text>`+"\n", left-8, y(f), i*100/gridSteps)
	}
	for _, b := range budgets {
		fmt.Fprintf(bw, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", x(b), top, x(b), top+innerH, gridColor)
		fmt.Fprintf(bw, `<text x="%.1f" y="%.1f" text-anchor="middle">%d</text>`+"\n", x(b), top+innerH+18, b)
	}
	fmt.Fprintf(bw, `<rect x="%.1f" y="%.1f" width="%d" height="%d" fill="none" stroke="%s"/>`+"\n", left, top, innerW, innerH, axisColor)
	fmt.Fprintf(bw, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", left+innerW/2, top+innerH+36, budgetAxisLabel)
	fmt.Fprintf(bw, `<text transform="translate(%.1f %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", left-44, top+innerH/2, recallAxisLabel)

	for _, l := range p.Lines {
		pts := slices.Clone(l.Points)
		slices.SortFunc(pts, func(a, b Point) int { return a.Budget - b.Budget })
		fmt.Fprintf(bw, `<polyline fill="none" stroke="%s" stroke-width="2"%s points="`, l.Color, dashAttr(l.Dashed))
		for i, pt := range pts {
			if i > 0 {
				bw.WriteByte(' ')
			}
			fmt.Fprintf(bw, "%.1f,%.1f", x(pt.Budget), y(pt.Recall))
		}
		bw.WriteString(`"/>` + "\n")
		for _, pt := range pts {
			fmt.Fprintf(bw, `<circle cx="%.1f" cy="%.1f" r="%.1f" fill="%s"><title>%s %d: %.1f%%</title></circle>`+"\n",
				x(pt.Budget), y(pt.Recall), pointRadius, l.Color, html.EscapeString(l.Label), pt.Budget, 100*pt.Recall)
		}
	}
}
