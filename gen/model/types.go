package model

import (
	"fmt"
	"strings"
)

// Kind is the kind of a field type.
type Kind int

// The kinds of field types.
const (
	// String is a UTF-8 string.
	String Kind = iota + 1
	// Int is an integer that fits 32 bits (int32 in proto, int in Go).
	Int
	// Int64 is a 64-bit integer.
	Int64
	// Bool is true or false.
	Bool
	// Decimal is an amount of money as int64 cents.
	Decimal
	// Timestamp is an instant (time.Time, google.protobuf.Timestamp).
	Timestamp
	// Enum is one of a fixed set of values (Type.Values).
	Enum
	// List is a list of Type.Elem.
	List
	// Ref is a reference to a named message (Type.Ref) of the context's
	// types section.
	Ref
)

var kindNames = map[Kind]string{
	String: "string", Int: "int", Int64: "int64", Bool: "bool",
	Decimal: "decimal", Timestamp: "timestamp", Enum: "enum", List: "list", Ref: "ref",
}

// String returns the kind's name as written in a model file.
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Type is a parsed field type.
type Type struct {
	Kind Kind
	// Values are an Enum's values, in order.
	Values []string
	// Elem is a List's element type.
	Elem *Type
	// Ref is the name of the message a Ref refers to.
	Ref string
}

// String returns the type in its canonical spelling: "string",
// "enum(a|b)", "list<LineItem>".
func (t *Type) String() string {
	switch t.Kind {
	case Enum:
		return "enum(" + strings.Join(t.Values, "|") + ")"
	case List:
		return "list<" + t.Elem.String() + ">"
	case Ref:
		return t.Ref
	}
	return t.Kind.String()
}

// Scalar reports whether t is neither a list nor a reference.
func (t *Type) Scalar() bool { return t.Kind != List && t.Kind != Ref }

var scalarKinds = map[string]Kind{
	"string": String, "int": Int, "int64": Int64, "bool": Bool,
	"decimal": Decimal, "timestamp": Timestamp,
}

// ParseType parses a field type: string, int, int64, bool, decimal,
// timestamp, enum(a|b|c), list<T>, []T, or the name of a message (an
// identifier starting with an upper-case letter). A trailing "?" is not
// part of the type (it marks a field optional; see FieldList). The error
// names what is wrong.
func ParseType(s string) (*Type, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return nil, fmt.Errorf("empty type")
	case strings.HasPrefix(s, "[]"):
		elem, err := ParseType(s[2:])
		if err != nil {
			return nil, fmt.Errorf("type %q: %w", s, err)
		}
		return &Type{Kind: List, Elem: elem}, nil
	case strings.HasPrefix(s, "list<"):
		if !strings.HasSuffix(s, ">") {
			return nil, fmt.Errorf("type %q: list<...> is not closed by >", s)
		}
		elem, err := ParseType(s[len("list<") : len(s)-1])
		if err != nil {
			return nil, fmt.Errorf("type %q: %w", s, err)
		}
		return &Type{Kind: List, Elem: elem}, nil
	case strings.HasPrefix(s, "enum"):
		rest := strings.TrimSpace(s[len("enum"):])
		if rest == "" {
			return nil, fmt.Errorf("type %q: an enum needs its values, enum(a|b|c)", s)
		}
		if !strings.HasPrefix(rest, "(") || !strings.HasSuffix(rest, ")") {
			return nil, fmt.Errorf("type %q: want enum(a|b|c)", s)
		}
		values, err := enumValues(strings.Split(rest[1:len(rest)-1], "|"))
		if err != nil {
			return nil, fmt.Errorf("type %q: %w", s, err)
		}
		return &Type{Kind: Enum, Values: values}, nil
	}
	if k, ok := scalarKinds[s]; ok {
		return &Type{Kind: k}, nil
	}
	if !IsIdent(s) {
		return nil, fmt.Errorf("type %q: not a known type (string, int, int64, bool, decimal, timestamp, enum(a|b), list<T>) nor a message name", s)
	}
	if s[0] < 'A' || s[0] > 'Z' {
		return nil, fmt.Errorf("type %q: not a known type (string, int, int64, bool, decimal, timestamp, enum(a|b), list<T>); a message name starts with an upper-case letter", s)
	}
	return &Type{Kind: Ref, Ref: s}, nil
}

func enumValues(raw []string) ([]string, error) {
	var values []string
	seen := map[string]bool{}
	for _, v := range raw {
		v = strings.TrimSpace(v)
		if !IsIdent(v) {
			return nil, fmt.Errorf("enum value %q is not an identifier (letters, digits, _)", v)
		}
		if seen[v] {
			return nil, fmt.Errorf("enum value %q appears twice", v)
		}
		seen[v] = true
		values = append(values, v)
	}
	if len(values) == 0 {
		return nil, fmt.Errorf("an enum needs at least one value")
	}
	return values, nil
}

// IsIdent reports whether s is safe as a Go and protobuf identifier: an
// ASCII letter followed by ASCII letters, digits and underscores.
func IsIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && (r >= '0' && r <= '9' || r == '_'):
		default:
			return false
		}
	}
	return true
}
