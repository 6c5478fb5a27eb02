package golang

import (
	"context"
	"embed"
	"fmt"
	"os"
	"os/exec"
	"path"
	"regexp"
	"strings"
)

// The service surface: per context with routed commands, a .proto of its
// gRPC service with grpc-gateway HTTP annotations (from the route hints),
// and the server that dispatches each call to its aggregate; one serve
// wiring for the module's main.

// googleAPI holds google/api/annotations.proto and http.proto (Apache-2.0,
// from googleapis), which the generated protos import.
//
//go:embed third_party
var googleAPI embed.FS

// Versions of the tools run to generate the gRPC and gateway code, the
// same as this repository's buf.gen.yaml.
const (
	bufModule     = "github.com/bufbuild/buf/cmd/buf@v1.75.0"
	protocGenGo   = "google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12"
	protocGenGRPC = "google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2"
	protocGenGW   = "github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@v2.33.0"
	// protocGenOpenAPI writes <context>.swagger.json beside each proto,
	// which api/<context>/v1/openapi_gen.go embeds for /openapi.json.
	protocGenOpenAPI = "github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@v2.33.0"
)

// openAPIGen returns api/<context>/v1/openapi_gen.go, which embeds the
// OpenAPI v2 document protoc-gen-openapiv2 writes (RunBuf) for the
// context's .proto.
func openAPIGen(pm *pmodel, c *pctx) ([]byte, error) {
	var w writer
	w.p("%s", header(pm.file))
	w.p("")
	w.p("package %s", apiPkg(c))
	w.p("")
	w.p("import _ \"embed\"")
	w.p("")
	w.p("// OpenAPI is the OpenAPI (swagger v2) document of %s, written by", protoPkg(pm, c))
	w.p("// protoc-gen-openapiv2 from %s.proto (buf generate), for service.WithOpenAPI.", c.pkg)
	w.p("//")
	w.p("//go:embed %s.swagger.json", c.pkg)
	w.p("var OpenAPI []byte")
	return source(path.Join(apiDir(c), "openapi_gen.go"), w.Bytes())
}

// prpc is one routed command of a context's service.
type prpc struct {
	agg    *pagg
	cmd    *pmsg
	method string // GET, POST, ...
	path   string
}

// routed returns the commands of c that have a route hint.
func routed(c *pctx) []prpc {
	var rs []prpc
	for _, a := range c.aggs {
		for _, cmd := range a.commands {
			if cmd.route != nil {
				rs = append(rs, prpc{agg: a, cmd: cmd, method: cmd.route.method, path: cmd.route.path})
			}
		}
	}
	return rs
}

var pathVar = regexp.MustCompile(`\{([^}=]+)`)

// checkRoute reports what of a route hint the gateway cannot serve: an
// unknown method, a path variable that is no field of the request.
func checkRoute(a *pagg, cmd *pmsg, method, p string) error {
	switch method {
	case "GET", "POST", "PUT", "PATCH", "DELETE":
	default:
		return fmt.Errorf("route %s %s: method %q is not GET, POST, PUT, PATCH or DELETE", method, p, method)
	}
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("route %s %s: the path must start with /", method, p)
	}
	for _, m := range pathVar.FindAllStringSubmatch(p, -1) {
		v := m[1]
		if v == a.id {
			continue
		}
		f := cmd.field(v)
		if f == nil || f.typ.kind != kString {
			return fmt.Errorf("route %s %s: {%s} is neither the aggregate's ID (%s) nor a string field of %s", method, p, v, a.id, cmd.name)
		}
	}
	return nil
}

// protoPkg is the proto package of a context: "<model>.<context>.v1".
func protoPkg(pm *pmodel, c *pctx) string { return lower(pm.name) + "." + c.pkg + ".v1" }

// apiDir is the directory of a context's proto and generated code.
func apiDir(c *pctx) string { return path.Join("api", c.pkg, "v1") }

// protoPath is a context's .proto file, relative to the module.
func protoPath(c *pctx) string { return path.Join(apiDir(c), c.pkg+".proto") }

// apiPkg is the Go package name of a context's generated proto code.
func apiPkg(c *pctx) string { return c.pkg + "v1" }

// serviceName is the gRPC service of a context: OrderService.
func serviceName(c *pctx) string { return exported(c.name) + "Service" }

