package model

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Parse reads a model from data; file names it in positions and messages.
// It fails when data is not YAML or when its shape is wrong (an unknown
// key, a list where a mapping belongs, a field without a type), and then
// the error is Problems naming every such place. Parse does not check the
// model's meaning: call Validate for that.
func Parse(file string, data []byte) (*Model, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, Problems{{Pos: Pos{File: file}, Message: "the model file is empty"}}
	}
	var m Model
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, yamlProblems(file, err)
	}
	if m.Pos.Line == 0 && len(m.Contexts) == 0 && m.Name == "" {
		// The document was not a mapping (yaml leaves m alone for a
		// scalar or null document).
		return nil, Problems{{Pos: Pos{File: file, Line: 1}, Message: "the model is not a mapping with name and contexts"}}
	}
	if m.Pos.Line == 0 {
		m.Pos = Pos{Line: 1, Col: 1}
	}
	m.eachPos(func(p *Pos) { p.File = file })
	return &m, nil
}

// Marshal writes m as YAML, in the form Parse reads.
func Marshal(m *Model) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("model: marshal: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("model: marshal: %w", err)
	}
	return buf.Bytes(), nil
}

var lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlProblems turns yaml's errors ("line 3: ...") into Problems.
func yamlProblems(file string, err error) Problems {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	var ps Problems
	for _, msg := range msgs {
		p := Problem{Pos: Pos{File: file}, Message: strings.TrimPrefix(msg, "yaml: ")}
		if sub := lineRE.FindStringSubmatch(msg); sub != nil {
			p.Pos.Line, _ = strconv.Atoi(sub[1])
			p.Message = sub[2]
		}
		ps = append(ps, p)
	}
	ps.sort()
	return ps
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "a document"
}

func typeErr(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s", n.Line, fmt.Sprintf(format, args...))}}
}

// yamlKeys returns the YAML keys of struct type t.
func yamlKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("yaml")
		name, _, _ := strings.Cut(tag, ",")
		if name == "" || name == "-" {
			continue
		}
		keys = append(keys, name)
	}
	slices.Sort(keys)
	return keys
}

