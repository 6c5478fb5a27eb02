package golang

import (
	"fmt"
	"sort"
	"strings"
)

// Queries: a read model with an http route hint is a query RPC of its
// context's API, in a service of its own (<Context>QueryService, beside
// the commands' <Context>Service), answered from the generated projection
// tables by readmodels/queries_gen.go (package readmodels imports the
// contexts, so the contexts' packages cannot serve it):
//
//   - a route with the key as a path variable, on a unique key: Get<ReadModel>,
//     the row, NotFound when there is none;
//   - a route with the key as a path variable, on a key that is not unique
//     (the row has its own ID besides the key, CustomerOrders by
//     customer_id): List<ReadModel>, the rows of the key a page at a time;
//   - a route without the key: List<ReadModel>, every row a page at a time.
//
// Each takes min_position (a command's position: the answer waits until
// the read model has applied it); a list takes page_size (1 to 1000,
// default 50) and page_token (the previous page's next_page_token). A bad
// key, page size or page token is InvalidArgument.

// Page sizes of the generated list queries.
const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

// pquery is the query RPC of a read model.
type pquery struct {
	rm     *preadmodel
	list   bool // a page of rows
	byKey  bool // the key is the route's path variable
	method string
	path   string
	rpc    string // GetOrderDetails, ListCustomerOrders
}

// queryPlan checks a read model's route hint and returns its query.
func queryPlan(pr *preadmodel, method, path string) (*pquery, error) {
	if method != "GET" {
		return nil, fmt.Errorf("route %s %s: a query's method must be GET", method, path)
	}
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("route %s %s: the path must start with /", method, path)
	}
	q := &pquery{rm: pr, method: method, path: path}
	for _, m := range pathVar.FindAllStringSubmatch(path, -1) {
		if m[1] != pr.key.name {
			return nil, fmt.Errorf("route %s %s: {%s} is not the read model's key (%s)", method, path, m[1], pr.key.name)
		}
		q.byKey = true
	}
	if q.byKey && pr.key.typ.kind != kString && pr.key.typ.kind != kEnum && pr.key.typ.kind != kInt64 && pr.key.typ.kind != kDecimal {
		return nil, fmt.Errorf("route %s %s: the key %s is a %s, which a path cannot carry (string or int64 only)", method, path, pr.key.name, pr.key.typ.goType())
	}
	q.list = !q.byKey || pr.rowID != nil
	if q.list {
		q.rpc = "List" + pr.goName
	} else {
		q.rpc = "Get" + pr.goName
	}
	return q, nil
}

// queries returns the queries of the read models declared in c.
func queries(pm *pmodel, c *pctx) []*pquery {
	var qs []*pquery
	for _, r := range pm.readModels {
		if r.ctx == c && r.query != nil {
			qs = append(qs, r.query)
		}
	}
	return qs
}

// queryServiceName is the gRPC service of a context's queries.
func queryServiceName(c *pctx) string { return exported(c.name) + "QueryService" }

// unqualified returns t with the context qualifiers of its references
// removed: the proto messages live in the context's own package.
func unqualified(t *gtype) *gtype {
	switch t.kind {
	case kList:
		return &gtype{kind: kList, elem: unqualified(t.elem)}
	case kRef:
		_, name := splitRef(t.ref)
		return &gtype{kind: kRef, ref: name}
	}
	return t
}

