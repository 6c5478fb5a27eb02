package ui

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// Pattern is the path the UI is served under, for service.WithHandler. A
// request for "/ui" without the slash is redirected to it by the server's
// http.ServeMux.
const Pattern = "/ui/"

//go:embed static
var static embed.FS

// contentSecurityPolicy allows the page only what it needs: its own scripts,
// styles and API calls, and inline SVG.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Handler returns the handler of the UI's files for requests under Pattern:
// the page for Pattern itself and for any path without a file extension
// (the page routes by its URL fragment), the file for an asset, and 404 for
// an asset that does not exist. Only GET and HEAD are answered (405
// otherwise). Every answer carries Cache-Control: no-cache, so that a new
// binary's UI is picked up at once, and the Content-Security-Policy above.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic("ui: the embedded files are missing: " + err.Error()) // cannot happen: embedded at build time
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "ui: only GET and HEAD are served", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		name, ok := strings.CutPrefix(r.URL.Path, Pattern)
		if !ok {
			http.NotFound(w, r)
			return
		}
		if name == "" || path.Ext(name) == "" {
			name = "index.html"
		}
		if name == "index.html" {
			// Not through the FileServer, which redirects /index.html to ./.
			http.ServeFileFS(w, r, sub, "index.html")
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + name
		r2.URL.RawPath = ""
		files.ServeHTTP(w, r2)
	})
}
