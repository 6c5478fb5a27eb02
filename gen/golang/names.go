package golang

import (
	"strings"
	"unicode"
)

// initialisms are the words Go spells in capitals (golint's list, plus the
// shop's SKU).
var initialisms = map[string]bool{
	"ACL": true, "API": true, "ASCII": true, "CPU": true, "CSS": true, "DNS": true, "EOF": true,
	"GUID": true, "HTML": true, "HTTP": true, "HTTPS": true, "ID": true, "IP": true, "JSON": true,
	"LHS": true, "QPS": true, "RAM": true, "RHS": true, "RPC": true, "SKU": true, "SLA": true,
	"SMTP": true, "SQL": true, "SSH": true, "TCP": true, "TLS": true, "TTL": true, "UDP": true,
	"UI": true, "UID": true, "UUID": true, "URI": true, "URL": true, "UTF8": true, "VM": true,
	"XML": true, "XMPP": true, "XSRF": true, "XSS": true,
}

// words splits a name in snake_case, kebab-case, dotted or CamelCase into
// its words.
func words(name string) []string {
	var out []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			out = append(out, string(cur))
			cur = cur[:0]
		}
	}
	rs := []rune(name)
	for i, r := range rs {
		switch {
		case r == '_' || r == '-' || r == '.' || r == ' ' || r == '/':
			flush()
		case unicode.IsUpper(r):
			// A capital starts a word unless it continues an acronym
			// ("HTTPServer": HTTP, Server).
			if len(cur) > 0 && (!unicode.IsUpper(rs[i-1]) || (i+1 < len(rs) && unicode.IsLower(rs[i+1]))) {
				flush()
			}
			cur = append(cur, r)
		default:
			cur = append(cur, r)
		}
	}
	flush()
	return out
}

// exported returns the Go exported identifier of a name: "customer_id" is
// CustomerID, "order" Order, "MarkPaid" MarkPaid.
func exported(name string) string {
	var b strings.Builder
	for _, w := range words(name) {
		if up := strings.ToUpper(w); initialisms[up] {
			b.WriteString(up)
			continue
		}
		rs := []rune(w)
		b.WriteRune(unicode.ToUpper(rs[0]))
		b.WriteString(string(rs[1:]))
	}
	return b.String()
}

// unexported returns the unexported Go identifier of a name: "Order" is
// order, "customer_id" customerID, "ID" id.
func unexported(name string) string {
	ws := words(name)
	if len(ws) == 0 {
		return ""
	}
	first := strings.ToLower(ws[0])
	rest := exported(strings.Join(ws[1:], "_"))
	id := first + rest
	if isKeyword(id) {
		id += "_"
	}
	return id
}

// snake returns the snake_case of a name: "CustomerID" is customer_id.
func snake(name string) string {
	ws := words(name)
	for i, w := range ws {
		ws[i] = strings.ToLower(w)
	}
	return strings.Join(ws, "_")
}

// kebab returns the kebab-case of a name: "MarkPaid" is mark-paid.
func kebab(name string) string { return strings.ReplaceAll(snake(name), "_", "-") }

// lower returns the name in lower case without separators: "OrderDetails"
// is orderdetails, a Go package name.
func lower(name string) string { return strings.ReplaceAll(snake(name), "_", "") }

// plural returns an English plural of a lower-case word, good enough for
// topic names: order → orders, stock → stocks, policy → policies.
func plural(w string) string {
	switch {
	case strings.HasSuffix(w, "s"), strings.HasSuffix(w, "x"), strings.HasSuffix(w, "ch"), strings.HasSuffix(w, "sh"):
		return w + "es"
	case strings.HasSuffix(w, "y") && len(w) > 1 && !strings.ContainsRune("aeiou", rune(w[len(w)-2])):
		return w[:len(w)-1] + "ies"
	}
	return w + "s"
}

func isKeyword(s string) bool {
	switch s {
	case "break", "case", "chan", "const", "continue", "default", "defer", "else", "fallthrough",
		"for", "func", "go", "goto", "if", "import", "interface", "map", "package", "range",
		"return", "select", "struct", "switch", "type", "var":
		return true
	}
	return false
}