// protoQueries writes a context's query service and its messages.
func protoQueries(w *writer, c *pctx, qs []*pquery) {
	if len(qs) == 0 {
		return
	}
	protoComment(w, "", fmt.Sprintf("%s answers the queries of the %s context's read models. min_position makes a query wait until the read model has applied that position (a command's, from its response).", queryServiceName(c), c.name))
	w.p("service %s {", queryServiceName(c))
	for _, q := range qs {
		protoComment(w, "  ", fmt.Sprintf("%s returns %s", q.rpc, queryWhat(q)))
		if q.list {
			w.p("  rpc %s(%sRequest) returns (%sResponse) {", q.rpc, q.rpc, q.rpc)
		} else {
			w.p("  rpc %s(%sRequest) returns (%s) {", q.rpc, q.rpc, q.rm.goName)
		}
		w.p("    option (google.api.http) = {")
		w.p("      get: %q", q.path)
		w.p("    };")
		w.p("  }")
	}
	w.p("}")
	w.p("")
	for _, q := range qs {
		r := q.rm
		protoComment(w, "", docFor(r.goName, r.doc, "is a row of a read model."))
		w.p("message %s {", r.goName)
		n := 0
		for _, f := range r.row.fields {
			n++
			protoComment(w, "  ", f.doc)
			w.p("  %s %s = %d;", unqualified(f.typ).protoType(), f.name, n)
		}
		w.p("}")
		w.p("")
		protoComment(w, "", fmt.Sprintf("%sRequest asks for %s", q.rpc, queryWhat(q)))
		w.p("message %sRequest {", q.rpc)
		n = 0
		if q.byKey {
			n++
			w.p("  %s %s = %d;", r.key.typ.protoType(), r.key.name, n)
		}
		if q.list {
			w.p("  // page_size is 1 to %d (default %d).", maxPageSize, defaultPageSize)
			w.p("  int32 page_size = %d;", n+1)
			w.p("  // page_token is the next_page_token of the previous page.")
			w.p("  string page_token = %d;", n+2)
			n += 2
		}
		w.p("  // min_position makes the query wait until the read model has applied")
		w.p("  // this position (bounded by a timeout).")
		w.p("  string min_position = %d;", n+1)
		w.p("}")
		w.p("")
		if q.list {
			protoComment(w, "", fmt.Sprintf("%sResponse is a page of %s rows.", q.rpc, r.goName))
			w.p("message %sResponse {", q.rpc)
			w.p("  repeated %s %s = 1;", r.goName, r.rows)
			w.p("  // next_page_token continues after this page; empty on the last one.")
			w.p("  string next_page_token = 2;")
			w.p("}")
			w.p("")
		}
	}
}

// queryWhat says what a query returns.
func queryWhat(q *pquery) string {
	switch {
	case !q.list:
		return fmt.Sprintf("the %s row of the given %s (NotFound if there is none).", q.rm.goName, q.rm.key.name)
	case q.byKey:
		return fmt.Sprintf("the %s rows of the given %s, a page at a time, in order of %s.", q.rm.goName, q.rm.key.name, q.rm.rowID.name)
	default:
		return fmt.Sprintf("every %s row, a page at a time, in order of %s.", q.rm.goName, q.rm.key.name)
	}
}

// toProto returns the Go expression converting expr, a value of the
// model's Go type t, to the generated proto type (api is its package).
func toProto(t *gtype, expr, api string, conv map[string]bool) string {
	switch t.kind {
	case kInt:
		return "int32(" + expr + ")"
	case kTimestamp:
		return "timestamppb.New(" + expr + ")"
	case kList:
		switch t.elem.kind {
		case kString, kEnum, kInt64, kDecimal, kBool:
			return expr
		}
		return "convertList(" + expr + ", func(v " + t.elem.goType() + ") " + protoGoTypeIn(t.elem, api) + " { return " + toProto(t.elem, "v", api, conv) + " })"
	case kRef:
		conv[t.ref] = true
		return refConv(t.ref) + "(" + expr + ")"
	}
	return expr
}

// refConv is the name of the converter of a qualified type reference.
func refConv(ref string) string {
	pkg, name := splitRef(ref)
	return unexported(pkg) + exported(name) + "ToProto"
}

// protoGoTypeIn is the Go type protoc-gen-go gives a value of t, with the
// API package api.
func protoGoTypeIn(t *gtype, api string) string {
	switch t.kind {
	case kInt:
		return "int32"
	case kTimestamp:
		return "*timestamppb.Timestamp"
	case kList:
		return "[]" + protoGoTypeIn(t.elem, api)
	case kRef:
		_, name := splitRef(t.ref)
		return "*" + api + "." + exported(name)
	}
	return t.goType()
}

