package ui_test

import (
	"io"

	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/muninn-es/muninn/service/ui"
)

func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(ui.Pattern, ui.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestHandlerServesThePageAndItsAssets(t *testing.T) {
	srv := newServer(t)
	c := srv.Client()
	for _, tc := range []struct {
		path, contentType, contains string
	}{
		{"/ui/", "text/html", `<script type="module" src="app.js">`},
		{"/ui/lineage", "text/html", `<main id="main">`},
		{"/ui/app.js", "text/javascript", "hashchange"},
		{"/ui/lineage.js", "text/javascript", "export async function lineage"},
		{"/ui/style.css", "text/css", "--event:"},
	} {
		resp, body := get(t, c, srv.URL+tc.path)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", tc.path, resp.StatusCode)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.contentType) {
			t.Errorf("GET %s: Content-Type %q, want %s", tc.path, ct, tc.contentType)
		}
		if !strings.Contains(body, tc.contains) {
			t.Errorf("GET %s: the body lacks %q", tc.path, tc.contains)
		}
		for _, hd := range []string{"Content-Security-Policy", "Cache-Control", "X-Content-Type-Options"} {
			if resp.Header.Get(hd) == "" {
				t.Errorf("GET %s: no %s header", tc.path, hd)
			}
		}
	}
	if csp := func() string { r, _ := get(t, c, srv.URL+"/ui/"); return r.Header.Get("Content-Security-Policy") }(); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Errorf("Content-Security-Policy %q: want scripts from the origin only, nothing unsafe", csp)
	}
}

func TestHandlerRefusesWhatIsNotThere(t *testing.T) {
	srv := newServer(t)
	c := srv.Client()
	if resp, _ := get(t, c, srv.URL+"/ui/missing.js"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /ui/missing.js: %d, want 404", resp.StatusCode)
	}
	resp, err := c.Post(srv.URL+"/ui/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") == "" {
		t.Errorf("POST /ui/: %d, Allow %q; want 405 with Allow", resp.StatusCode, resp.Header.Get("Allow"))
	}
	if resp, _ := get(t, c, srv.URL+"/ui/../go.mod"); resp.StatusCode == http.StatusOK {
		t.Errorf("GET /ui/../go.mod: 200, want a refusal")
	}
}

func TestBareUIRedirectsToThePage(t *testing.T) {
	srv := newServer(t)
	c := *srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, _ := get(t, &c, srv.URL+"/ui")
	if resp.StatusCode/100 != 3 || resp.Header.Get("Location") != "/ui/" {
		t.Fatalf("GET /ui: %d to %q, want a redirect to /ui/", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestModulesImportOnlyEmbeddedFiles checks, without a browser, that every
// module the page loads exists, imports only files that exist, and builds
// no markup from strings.
func TestModulesImportOnlyEmbeddedFiles(t *testing.T) {
	srv := newServer(t)
	c := srv.Client()
	imp := regexp.MustCompile(`(?m)^\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"`)
	seen := map[string]bool{}
	queue := []string{"app.js"}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if seen[name] {
			continue
		}
		seen[name] = true
		resp, body := get(t, c, srv.URL+"/ui/"+name)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("module %s: %d", name, resp.StatusCode)
			continue
		}
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
			if strings.Contains(body, bad) {
				t.Errorf("module %s uses %s", name, bad)
			}
		}
		for _, m := range imp.FindAllStringSubmatch(body, -1) {
			if !strings.HasPrefix(m[1], "./") {
				t.Errorf("module %s imports %q: only files of the UI itself", name, m[1])
				continue
			}
			queue = append(queue, strings.TrimPrefix(m[1], "./"))
		}
	}
	for _, want := range []string{"dom.js", "pages.js", "lineage.js"} {
		if !seen[want] {
			t.Errorf("app.js does not reach %s", want)
		}
	}
}
