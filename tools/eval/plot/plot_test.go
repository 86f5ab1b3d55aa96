package plot

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
)

// The chart is well-formed XML, places every point of every line (one
// circle each, with its value in the tooltip), and escapes labels.
func TestWriteSVG(t *testing.T) {
	c := Chart{
		Title: "Recall <at> budget", Subtitle: "a & b", Columns: 2,
		Panels: []Panel{
			{Title: "left", Lines: []Line{{Label: "mc", Color: Colors[0], Points: []Point{{4096, 1}, {512, 0.25}, {1024, 0.5}}}}},
			{Title: "right", Lines: []Line{{Label: "rag", Color: Colors[1], Dashed: true, Points: []Point{{512, 0}}}}},
			{Title: "third row"},
		},
		Legend: []Line{{Label: "mc", Color: Colors[0]}, {Label: "rag", Color: Colors[1], Dashed: true}},
	}
	var buf bytes.Buffer
	if err := WriteSVG(&buf, c); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	dec := xml.NewDecoder(strings.NewReader(out))
	circles := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("not well-formed: %v\n%s", err, out)
			}
			break
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "circle" {
			circles++
		}
	}
	if circles != 4 {
		t.Errorf("%d points drawn, want 4", circles)
	}
	for _, want := range []string{"mc 512: 25.0%", "mc 4096: 100.0%", "rag 512: 0.0%", "Recall &lt;at&gt; budget", "a &amp; b", `height="656"`} {
		if !strings.Contains(out, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	// Points are joined in budget order whatever order they came in: the
	// line to 4096 is the last segment.
	i512, i4096 := strings.Index(out, "mc 512"), strings.Index(out, "mc 4096")
	if i512 < 0 || i4096 < i512 {
		t.Errorf("points not in budget order")
	}
}
