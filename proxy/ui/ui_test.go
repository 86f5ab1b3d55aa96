package ui

import (
	"strings"
	"testing"
)

// TestFiles: the page and its files are served with their types; paths
// that climb out of the folder or name nothing are not.
func TestFiles(t *testing.T) {
	for _, tc := range []struct {
		name, typ, holds string
	}{
		{"", "text/html", `<script src="app.js"`},
		{"index.html", "text/html", "<main id=\"app\""},
		{"app.js", "javascript", "function h("},
		{"app.css", "text/css", "--r-pinned"},
		{"../ui.go", "javascript", ""}, // cleaned to "ui.go": not in static
	} {
		body, ct, ok := File(tc.name)
		if tc.holds == "" {
			if ok {
				t.Errorf("%q served (%d bytes)", tc.name, len(body))
			}
			continue
		}
		if !ok || !strings.Contains(ct, tc.typ) || !strings.Contains(string(body), tc.holds) {
			t.Errorf("%q: ok %v, type %q, body %.80q", tc.name, ok, ct, body)
		}
	}
	for _, name := range []string{"nope.js", "static/app.js", "/../../go.mod"} {
		if _, _, ok := File(name); ok {
			t.Errorf("%q served", name)
		}
	}
}

// TestNoInlineScript: the page runs under a CSP without 'unsafe-inline',
// so it must hold no inline script or style, and no on* attributes.
func TestNoInlineScript(t *testing.T) {
	body, _, _ := File("index.html")
	page := string(body)
	for _, bad := range []string{"<script>", "<style", " onclick=", " onload=", "style=\""} {
		if strings.Contains(page, bad) {
			t.Errorf("index.html holds %q", bad)
		}
	}
	if csp := SecurityHeaders["Content-Security-Policy"]; strings.Contains(csp, "unsafe") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", csp)
	}
	js, _, _ := File("app.js")
	if strings.Contains(string(js), "innerHTML") {
		t.Errorf("app.js writes innerHTML: memory text must go in as text")
	}
}
