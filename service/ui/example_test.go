package ui_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/muninn-es/muninn/service/ui"
)

// The UI mounts beside the REST gateway at ui.Pattern; with package service
// that is service.WithHandler(ui.Pattern, ui.Handler()). Here on a plain
// ServeMux: /ui/ is the page, its assets are below it, /ui redirects.
func ExampleHandler() {
	mux := http.NewServeMux()
	mux.Handle(ui.Pattern, ui.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, path := range []string{"/ui/", "/ui/app.js", "/ui/nothing.js"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
		fmt.Println(path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Output:
	// /ui/ 200 text/html; charset=utf-8
	// /ui/app.js 200 text/javascript; charset=utf-8
	// /ui/nothing.js 404 text/plain; charset=utf-8
}