func (t *gtype) protoType() string {
	switch t.kind {
	case kString, kEnum:
		return "string"
	case kInt:
		return "int32"
	case kInt64, kDecimal:
		return "int64"
	case kBool:
		return "bool"
	case kTimestamp:
		return "google.protobuf.Timestamp"
	case kList:
		return "repeated " + t.elem.protoType()
	case kRef:
		return exported(t.ref)
	}
	return "string"
}

// protoGo is the Go name protoc-gen-go gives a proto field: order_id is
// OrderId.
func protoGo(name string) string {
	var b strings.Builder
	up := true
	for _, r := range name {
		switch {
		case r == '_':
			up = true
		case up && r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
			up = false
		default:
			b.WriteRune(r)
			up = false
		}
	}
	return b.String()
}

func protoComment(w *writer, indent, text string) {
	text = strings.TrimSpace(text)
	if text == "" {
		return
	}
	line := indent + "//"
	for _, word := range strings.Fields(text) {
		if len(line)+1+len(word) > 78 && line != indent+"//" {
			w.p("%s", line)
			line = indent + "//"
		}
		line += " " + word
	}
	w.p("%s", line)
}

func protoFields(w *writer, fs []*pfield, n int) {
	for _, f := range fs {
		n++
		protoComment(w, "  ", f.doc)
		w.p("  %s %s = %d;", f.typ.protoType(), f.name, n)
	}
}

// protoFile returns the .proto of a context's service, or nil if none of
// its commands is routed.
func protoFile(pm *pmodel, c *pctx, module string) []byte {
	rs, qs := routed(c), queries(pm, c)
	if len(rs) == 0 && len(qs) == 0 {
		return nil
	}
	var w writer
	w.p("%s", strings.Replace(header(pm.file), "//", "//", 1))
	w.p("")
	w.p(`syntax = "proto3";`)
	w.p("")
	protoComment(&w, "", fmt.Sprintf("Package %s is the API of the %s context.", protoPkg(pm, c), c.name))
	w.p("package %s;", protoPkg(pm, c))
	w.p("")
	w.p(`import "google/api/annotations.proto";`)
	usesTime := false
	for _, ms := range allMsgs(c) {
		for _, f := range ms.fields {
			usesTime = usesTime || f.typ.usesTime()
		}
	}
	for _, q := range qs {
		for _, f := range q.rm.row.fields {
			usesTime = usesTime || f.typ.usesTime()
		}
	}
	if usesTime {
		w.p(`import "google/protobuf/timestamp.proto";`)
	}
	w.p("")
	w.p(`option go_package = "%s/%s;%s";`, module, apiDir(c), apiPkg(c))
	w.p("")
	if len(rs) > 0 {
		protoComment(&w, "", fmt.Sprintf("%s takes the commands of the %s context. Each answers with the aggregate's ID, its version and the log position of its last event (also in the muninn-version and muninn-position response headers).", serviceName(c), c.name))
		w.p("service %s {", serviceName(c))
	}
	for _, r := range rs {
		protoComment(&w, "  ", r.cmd.doc)
		w.p("  rpc %s(%sRequest) returns (%sResponse) {", r.cmd.goName, r.cmd.goName, r.cmd.goName)
		w.p("    option (google.api.http) = {")
		w.p("      %s: %q", strings.ToLower(r.method), r.path)
		if r.method != "GET" && r.method != "DELETE" {
			w.p(`      body: "*"`)
		}
		w.p("    };")
		w.p("  }")
	}
	if len(rs) > 0 {
		w.p("}")
		w.p("")
	}
	protoQueries(&w, c, qs)
	for _, t := range c.types {
		protoComment(&w, "", t.doc)
		w.p("message %s {", t.goName)
		protoFields(&w, t.fields, 0)
		w.p("}")
		w.p("")
	}
	for _, r := range rs {
		protoComment(&w, "", fmt.Sprintf("%sRequest is the %s command to the %s aggregate %s; an empty %s is a new aggregate's, chosen by the server.", r.cmd.goName, r.cmd.goName, r.agg.goName, r.agg.id, r.agg.id))
		w.p("message %sRequest {", r.cmd.goName)
		w.p("  string %s = 1;", r.agg.id)
		protoFields(&w, r.cmd.fields, 1)
		w.p("}")
		w.p("")
		protoComment(&w, "", fmt.Sprintf("%sResponse is the result of the %s command.", r.cmd.goName, r.cmd.goName))
		w.p("message %sResponse {", r.cmd.goName)
		w.p("  string %s = 1;", r.agg.id)
		w.p("  // version is the aggregate's version after the command.")
		w.p("  uint64 version = 2;")
		w.p("  // position is the log position of the command's last event.")
		w.p("  string position = 3;")
		w.p("}")
		w.p("")
	}
	return w.Bytes()
}