// queriesGen returns readmodels/queries_gen.go: a server per context with
// queries, or nil if there are none.
func queriesGen(pm *pmodel, module string) ([]byte, error) {
	var served []*pctx
	for _, c := range pm.contexts {
		if len(queries(pm, c)) > 0 {
			served = append(served, c)
		}
	}
	if len(served) == 0 {
		return nil, nil
	}
	var body writer
	usesTime, needList, needStrings := false, false, false
	// conv collects the context types the rows use, qualified.
	conv := map[string]bool{}
	for _, c := range served {
		api := apiPkg(c)
		S := exported(c.name) + "Queries"
		body.p("// %s implements %s.%s on the read models.", S, protoPkg(pm, c), queryServiceName(c))
		body.p("type %s struct {", S)
		body.p("\t%s.Unimplemented%sServer", api, queryServiceName(c))
		body.p("\trm *ReadModels")
		body.p("}")
		body.p("")
		body.p("// %s returns the server of the %s context's queries.", S, c.name)
		body.p("func (rm *ReadModels) %s() *%s { return &%s{rm: rm} }", S, S, S)
		body.p("")
		body.p("// Register registers the server with a gRPC server.")
		body.p("func (q *%s) Register(g grpc.ServiceRegistrar) { %s.Register%sServer(g, q) }", S, api, queryServiceName(c))
		body.p("")
		body.p("// RegisterGateway registers the REST routes of %s with a", queryServiceName(c))
		body.p("// grpc-gateway mux, forwarding to the gRPC server at conn.")
		body.p("func (q *%s) RegisterGateway(ctx context.Context, mux *runtime.ServeMux, conn *grpc.ClientConn) error {", S)
		body.p("\treturn %s.Register%sHandler(ctx, mux, conn)", api, queryServiceName(c))
		body.p("}")
		body.p("")
		for _, q := range queries(pm, c) {
			r := q.rm
			for _, f := range r.row.fields {
				usesTime = usesTime || f.typ.usesTime() && !r.custom
			}
			body.p("// %s returns %s", q.rpc, queryWhat(q))
			if q.list {
				body.p("func (q *%s) %s(ctx context.Context, req *%s.%sRequest) (*%s.%sResponse, error) {", S, q.rpc, api, q.rpc, api, q.rpc)
			} else {
				body.p("func (q *%s) %s(ctx context.Context, req *%s.%sRequest) (*%s.%s, error) {", S, q.rpc, api, q.rpc, api, r.goName)
			}
			body.p("\tif err := check%s(ctx, req); err != nil {", q.rpc)
			body.p("\t\treturn nil, service.Status(err).Err()")
			body.p("\t}")
			if r.custom {
				body.p("\tif q.rm.%s == nil {", r.goName)
				body.p("\t\treturn nil, status.Error(codes.Unimplemented, \"read model %s is custom (kept by hand): set ReadModels.%s to its source\")", r.goName, r.goName)
				body.p("\t}")
				body.p("\treturn q.rm.%s.%s(ctx, req)", r.goName, q.rpc)
				body.p("}")
				body.p("")
				continue
			}
			body.p("\tt := q.rm.%s", r.goName)
			if q.byKey {
				body.p("\tkey := req.Get%s()", protoGo(r.key.name))
				if r.keyType == "string" {
					needStrings = true
					body.p("\tif key == \"\" || strings.ContainsRune(key, 0) {")
					body.p("\t\treturn nil, service.Status(service.FieldError(%q, \"must be non-empty, without NUL, got %%q\", key)).Err()", r.key.name)
					body.p("\t}")
				}
			}
			if q.list {
				body.p("\tsize := int(req.GetPageSize())")
				body.p("\tswitch {")
				body.p("\tcase size == 0:")
				body.p("\t\tsize = %d", defaultPageSize)
				body.p("\tcase size < 0 || size > %d:", maxPageSize)
				body.p("\t\treturn nil, service.Status(service.FieldError(\"page_size\", \"must be 1 to %d, got %%d\", size)).Err()", maxPageSize)
				body.p("\t}")
			}
			body.p("\tif err := service.Await(ctx, t.Projection, req.GetMinPosition()); err != nil {")
			body.p("\t\treturn nil, queryError(err, \"min_position\")")
			body.p("\t}")
			if !q.list {
				body.p("\trow, ok, err := t.Get(ctx, key)")
				body.p("\tif err != nil {")
				body.p("\t\treturn nil, queryError(err, \"\")")
				body.p("\t}")
				body.p("\tif !ok {")
				body.p("\t\treturn nil, status.Errorf(codes.NotFound, \"%s %%v not found\", key)", r.goName)
				body.p("\t}")
				body.p("\treturn %s(row), nil", unexported(r.goName)+"ToProto")
				body.p("}")
				body.p("")
				continue
			}
			body.p("\topts := []projection.QueryOption{projection.Limit(size)}")
			body.p("\tif tok := req.GetPageToken(); tok != \"\" {")
			body.p("\t\topts = append(opts, projection.After(tok))")
			body.p("\t}")
			if q.byKey {
				body.p("\tpage, err := t.By%s.Lookup(ctx, key, opts...)", r.key.goName)
			} else {
				body.p("\tpage, err := t.Table.Scan(ctx, opts...)")
			}
			body.p("\tif err != nil {")
			body.p("\t\treturn nil, queryError(err, \"page_token\")")
			body.p("\t}")
			body.p("\tresp := &%s.%sResponse{NextPageToken: page.Next}", api, q.rpc)
			body.p("\tfor _, e := range page.Entries {")
			body.p("\t\tresp.%s = append(resp.%s, %s(e.Value))", protoGo(r.rows), protoGo(r.rows), unexported(r.goName)+"ToProto")
			body.p("\t}")
			body.p("\treturn resp, nil")
			body.p("}")
			body.p("")
		}
		for _, q := range queries(pm, c) {
			r := q.rm
			if r.custom {
				body.p("// %sSource answers the %s query of the custom read model %s,", r.goName, q.rpc, r.goName)
				body.p("// which is kept by hand: set ReadModels.%s to one.", r.goName)
				body.p("type %sSource interface {", r.goName)
				if q.list {
					body.p("\t%s(ctx context.Context, req *%s.%sRequest) (*%s.%sResponse, error)", q.rpc, api, q.rpc, api, q.rpc)
				} else {
					body.p("\t%s(ctx context.Context, req *%s.%sRequest) (*%s.%s, error)", q.rpc, api, q.rpc, api, r.goName)
				}
				body.p("}")
				body.p("")
				continue
			}
			body.p("// %sToProto converts a %s row to the API's.", unexported(r.goName), r.goName)
			body.p("func %sToProto(v %s) *%s.%s {", unexported(r.goName), r.goName, api, r.goName)
			var parts []string
			for _, f := range r.row.fields {
				e := toProto(f.typ, "v."+f.goName, api, conv)
				needList = needList || strings.Contains(e, "convertList(")
				parts = append(parts, protoGo(f.name)+": "+e)
			}
			body.p("\treturn &%s.%s{%s}", api, r.goName, strings.Join(parts, ", "))
			body.p("}")
			body.p("")
		}
	}
	// The converters of the context types the rows use, and of those they
	// use in turn.
	done := map[string]bool{}
	for {
		var todo []string
		for ref := range conv {
			if !done[ref] {
				todo = append(todo, ref)
			}
		}
		if len(todo) == 0 {
			break
		}
		sort.Strings(todo)
		for _, ref := range todo {
			done[ref] = true
			pkg, name := splitRef(ref)
			var pc *pctx
			for _, c := range pm.contexts {
				if c.pkg == pkg {
					pc = c
				}
			}
			var t *pmsg
			if pc != nil {
				for _, ty := range pc.types {
					if ty.name == name || ty.goName == exported(name) {
						t = ty
					}
				}
			}
			if t == nil {
				return nil, fmt.Errorf("golang: read model query: no type %s", ref)
			}
			api := apiPkg(pc)
			body.p("// %s converts a %s.%s to the API's.", refConv(ref), pkg, t.goName)
			body.p("func %s(v %s.%s) *%s.%s {", refConv(ref), pkg, t.goName, api, t.goName)
			var parts []string
			for _, f := range t.fields {
				ft := qualify(f.typ, pkg)
				usesTime = usesTime || ft.usesTime()
				e := toProto(ft, "v."+f.goName, api, conv)
				needList = needList || strings.Contains(e, "convertList(")
				parts = append(parts, protoGo(f.name)+": "+e)
			}
			body.p("\treturn &%s.%s{%s}", api, t.goName, strings.Join(parts, ", "))
			body.p("}")
			body.p("")
		}
	}
	body.p("// queryError is the status of a query's error: InvalidArgument with a")
	body.p("// field violation naming field for a bad argument of the projection (a")
	body.p("// page token, a position).")
	body.p("func queryError(err error, field string) error {")
	body.p("\tvar fv *service.FieldViolation")
	body.p("\tif field != \"\" && !errors.As(err, &fv) && (errors.Is(err, projection.ErrInvalidArgument) || service.Status(err).Code() == codes.InvalidArgument) {")
	body.p("\t\terr = service.FieldError(field, \"%%v\", err)")
	body.p("\t}")
	body.p("\treturn service.Status(err).Err()")
	body.p("}")
	if needList {
		body.p("")
		body.p("// convertList converts every element of a list to the API's.")
		body.p("func convertList[T, P any](ts []T, f func(T) P) []P {")
		body.p("\tif ts == nil {")
		body.p("\t\treturn nil")
		body.p("\t}")
		body.p("\tps := make([]P, len(ts))")
		body.p("\tfor i, t := range ts {")
		body.p("\t\tps[i] = f(t)")
		body.p("\t}")
		body.p("\treturn ps")
		body.p("}")
	}

	var w writer
	w.p("%s", header(pm.file))
	w.p("")
	w.p("package readmodels")
	w.p("")
	w.p("import (")
	w.p("\t\"context\"")
	w.p("\t\"errors\"")
	if needStrings {
		w.p("\t\"strings\"")
	}
	w.p("")
	w.p("\t\"github.com/grpc-ecosystem/grpc-gateway/v2/runtime\"")
	w.p("\t\"google.golang.org/grpc\"")
	w.p("\t\"google.golang.org/grpc/codes\"")
	w.p("\t\"google.golang.org/grpc/status\"")
	if usesTime {
		w.p("\t\"google.golang.org/protobuf/types/known/timestamppb\"")
	}
	w.p("")
	w.p("\t\"github.com/muninn-es/muninn/projection\"")
	w.p("\t\"github.com/muninn-es/muninn/service\"")
	var imports []string
	for _, c := range served {
		imports = append(imports, fmt.Sprintf("\t%s %q", apiPkg(c), module+"/"+apiDir(c)))
	}
	pkgs := map[string]bool{}
	for ref := range conv {
		pkg, _ := splitRef(ref)
		pkgs[pkg] = true
	}
	for p := range pkgs {
		imports = append(imports, fmt.Sprintf("\t%q", module+"/"+p))
	}
	sort.Strings(imports)
	for _, i := range imports {
		w.p("%s", i)
	}
	w.p(")")
	w.p("")
	w.Write(body.Bytes())
	return source("readmodels/queries_gen.go", w.Bytes())
}