// decodeStrict decodes the mapping n into v (a pointer to a struct whose
// type has no UnmarshalYAML), records n's position in pos and reports
// unknown keys, all at once.
func decodeStrict(n *yaml.Node, v any, pos *Pos, what string) error {
	*pos = Pos{Line: n.Line, Col: n.Column}
	if n.Kind != yaml.MappingNode {
		return typeErr(n, "%s: want a mapping, found %s", what, kindName(n))
	}
	keys := yamlKeys(reflect.TypeOf(v).Elem())
	var errs []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(keys, k.Value) {
			errs = append(errs, fmt.Sprintf("line %d: %s: unknown key %q (known: %s)", k.Line, what, k.Value, strings.Join(keys, ", ")))
		}
		// An empty list entry ("-" alone) would be a nil element.
		if v := n.Content[i+1]; v.Kind == yaml.SequenceNode {
			for _, item := range v.Content {
				if item.Kind == yaml.ScalarNode && item.Tag == "!!null" {
					errs = append(errs, fmt.Sprintf("line %d: %s: %s has an empty entry", item.Line, what, k.Value))
				}
			}
		}
	}
	if err := n.Decode(v); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return err
		}
		errs = append(errs, te.Errors...)
	}
	if len(errs) > 0 {
		return &yaml.TypeError{Errors: errs}
	}
	return nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (m *Model) UnmarshalYAML(n *yaml.Node) error {
	type plain Model
	return decodeStrict(n, (*plain)(m), &m.Pos, "model")
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (c *Context) UnmarshalYAML(n *yaml.Node) error {
	type plain Context
	return decodeStrict(n, (*plain)(c), &c.Pos, "context")
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (t *Message) UnmarshalYAML(n *yaml.Node) error {
	type plain Message
	return decodeStrict(n, (*plain)(t), &t.Pos, "type")
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (a *Aggregate) UnmarshalYAML(n *yaml.Node) error {
	type plain Aggregate
	return decodeStrict(n, (*plain)(a), &a.Pos, "aggregate")
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (c *Command) UnmarshalYAML(n *yaml.Node) error {
	type plain Command
	return decodeStrict(n, (*plain)(c), &c.Pos, "command")
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (e *Event) UnmarshalYAML(n *yaml.Node) error {
	type plain Event
	return decodeStrict(n, (*plain)(e), &e.Pos, "event")
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (e *Error) UnmarshalYAML(n *yaml.Node) error {
	type plain Error
	return decodeStrict(n, (*plain)(e), &e.Pos, "error")
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (r *ReadModel) UnmarshalYAML(n *yaml.Node) error {
	type plain ReadModel
	return decodeStrict(n, (*plain)(r), &r.Pos, "read model")
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (p *Policy) UnmarshalYAML(n *yaml.Node) error {
	type plain Policy
	return decodeStrict(n, (*plain)(p), &p.Pos, "policy")
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (e *External) UnmarshalYAML(n *yaml.Node) error {
	type plain External
	return decodeStrict(n, (*plain)(e), &e.Pos, "external")
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Saga) UnmarshalYAML(n *yaml.Node) error {
	type plain Saga
	return decodeStrict(n, (*plain)(s), &s.Pos, "saga")
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (r *Reaction) UnmarshalYAML(n *yaml.Node) error {
	type plain Reaction
	return decodeStrict(n, (*plain)(r), &r.Pos, "reaction")
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (t *Timeout) UnmarshalYAML(n *yaml.Node) error {
	type plain Timeout
	return decodeStrict(n, (*plain)(t), &t.Pos, "timeout")
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Scenario) UnmarshalYAML(n *yaml.Node) error {
	type plain Scenario
	return decodeStrict(n, (*plain)(s), &s.Pos, "scenario")
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (u *Unresolved) UnmarshalYAML(n *yaml.Node) error {
	type plain Unresolved
	return decodeStrict(n, (*plain)(u), &u.Pos, "unresolved item")
}

// UnmarshalYAML implements yaml.Unmarshaler: a hotspot is a string or a
// mapping with text and on.
func (h *Hotspot) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		h.Pos = Pos{Line: n.Line, Col: n.Column}
		h.Text = n.Value
		return nil
	}
	type plain Hotspot
	return decodeStrict(n, (*plain)(h), &h.Pos, "hotspot")
}

// MarshalYAML implements yaml.Marshaler: a hotspot on nothing in
// particular is written as its text.
func (h *Hotspot) MarshalYAML() (any, error) {
	if h.On == "" {
		return h.Text, nil
	}
	type plain Hotspot
	return (*plain)(h), nil
}

// UnmarshalYAML implements yaml.Unmarshaler: a route is a string.
func (r *Route) UnmarshalYAML(n *yaml.Node) error {
	r.Pos = Pos{Line: n.Line, Col: n.Column}
	if n.Kind != yaml.ScalarNode {
		return typeErr(n, "route: want a string such as \"POST /v1/orders/{order_id}:pay\", found %s", kindName(n))
	}
	*r = *ParseRoute(n.Value)
	r.Pos = Pos{Line: n.Line, Col: n.Column}
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (r *Route) MarshalYAML() (any, error) { return r.Raw, nil }

// ParseRoute parses a route hint "METHOD /path". It keeps s in Raw, and
// sets Method (upper-cased) and Path only when s has two words; Validate
// checks the rest.
func ParseRoute(s string) *Route {
	r := &Route{Raw: s}
	if parts := strings.Fields(s); len(parts) == 2 {
		r.Method, r.Path = strings.ToUpper(parts[0]), parts[1]
	}
	return r
}

// UnmarshalYAML implements yaml.Unmarshaler: a mapping from name to type,
// in order, where a type is a string ("list<LineItem>", "string?" for an
// optional field) or a mapping with type (or enum: [a, b]), doc and
// optional.
func (l *FieldList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return typeErr(n, "fields: want a mapping from field name to type, found %s", kindName(n))
	}
	var errs []string
	*l = nil
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f := &Field{Name: k.Value, Pos: Pos{Line: k.Line, Col: k.Column}}
		switch v.Kind {
		case yaml.ScalarNode:
			if v.Tag == "!!null" || v.Value == "" {
				errs = append(errs, fmt.Sprintf("line %d: field %q has no type", k.Line, k.Value))
				continue
			}
			f.Spec = v.Value
		case yaml.MappingNode:
			var long struct {
				Type     string   `yaml:"type"`
				Enum     []string `yaml:"enum"`
				Doc      string   `yaml:"doc"`
				Optional bool     `yaml:"optional"`
			}
			var p Pos
			if err := decodeStrict(v, &long, &p, fmt.Sprintf("field %q", k.Value)); err != nil {
				var te *yaml.TypeError
				if !errors.As(err, &te) {
					return err
				}
				errs = append(errs, te.Errors...)
				continue
			}
			switch {
			case long.Type != "" && len(long.Enum) > 0:
				errs = append(errs, fmt.Sprintf("line %d: field %q has both type and enum", k.Line, k.Value))
				continue
			case len(long.Enum) > 0:
				f.Spec = "enum(" + strings.Join(long.Enum, "|") + ")"
			case long.Type == "":
				errs = append(errs, fmt.Sprintf("line %d: field %q has no type", k.Line, k.Value))
				continue
			default:
				f.Spec = long.Type
			}
			f.Doc, f.Optional = long.Doc, long.Optional
		default:
			errs = append(errs, fmt.Sprintf("line %d: field %q: want a type, found %s", v.Line, k.Value, kindName(v)))
			continue
		}
		if s, ok := strings.CutSuffix(strings.TrimSpace(f.Spec), "?"); ok {
			f.Spec, f.Optional = s, true
		}
		f.Spec = strings.TrimSpace(f.Spec)
		f.Type, _ = ParseType(f.Spec)
		*l = append(*l, f)
	}
	if len(errs) > 0 {
		return &yaml.TypeError{Errors: errs}
	}
	return nil
}

// MarshalYAML implements yaml.Marshaler, in the short form where a field
// has no doc.
func (l FieldList) MarshalYAML() (any, error) {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for _, f := range l {
		spec := f.Spec
		if spec == "" && f.Type != nil {
			spec = f.Type.String()
		}
		key := &yaml.Node{Kind: yaml.ScalarNode, Value: f.Name}
		var val *yaml.Node
		if f.Doc == "" {
			if f.Optional {
				spec += "?"
			}
			val = &yaml.Node{Kind: yaml.ScalarNode, Value: spec}
		} else {
			val = &yaml.Node{Kind: yaml.MappingNode}
			val.Content = append(val.Content,
				&yaml.Node{Kind: yaml.ScalarNode, Value: "type"}, &yaml.Node{Kind: yaml.ScalarNode, Value: spec})
			if f.Optional {
				val.Content = append(val.Content,
					&yaml.Node{Kind: yaml.ScalarNode, Value: "optional"}, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"})
			}
			val.Content = append(val.Content,
				&yaml.Node{Kind: yaml.ScalarNode, Value: "doc"}, &yaml.Node{Kind: yaml.ScalarNode, Value: f.Doc})
		}
		n.Content = append(n.Content, key, val)
	}
	return n, nil
}

// decodeInstance decodes {Name: {field: value...}} (or {Name: null}).
func decodeInstance(n *yaml.Node, what string) (string, map[string]any, Pos, error) {
	pos := Pos{Line: n.Line, Col: n.Column}
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		return n.Value, nil, pos, nil
	}
	if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
		return "", nil, pos, typeErr(n, "%s: want a mapping with one key, the %s's name, to its fields ({Name: {field: value}}), found %s", what, what, kindName(n))
	}
	k, v := n.Content[0], n.Content[1]
	var fields map[string]any
	if !(v.Kind == yaml.ScalarNode && v.Tag == "!!null") {
		if v.Kind != yaml.MappingNode {
			return "", nil, pos, typeErr(v, "%s %s: want a mapping of field values, found %s", what, k.Value, kindName(v))
		}
		if err := v.Decode(&fields); err != nil {
			return "", nil, pos, err
		}
	}
	return k.Value, fields, pos, nil
}

// UnmarshalYAML implements yaml.Unmarshaler: {EventName: {field: value}},
// or just EventName.
func (e *EventInstance) UnmarshalYAML(n *yaml.Node) error {
	var err error
	e.Event, e.Fields, e.Pos, err = decodeInstance(n, "event")
	return err
}

// MarshalYAML implements yaml.Marshaler.
func (e *EventInstance) MarshalYAML() (any, error) {
	return map[string]any{e.Event: emptyIfNil(e.Fields)}, nil
}

// UnmarshalYAML implements yaml.Unmarshaler: {CommandName: {field:
// value}}, or just CommandName.
func (c *CommandInstance) UnmarshalYAML(n *yaml.Node) error {
	var err error
	c.Command, c.Fields, c.Pos, err = decodeInstance(n, "command")
	return err
}

// MarshalYAML implements yaml.Marshaler.
func (c *CommandInstance) MarshalYAML() (any, error) {
	return map[string]any{c.Command: emptyIfNil(c.Fields)}, nil
}

func emptyIfNil(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}