// fromProto returns the Go expression converting expr, a value of the
// generated proto type of t, to the model's Go type.
func fromProto(t *gtype, expr string) string {
	switch t.kind {
	case kInt:
		return "int(" + expr + ")"
	case kTimestamp:
		return expr + ".AsTime()"
	case kList:
		if t.elem.kind == kString || t.elem.kind == kEnum || t.elem.kind == kInt64 || t.elem.kind == kDecimal || t.elem.kind == kBool {
			return expr
		}
		return "convertList(" + expr + ", func(v " + t.elem.protoGoType() + ") " + t.elem.goType() + " { return " + fromProto(t.elem, "v") + " })"
	case kRef:
		return unexported(t.ref) + "FromProto(" + expr + ")"
	}
	return expr
}

// protoGoType is the Go type protoc-gen-go gives a value of t.
func (t *gtype) protoGoType() string {
	switch t.kind {
	case kInt:
		return "int32"
	case kTimestamp:
		return "*timestamppb.Timestamp"
	case kList:
		return "[]" + t.elem.protoGoType()
	case kRef:
		return "*APIPKG." + exported(t.ref)
	}
	return t.goType()
}

// serverGen returns the generated server of a context's service, or nil.
func serverGen(pm *pmodel, c *pctx, module string) ([]byte, error) {
	rs := routed(c)
	if len(rs) == 0 {
		return nil, nil
	}
	api := apiPkg(c)
	var w writer
	w.p("%s", header(pm.file))
	w.p("")
	w.p("package %s", c.pkg)
	w.p("")
	w.p("import (")
	w.p("\t\"context\"")
	w.p("\t\"fmt\"")
	w.p("")
	w.p("\t\"github.com/google/uuid\"")
	w.p("\t\"github.com/grpc-ecosystem/grpc-gateway/v2/runtime\"")
	w.p("\t\"google.golang.org/grpc\"")
	w.p("\t\"google.golang.org/grpc/codes\"")
	w.p("\t\"google.golang.org/grpc/status\"")
	w.p("")
	w.p("\t\"github.com/muninn-es/muninn/aggregate\"")
	w.p("\t\"github.com/muninn-es/muninn/command\"")
	w.p("\t%s %q", api, module+"/"+apiDir(c))
	w.p("\t\"github.com/muninn-es/muninn/service\"")
	w.p(")")
	w.p("")
	w.p("// Server implements %s.%s: each call is dispatched as its", protoPkg(pm, c), serviceName(c))
	w.p("// command to its aggregate on the command bus.")
	w.p("type Server struct {")
	w.p("\t%s.Unimplemented%sServer", api, serviceName(c))
	for _, a := range c.aggs {
		w.p("\t%s *command.Handler[%s, %s, %s]", unexported(a.name), a.goName, a.commandIface, a.eventIface)
	}
	w.p("}")
	w.p("")
	w.p("// NewServer registers the %s context's aggregates on bus (creating", c.name)
	w.p("// their topics if missing), each with opts, and returns its server.")
	w.p("func NewServer(ctx context.Context, bus *command.Bus, opts ...aggregate.Option) (*Server, error) {")
	w.p("\ts := &Server{}")
	for _, a := range c.aggs {
		v := unexported(a.name)
		w.p("\t%sAgg, err := %s(opts...)", v, a.newFunc)
		w.p("\tif err != nil {")
		w.p("\t\treturn nil, err")
		w.p("\t}")
		w.p("\tif s.%s, err = command.Register(ctx, bus, %sAgg); err != nil {", v, v)
		w.p("\t\treturn nil, fmt.Errorf(\"%s: register %s: %%w\", err)", c.pkg, a.goName)
		w.p("\t}")
	}
	w.p("\treturn s, nil")
	w.p("}")
	w.p("")
	for _, a := range c.aggs {
		w.p("// %sHandler returns the command handler of the %s aggregate, for", a.goName, a.goName)
		w.p("// in-process callers (Load, Dispatch).")
		w.p("func (s *Server) %sHandler() *command.Handler[%s, %s, %s] { return s.%s }", a.goName, a.goName, a.commandIface, a.eventIface, unexported(a.name))
		w.p("")
	}
	w.p("// Register registers the server with a gRPC server.")
	w.p("func (s *Server) Register(g grpc.ServiceRegistrar) { %s.Register%sServer(g, s) }", api, serviceName(c))
	w.p("")
	w.p("// RegisterGateway registers the REST routes of %s with a", serviceName(c))
	w.p("// grpc-gateway mux, forwarding to the gRPC server at conn.")
	w.p("func RegisterGateway(ctx context.Context, mux *runtime.ServeMux, conn *grpc.ClientConn) error {")
	w.p("\treturn %s.Register%sHandler(ctx, mux, conn)", api, serviceName(c))
	w.p("}")
	w.p("")
	w.p("// newID returns the ID of a new aggregate: a UUIDv7 (the default of the")
	w.p("// new<Aggregate>ID hooks of server.go).")
	w.p("func newID() (string, error) {")
	w.p("\tid, err := uuid.NewV7()")
	w.p("\tif err != nil {")
	w.p("\t\treturn \"\", status.Error(codes.Unavailable, err.Error())")
	w.p("\t}")
	w.p("\treturn id.String(), nil")
	w.p("}")
	w.p("")
	needList := false
	for _, r := range rs {
		a, cmd := r.agg, r.cmd
		idGet := "req.Get" + protoGo(a.id) + "()"
		w.p("// %s dispatches the %s command.", cmd.goName, cmd.goName)
		w.p("func (s *Server) %s(ctx context.Context, req *%s.%sRequest) (*%s.%sResponse, error) {", cmd.goName, api, cmd.goName, api, cmd.goName)
		w.p("\tctx = service.WithCall(ctx, service.CallFrom(ctx))")
		w.p("\tid := %s", idGet)
		w.p("\tif id == \"\" {")
		w.p("\t\tvar err error")
		w.p("\t\tif id, err = new%sID(ctx); err != nil {", a.goName)
		w.p("\t\t\treturn nil, service.Status(err).Err()")
		w.p("\t\t}")
		w.p("\t}")
		var parts []string
		for _, f := range cmd.fields {
			conv := fromProto(f.typ, "req.Get"+protoGo(f.name)+"()")
			needList = needList || strings.Contains(conv, "convertList(")
			parts = append(parts, f.goName+": "+conv)
		}
		w.p("\tcmd := %s{%s}", cmd.goName, strings.Join(parts, ", "))
		w.p("\tif err := check%s(ctx, id, &cmd); err != nil {", cmd.goName)
		w.p("\t\treturn nil, service.Status(err).Err()")
		w.p("\t}")
		w.p("\tres, err := s.%s.Dispatch(ctx, id, cmd, service.DispatchOptions(ctx)...)", unexported(a.name))
		w.p("\tif err != nil {")
		w.p("\t\treturn nil, service.Status(err).Err()")
		w.p("\t}")
		w.p("\t_ = service.SetResult(ctx, res)")
		w.p("\treturn &%s.%sResponse{%s: id, Version: res.Version, Position: service.PositionString(res.Position())}, nil", api, cmd.goName, protoGo(a.id))
		w.p("}")
		w.p("")
	}
	usesTime := false
	for _, t := range c.types {
		w.p("// %sFromProto converts the API's %s.", unexported(t.name), t.goName)
		w.p("func %sFromProto(v *%s.%s) %s {", unexported(t.name), api, t.goName, t.goName)
		w.p("\tif v == nil {")
		w.p("\t\treturn %s{}", t.goName)
		w.p("\t}")
		var parts []string
		for _, f := range t.fields {
			conv := fromProto(f.typ, "v.Get"+protoGo(f.name)+"()")
			needList = needList || strings.Contains(conv, "convertList(")
			parts = append(parts, f.goName+": "+conv)
		}
		w.p("\treturn %s{%s}", t.goName, strings.Join(parts, ", "))
		w.p("}")
		w.p("")
	}
	for _, ms := range allMsgs(c) {
		for _, f := range ms.fields {
			usesTime = usesTime || f.typ.usesTime()
		}
	}
	if needList {
		w.p("// convertList converts every element of a list of the API.")
		w.p("func convertList[P, T any](ps []P, f func(P) T) []T {")
		w.p("\tif ps == nil {")
		w.p("\t\treturn nil")
		w.p("\t}")
		w.p("\tts := make([]T, len(ps))")
		w.p("\tfor i, p := range ps {")
		w.p("\t\tts[i] = f(p)")
		w.p("\t}")
		w.p("\treturn ts")
		w.p("}")
	}
	src := strings.ReplaceAll(w.String(), "APIPKG", api)
	if usesTime {
		src = strings.Replace(src, "\t\"google.golang.org/grpc/status\"\n", "\t\"google.golang.org/grpc/status\"\n\t\"google.golang.org/protobuf/types/known/timestamppb\"\n", 1)
	}
	return source(c.pkg+"/server_gen.go", []byte(src))
}

