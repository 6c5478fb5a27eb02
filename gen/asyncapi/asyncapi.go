package asyncapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"

	"github.com/muninn-es/muninn/gen/model"
)

// Document is an AsyncAPI 3.0 document, with the parts this package fills.
type Document struct {
	AsyncAPI           string               `json:"asyncapi" yaml:"asyncapi"`
	Info               Info                 `json:"info" yaml:"info"`
	DefaultContentType string               `json:"defaultContentType" yaml:"defaultContentType"`
	Channels           map[string]*Channel  `json:"channels" yaml:"channels"`
	Operations         map[string]Operation `json:"operations" yaml:"operations"`
	Components         Components           `json:"components" yaml:"components"`
}

// Info is the document's info object.
type Info struct {
	Title       string `json:"title" yaml:"title"`
	Version     string `json:"version" yaml:"version"`
	Description string `json:"description,omitempty" yaml:"description,omitempty"`
}

// Channel is a context's topic and the messages on it.
type Channel struct {
	Address     string         `json:"address" yaml:"address"`
	Description string         `json:"description,omitempty" yaml:"description,omitempty"`
	Messages    map[string]Ref `json:"messages" yaml:"messages"`
}

// Ref is a JSON reference.
type Ref struct {
	Ref string `json:"$ref" yaml:"$ref"`
}

// Operation is a send operation of one message on a channel.
type Operation struct {
	Action   string `json:"action" yaml:"action"`
	Channel  Ref    `json:"channel" yaml:"channel"`
	Summary  string `json:"summary,omitempty" yaml:"summary,omitempty"`
	Messages []Ref  `json:"messages" yaml:"messages"`
}

// Components holds the messages and schemas.
type Components struct {
	Messages map[string]*Message `json:"messages" yaml:"messages"`
	Schemas  map[string]*Schema  `json:"schemas" yaml:"schemas"`
}

// Message is a public event.
type Message struct {
	Name          string `json:"name" yaml:"name"`
	Title         string `json:"title,omitempty" yaml:"title,omitempty"`
	Summary       string `json:"summary,omitempty" yaml:"summary,omitempty"`
	ContentType   string `json:"contentType" yaml:"contentType"`
	Payload       Ref    `json:"payload" yaml:"payload"`
	SchemaVersion int    `json:"x-schema-version" yaml:"x-schema-version"`
}

// Schema is a JSON Schema, with the keywords the field types need.
type Schema struct {
	Ref         string      `json:"$ref,omitempty" yaml:"$ref,omitempty"`
	Type        string      `json:"type,omitempty" yaml:"type,omitempty"`
	Format      string      `json:"format,omitempty" yaml:"format,omitempty"`
	Description string      `json:"description,omitempty" yaml:"description,omitempty"`
	Enum        []string    `json:"enum,omitempty" yaml:"enum,omitempty"`
	Items       *Schema     `json:"items,omitempty" yaml:"items,omitempty"`
	Properties  *Properties `json:"properties,omitempty" yaml:"properties,omitempty"`
	Required    []string    `json:"required,omitempty" yaml:"required,omitempty"`
	Additional  *bool       `json:"additionalProperties,omitempty" yaml:"additionalProperties,omitempty"`
}

// Properties are a schema's properties in field order.
type Properties struct {
	Names   []string
	Schemas map[string]*Schema
}

// MarshalJSON writes the properties in order.
func (p *Properties) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, n := range p.Names {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(n)
		v, err := json.Marshal(p.Schemas[n])
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// MarshalYAML writes the properties in order.
func (p *Properties) MarshalYAML() (any, error) {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for _, name := range p.Names {
		var v yaml.Node
		if err := v.Encode(p.Schemas[name]); err != nil {
			return nil, err
		}
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: name}, &v)
	}
	return n, nil
}

