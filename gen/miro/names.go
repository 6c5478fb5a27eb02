package miro

import (
	"strings"
	"unicode"
)

// words splits s into its words: runs of ASCII letters and digits, and
// camel-case humps ("OrderPlaced" is "Order", "Placed").
func words(s string) []string {
	var out []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			out = append(out, string(cur))
			cur = nil
		}
	}
	rs := []rune(s)
	for i, r := range rs {
		switch {
		case r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)):
			if unicode.IsUpper(r) && len(cur) > 0 {
				prev := cur[len(cur)-1]
				nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
				if unicode.IsLower(prev) || unicode.IsDigit(prev) || (unicode.IsUpper(prev) && nextLower) {
					flush()
				}
			}
			cur = append(cur, r)
		case r == '\'' || r == '’':
			// "customer's" is one word
		default:
			flush()
		}
	}
	flush()
	return out
}

// typeName turns a sticky's text into a type name: "Order placed" is
// OrderPlaced. It is "" when s has no word or starts with a digit.
func typeName(s string) string {
	ws := words(s)
	if len(ws) == 0 || unicode.IsDigit(rune(ws[0][0])) {
		return ""
	}
	var b strings.Builder
	for _, w := range ws {
		if strings.ToUpper(w) == w && len(w) > 1 {
			// An acronym stays as it is: "SKU", "ID".
			b.WriteString(w)
			continue
		}
		b.WriteString(strings.ToUpper(w[:1]))
		b.WriteString(w[1:])
	}
	return b.String()
}

// fieldName turns text into a snake_case field name: "Customer ID" is
// customer_id. It is "" when s has no word or starts with a digit.
func fieldName(s string) string {
	ws := words(s)
	if len(ws) == 0 || unicode.IsDigit(rune(ws[0][0])) {
		return ""
	}
	for i, w := range ws {
		ws[i] = strings.ToLower(w)
	}
	return strings.Join(ws, "_")
}