// serverHooks returns <context>/server.go as first written: the hooks of
// the context's server, or nil if it has none.
func serverHooks(pm *pmodel, c *pctx) ([]byte, error) {
	rs := routed(c)
	if len(rs) == 0 {
		return nil, nil
	}
	var w writer
	w.p("// The hooks of the generated server (server_gen.go): written by hand,")
	w.p("// and never overwritten by muninn gen go, which wrote these defaults once.")
	w.p("")
	w.p("package %s", c.pkg)
	w.p("")
	w.p("import \"context\"")
	w.p("")
	seen := map[*pagg]bool{}
	for _, r := range rs {
		if seen[r.agg] {
			continue
		}
		seen[r.agg] = true
		w.p("// new%sID returns the %s of the %s that a call without one addresses", r.agg.goName, r.agg.id, r.agg.goName)
		w.p("// (service.CallFrom(ctx) has the call's metadata, its idempotency key")
		w.p("// among them). This default is a new UUIDv7.")
		w.p("func new%sID(ctx context.Context) (string, error) {", r.agg.goName)
		w.p("\treturn newID()")
		w.p("}")
		w.p("")
	}
	for _, r := range rs {
		w.p("// check%s checks, and may complete, a %s call's command to the", r.cmd.goName, r.cmd.goName)
		w.p("// %s %s before it is dispatched: an error answers the call instead", r.agg.goName, r.agg.id)
		w.p("// (service.Status maps it; service.FieldError names the bad field). This")
		w.p("// default lets every command through: the aggregate's rules decide.")
		w.p("func check%s(ctx context.Context, id string, cmd *%s) error {", r.cmd.goName, r.cmd.goName)
		w.p("\treturn nil")
		w.p("}")
		w.p("")
	}
	return source(c.pkg+"/server.go", w.Bytes())
}