// queryHooks returns readmodels/queries.go as first written: a check hook
// per query, which lets every call through, or nil without queries.
func queryHooks(pm *pmodel, module string) ([]byte, error) {
	var w writer
	w.p("// The hooks of the generated queries (queries_gen.go): written by hand,")
	w.p("// and never overwritten by muninn gen go, which wrote these defaults once.")
	w.p("")
	w.p("package readmodels")
	w.p("")
	w.p("import (")
	w.p("\t\"context\"")
	w.p("")
	n := 0
	for _, c := range pm.contexts {
		if len(queries(pm, c)) > 0 {
			w.p("\t%s %q", apiPkg(c), module+"/"+apiDir(c))
			n++
		}
	}
	if n == 0 {
		return nil, nil
	}
	w.p(")")
	w.p("")
	for _, c := range pm.contexts {
		for _, q := range queries(pm, c) {
			w.p("// check%s checks a %s call before it is answered: an error", q.rpc, q.rpc)
			w.p("// answers the call instead (service.Status maps it; service.FieldError")
			w.p("// names the bad field). This default lets every call through.")
			w.p("func check%s(ctx context.Context, req *%s.%sRequest) error {", q.rpc, apiPkg(c), q.rpc)
			w.p("\treturn nil")
			w.p("}")
			w.p("")
		}
	}
	return source("readmodels/queries.go", w.Bytes())
}
