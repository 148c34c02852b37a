package httpapi

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/peercache/peercache/kv"
)

// ui is the dashboard: plain HTML, CSS and JavaScript, no build step and no
// external resources. It polls /v1/cluster and /v1/ring.
//
//go:embed ui
var ui embed.FS

// uiContentType returns the content type of a dashboard file.
func uiContentType(name string) (string, bool) {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8", true
	case ".css":
		return "text/css; charset=utf-8", true
	case ".js":
		return "text/javascript; charset=utf-8", true
	case ".svg":
		return "image/svg+xml", true
	}
	return "", false
}

// handleDashboard serves the dashboard page at exactly "/".
func (s *Server) handleDashboard(w http.ResponseWriter, r *http.Request) {
	s.serveUI(w, r, "index.html")
}

// handleDashboardAsset serves the dashboard's files under /ui/.
func (s *Server) handleDashboardAsset(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/ui/")
	if name == "" || name == "index.html" || strings.Contains(name, "..") || path.Clean(name) != name {
		writeError(w, kv.Errorf(http.StatusNotFound, "no dashboard file %q", r.URL.Path))
		return
	}
	s.serveUI(w, r, name)
}

func (s *Server) serveUI(w http.ResponseWriter, r *http.Request, name string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	if len(r.URL.RawQuery) > 0 {
		writeError(w, kv.Errorf(http.StatusBadRequest, "the dashboard takes no query parameters"))
		return
	}
	b, err := fs.ReadFile(ui, "ui/"+name)
	ct, known := uiContentType(name)
	if err != nil || !known {
		writeError(w, kv.Errorf(http.StatusNotFound, "no dashboard file %q", r.URL.Path))
		return
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(b)
	}
}