// serveGen returns the module's generated wiring (package main): every
// context's server on one bus, one store and one service.Server.
func serveGen(pm *pmodel, module string) ([]byte, error) {
	var w writer
	w.p("%s", header(pm.file))
	w.p("")
	w.p("package main")
	w.p("")
	w.p("import (")
	w.p("\t\"context\"")
	w.p("\t\"errors\"")
	w.p("\t\"log/slog\"")
	w.p("")
	w.p("\t\"google.golang.org/grpc\"")
	w.p("")
	w.p("\t\"github.com/muninn-es/muninn/command\"")
	w.p("\t\"github.com/muninn-es/muninn/eventstore\"")
	w.p("\t\"github.com/muninn-es/muninn/service\"")
	if len(pm.readModels) > 0 {
		w.p("\t\"github.com/muninn-es/muninn/projection\"")
		w.p("\t%q", module+"/readmodels")
	}
	if len(pm.policies) > 0 || len(pm.sagas) > 0 {
		w.p("\t\"github.com/muninn-es/muninn/saga\"")
	}
	if len(pm.policies) > 0 {
		w.p("\t%q", module+"/policies")
	}
	for _, ps := range pm.sagas {
		w.p("\t%q", module+"/"+ps.pkg)
	}
	var served []*pctx
	for _, c := range pm.contexts {
		if len(routed(c)) > 0 {
			served = append(served, c)
		}
		w.p("\t%q", module+"/"+c.pkg)
	}
	for _, c := range pm.contexts {
		if len(routed(c)) > 0 || len(queries(pm, c)) > 0 {
			w.p("\t%s %q", apiPkg(c), module+"/"+apiDir(c))
		}
	}
	w.p(")")
	w.p("")
	w.p("// config is what serve needs: where the store is and where to listen.")
	w.p("type config struct {")
	w.p("\tData, GRPCAddr, HTTPAddr string")
	w.p("\tLogger                   *slog.Logger")
	w.p("\t// Started, if set, is called with the addresses once both servers listen.")
	w.p("\tStarted func(grpcAddr, httpAddr string)")
	w.p("}")
	w.p("")
	w.p("// serve serves the %s contexts' APIs over gRPC and REST until ctx ends.", pm.name)
	w.p("func serve(ctx context.Context, cfg config) error {")
	w.p("\tstore, err := eventstore.Open(cfg.Data)")
	w.p("\tif err != nil {")
	w.p("\t\treturn err")
	w.p("\t}")
	w.p("\tbus, err := command.New(store, command.WithName(%q), command.WithLogger(cfg.Logger))", lower(pm.name))
	w.p("\tif err != nil {")
	w.p("\t\treturn errors.Join(err, store.Close())")
	w.p("\t}")
	var docs []string
	for _, c := range pm.contexts {
		if len(routed(c)) > 0 || len(queries(pm, c)) > 0 {
			docs = append(docs, apiPkg(c)+".OpenAPI")
		}
	}
	w.p("\tsrv, err := service.New(service.WithGRPCAddr(cfg.GRPCAddr), service.WithHTTPAddr(cfg.HTTPAddr), service.WithLogger(cfg.Logger), service.WithTitle(%q),", pm.name)
	w.p("\t\tservice.WithOpenAPI(%s))", strings.Join(docs, ", "))
	w.p("\tif err != nil {")
	w.p("\t\treturn errors.Join(err, bus.Close(), store.Close())")
	w.p("\t}")
	// The aggregates of the contexts without a service take commands
	// from policies and sagas: they are on the bus too.
	for _, c := range pm.contexts {
		if len(routed(c)) > 0 {
			continue
		}
		for _, a := range c.aggs {
			v := unexported(c.pkg) + exported(a.name)
			w.p("	%s, err := %s.%s()", v, c.pkg, a.newFunc)
			w.p("	if err != nil {")
			w.p("		return errors.Join(err, bus.Close(), store.Close())")
			w.p("	}")
			w.p("	if _, err := command.Register(ctx, bus, %s); err != nil {", v)
			w.p("		return errors.Join(err, bus.Close(), store.Close())")
			w.p("	}")
		}
	}
	for _, c := range served {
		v := unexported(c.pkg) + "Server"
		w.p("\t%s, err := %s.NewServer(ctx, bus)", v, c.pkg)
		w.p("\tif err != nil {")
		w.p("\t\treturn errors.Join(err, bus.Close(), store.Close())")
		w.p("\t}")
		w.p("\tsrv.Register(func(g *grpc.Server) { %s.Register(g) })", v)
		w.p("\tsrv.RegisterGateway(%s.RegisterGateway)", c.pkg)
	}
	w.p("\tvar g service.Group")
	if len(pm.readModels) > 0 {
		w.p("\trm, err := readmodels.Open(store, projection.WithLogger(cfg.Logger))")
		w.p("\tif err != nil {")
		w.p("\t\treturn errors.Join(err, bus.Close(), store.Close())")
		w.p("\t}")
		w.p("\tfor _, p := range rm.Projections() {")
		w.p("\t\tg.Add(p.Name(), p)")
		w.p("\t}")
		for _, c := range pm.contexts {
			if len(queries(pm, c)) > 0 {
				v := unexported(c.pkg) + "Queries"
				w.p("\t%s := rm.%sQueries()", v, exported(c.name))
				w.p("\tsrv.Register(func(g *grpc.Server) { %s.Register(g) })", v)
				w.p("\tsrv.RegisterGateway(%s.RegisterGateway)", v)
			}
		}
	}
	if len(pm.policies) > 0 {
		w.p("\tfor _, p := range policies.All() {")
		w.p("\t\tpolicy, err := saga.New(store, bus, p, saga.WithLogger(cfg.Logger))")
		w.p("\t\tif err != nil {")
		w.p("\t\t\treturn errors.Join(err, bus.Close(), store.Close())")
		w.p("\t\t}")
		w.p("\t\tg.Add(policy.Name(), policy)")
		w.p("\t}")
	}
	for _, ps := range pm.sagas {
		v := unexported(ps.pkg) + "Saga"
		arg := ""
		if ps.timeoutSend != nil {
			arg = "0" // the model's timeout
		}
		w.p("\t%s, err := saga.New(store, bus, %s.Define(%s), saga.WithLogger(cfg.Logger))", v, ps.pkg, arg)
		w.p("\tif err != nil {")
		w.p("\t\treturn errors.Join(err, bus.Close(), store.Close())")
		w.p("\t}")
		w.p("\tg.Add(%s.Name(), %s)", v, v)
	}
	w.p("\tif cfg.Started != nil {")
	w.p("\t\tgo func() {")
	w.p("\t\t\tselect {")
	w.p("\t\t\tcase <-srv.Started():")
	w.p("\t\t\t\tcfg.Started(srv.GRPCAddr(), srv.HTTPAddr())")
	w.p("\t\t\tcase <-ctx.Done():")
	w.p("\t\t\t}")
	w.p("\t\t}()")
	w.p("\t}")
	w.p("\tg.AddCloser(\"store\", store)")
	w.p("\tg.AddCloser(\"bus\", bus)")
	w.p("\tg.AddServer(srv)")
	w.p("\treturn g.Run(ctx)")
	w.p("}")
	return source("serve_gen.go", w.Bytes())
}

