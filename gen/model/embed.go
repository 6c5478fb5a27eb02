package model

import _ "embed"

//go:embed eventmodel.schema.json
var schema []byte

//go:embed starter.yaml
var starter []byte

// Schema returns the JSON Schema (draft 2020-12) of the model file, for
// editors to complete and check it. Validate checks more than the schema
// can say (references between elements, for one).
func Schema() []byte { return append([]byte(nil), schema...) }

// Starter returns a commented starter model: valid, with one context,
// aggregate, command, event, read model, policy, scenario and hotspot.
func Starter() []byte { return append([]byte(nil), starter...) }
