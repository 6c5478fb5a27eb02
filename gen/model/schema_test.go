package model

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema()))
	if err != nil {
		t.Fatalf("the schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("eventmodel.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("eventmodel.schema.json")
	if err != nil {
		t.Fatalf("the schema does not compile: %v", err)
	}
	return s
}

// instance turns a YAML file into a JSON value as the validator wants it.
func instance(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

func TestSchemaAcceptsTheModels(t *testing.T) {
	s := compileSchema(t)
	shop, err := os.ReadFile("testdata/shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"starter": Starter(), "shop": shop} {
		if err := s.Validate(instance(t, data)); err != nil {
			t.Errorf("schema rejects the %s model: %v", name, err)
		}
	}
}

func TestSchemaRejectsBadShapes(t *testing.T) {
	s := compileSchema(t)
	for _, src := range []string{
		"name: x\n", // no contexts
		"name: x\ncontexts: [{name: A, aggregats: []}]\n",                                                                       // unknown key
		"name: x\ncontexts: [{name: A, aggregates: [{name: B, id: b, commands: [{name: C}]}]}]\n",                               // command without emits
		"name: x\ncontexts: [{name: A, aggregates: [{name: B, id: b, commands: [{name: C, emits: [E], http: 'FETCH /x'}]}]}]\n", // bad route
		"name: x\ncontexts: [{name: A, read_models: [{name: R, key: k, from: [E], fields: {Bad: string}}]}]\n",                  // field name
	} {
		if err := s.Validate(instance(t, []byte(src))); err == nil {
			t.Errorf("schema accepts %q", src)
		}
	}
}

func TestStarterIsValid(t *testing.T) {
	m, err := Parse("eventmodel.yaml", Starter())
	if err != nil {
		t.Fatal(err)
	}
	if ps := Validate(m); len(ps) > 0 {
		t.Fatalf("the starter model has problems:\n%v", ps)
	}
	c := m.Contexts[0]
	a := c.Aggregates[0]
	if len(a.Commands) == 0 || len(a.Events) == 0 || len(c.ReadModels) == 0 || len(c.Policies) == 0 || len(a.Scenarios) == 0 || len(c.Hotspots) == 0 {
		t.Errorf("the starter model lacks an element kind: %+v", c)
	}
	if !strings.HasPrefix(string(Starter()), "#") {
		t.Error("the starter model is not commented")
	}
}