// mainFile returns the module's main.go, written once.
func mainFile(pm *pmodel) ([]byte, error) {
	var w writer
	w.p("// Command %s serves the %s model's contexts over gRPC and REST: the", lower(pm.name), pm.name)
	w.p("// wiring is generated by muninn gen go (serve_gen.go); this file is yours.")
	w.p("package main")
	w.p("")
	w.p("import (")
	w.p("\t\"context\"")
	w.p("\t\"flag\"")
	w.p("\t\"fmt\"")
	w.p("\t\"log/slog\"")
	w.p("\t\"os\"")
	w.p("\t\"os/signal\"")
	w.p("\t\"syscall\"")
	w.p("")
	w.p("\t\"github.com/muninn-es/muninn/service\"")
	w.p(")")
	w.p("")
	w.p("func main() {")
	w.p("\tcfg := config{Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}")
	w.p("\tflag.StringVar(&cfg.Data, \"data\", \"data\", \"the event store's directory\")")
	w.p("\tflag.StringVar(&cfg.GRPCAddr, \"grpc\", service.DefaultGRPCAddr, \"the gRPC address (loopback by default)\")")
	w.p("\tflag.StringVar(&cfg.HTTPAddr, \"http\", service.DefaultHTTPAddr, \"the REST address (loopback by default)\")")
	w.p("\tflag.Parse()")
	w.p("\tcfg.Started = func(grpcAddr, httpAddr string) {")
	w.p("\t\tfmt.Printf(\"serving gRPC on %%s and REST on http://%%s\\n\", grpcAddr, httpAddr)")
	w.p("\t}")
	w.p("\tctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)")
	w.p("\tdefer stop()")
	w.p("\tif err := serve(ctx, cfg); err != nil {")
	w.p("\t\tfmt.Fprintln(os.Stderr, err)")
	w.p("\t\tos.Exit(1)")
	w.p("\t}")
	w.p("}")
	return source("main.go", w.Bytes())
}

