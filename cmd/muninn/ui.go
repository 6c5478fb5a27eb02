package main

import (
	"github.com/muninn-es/muninn/service"
	"github.com/muninn-es/muninn/service/ui"
)

// uiOption mounts the admin web UI (package service/ui) at /ui/ on the
// server's HTTP side; /ui redirects there. The UI reads only the muninn.v1
// REST API the same server offers.
func uiOption() service.Option { return service.WithHandler(ui.Pattern, ui.Handler()) }