// Build returns the AsyncAPI document of m's public events; only those of
// the context named only when it is not empty. m should be valid
// (model.Validate). The error says when there is nothing to describe.
func Build(m *model.Model, only string) (*Document, error) {
	version := m.Version
	if version == "" {
		version = "0.0.0"
	}
	d := &Document{
		AsyncAPI:           "3.0.0",
		Info:               Info{Title: m.Name, Version: version, Description: m.Doc},
		DefaultContentType: "application/json",
		Channels:           map[string]*Channel{},
		Operations:         map[string]Operation{},
		Components:         Components{Messages: map[string]*Message{}, Schemas: map[string]*Schema{}},
	}
	if only != "" && m.Context(only) == nil {
		return nil, fmt.Errorf("asyncapi: no context %q in the model", only)
	}
	for _, c := range m.Contexts {
		if only != "" && c.Name != only {
			continue
		}
		ch := &Channel{Address: m.Topic(c), Messages: map[string]Ref{}}
		if c.Doc != "" {
			ch.Description = c.Doc
		}
		for _, a := range c.Aggregates {
			for _, e := range a.Events {
				if !e.Public {
					continue
				}
				key := c.Name + "." + e.Name
				d.Components.Schemas[key] = fieldsSchema(c, e.Doc, a.IDField(), e.Fields, d.Components.Schemas)
				d.Components.Messages[key] = &Message{
					Name: e.Name, Title: e.Name, Summary: e.Doc, ContentType: "application/json",
					Payload: Ref{"#/components/schemas/" + key}, SchemaVersion: e.SchemaVersion(),
				}
				ch.Messages[e.Name] = Ref{"#/components/messages/" + key}
				d.Operations["send"+c.Name+e.Name] = Operation{
					Action:   "send",
					Channel:  Ref{"#/channels/" + c.Name},
					Summary:  fmt.Sprintf("Aggregate %s publishes %s.", a.Name, e.Name),
					Messages: []Ref{{"#/channels/" + c.Name + "/messages/" + e.Name}},
				}
			}
		}
		if len(ch.Messages) > 0 {
			d.Channels[c.Name] = ch
		}
	}
	if len(d.Channels) == 0 {
		if only != "" {
			return nil, fmt.Errorf("asyncapi: context %s has no public events (mark events public: true)", only)
		}
		return nil, fmt.Errorf("asyncapi: the model has no public events (mark events public: true)")
	}
	return d, nil
}

// fieldsSchema returns the object schema of fields (after id, when not
// nil), adding the schemas of the message types it refers to.
func fieldsSchema(c *model.Context, doc string, id *model.Field, fields model.FieldList, schemas map[string]*Schema) *Schema {
	s := &Schema{Type: "object", Description: doc, Properties: &Properties{Schemas: map[string]*Schema{}}}
	no := false
	s.Additional = &no
	all := fields
	if id != nil {
		all = append(model.FieldList{id}, fields...)
	}
	for _, f := range all {
		s.Properties.Names = append(s.Properties.Names, f.Name)
		fs := typeSchema(c, f.Type, schemas)
		if f.Doc != "" {
			fs.Description = f.Doc
		}
		s.Properties.Schemas[f.Name] = fs
		if !f.Optional {
			s.Required = append(s.Required, f.Name)
		}
	}
	return s
}

func typeSchema(c *model.Context, t *model.Type, schemas map[string]*Schema) *Schema {
	if t == nil {
		return &Schema{}
	}
	switch t.Kind {
	case model.String:
		return &Schema{Type: "string"}
	case model.Int:
		return &Schema{Type: "integer", Format: "int32"}
	case model.Int64:
		return &Schema{Type: "integer", Format: "int64"}
	case model.Bool:
		return &Schema{Type: "boolean"}
	case model.Decimal:
		return &Schema{Type: "integer", Format: "int64", Description: "an amount in cents"}
	case model.Timestamp:
		return &Schema{Type: "string", Format: "date-time"}
	case model.Enum:
		return &Schema{Type: "string", Enum: t.Values}
	case model.List:
		return &Schema{Type: "array", Items: typeSchema(c, t.Elem, schemas)}
	case model.Ref:
		key := c.Name + "." + t.Ref
		if _, ok := schemas[key]; !ok {
			if msg := c.Message(t.Ref); msg != nil {
				schemas[key] = &Schema{} // break cycles through lists
				schemas[key] = fieldsSchema(c, msg.Doc, nil, msg.Fields, schemas)
			}
		}
		return &Schema{Ref: "#/components/schemas/" + key}
	}
	return &Schema{}
}

// WriteYAML writes d as YAML.
func WriteYAML(w io.Writer, d *Document) error {
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(d); err != nil {
		return fmt.Errorf("asyncapi: %w", err)
	}
	return enc.Close()
}

// WriteJSON writes d as indented JSON.
func WriteJSON(w io.Writer, d *Document) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(d)
}