// bufYAML and bufGenYAML configure buf in a generated module: the protos
// under api/ with the google/api annotations under third_party/, and the
// protoc plugins as Go modules at pinned versions.
const bufYAML = `# Generated by muninn gen go.
version: v2
modules:
  - path: api
  - path: third_party
`

var bufGenYAML = `# Generated by muninn gen go: the protoc plugins run as Go modules, at the
# versions pinned here, so regenerating needs only Go.
version: v2
plugins:
  - local: ["go", "run", "` + protocGenGo + `"]
    out: .
    opt: [paths=source_relative]
  - local: ["go", "run", "` + protocGenGRPC + `"]
    out: .
    opt: [paths=source_relative]
  - local: ["go", "run", "` + protocGenGW + `"]
    out: .
    opt: [paths=source_relative, generate_unbound_methods=false]
  - local: ["go", "run", "` + protocGenOpenAPI + `"]
    out: .
    opt: [json_names_for_fields=false, openapi_naming_strategy=fqn]
`

// RunBuf generates the gRPC and gateway Go code of the protos Generate
// wrote with Options.Service into dir: it runs buf and the protoc plugins
// as Go modules (go run, at pinned versions), so only Go and the module
// cache (or proxy) are needed. The first run compiles buf, which takes
// minutes; later ones use the build cache.
func RunBuf(ctx context.Context, dir string) error {
	cmd := exec.CommandContext(ctx, "go", "run", bufModule, "generate", "api", "-o", "api")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("golang: buf generate in %s: %w\n%s", dir, err, out)
	}
	return nil
}
