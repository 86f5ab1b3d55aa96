// Package ui is the inspector's web UI: plain HTML, CSS and JavaScript
// embedded in the binary (no build step beyond the Go toolchain), served by
// the proxy under /megacontext/ui/. The page talks to the admin API with
// the key its visitor signs in with; it holds no data of its own.
package ui

import (
	"embed"
	"mime"
	"path"
	"strings"
)

//go:embed static
var files embed.FS

// File returns the UI file at name (a path below /megacontext/ui/; empty
// is the page itself) and its content type; ok is false when there is none.
func File(name string) (body []byte, contentType string, ok bool) {
	name = strings.TrimPrefix(path.Clean("/"+name), "/")
	if name == "" || name == "." {
		name = "index.html"
	}
	b, err := files.ReadFile("static/" + name)
	if err != nil {
		return nil, "", false
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	return b, ct, true
}

// SecurityHeaders are sent with every UI file: the page runs only its own
// script and style, talks only to its own origin, and is never framed.
var SecurityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
	"X-Content-Type-Options":  "nosniff",
	"X-Frame-Options":         "DENY",
	"Referrer-Policy":         "no-referrer",
	"Cache-Control":           "no-cache",
}
