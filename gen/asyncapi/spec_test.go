package asyncapi

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// TestShopAsyncAPIMatchesTheSpec validates the shop's document against
// the official JSON Schema of AsyncAPI 3.0.0.
func TestShopAsyncAPIMatchesTheSpec(t *testing.T) {
	raw, err := os.ReadFile("testdata/asyncapi-3.0.0.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("asyncapi-3.0.0.json", doc); err != nil {
		t.Fatal(err)
	}
	schema, err := c.Compile("asyncapi-3.0.0.json")
	if err != nil {
		t.Fatalf("the AsyncAPI schema does not compile: %v", err)
	}
	for _, only := range []string{"", "Payment"} {
		d, err := Build(shop(t), only)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := json.NewEncoder(&buf).Encode(d); err != nil {
			t.Fatal(err)
		}
		inst, err := jsonschema.UnmarshalJSON(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if err := schema.Validate(inst); err != nil {
			t.Errorf("the document (context %q) is not valid AsyncAPI 3.0.0: %v", only, err)
		}
	}
	// The check can fail: a document without info is refused.
	inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(`{"asyncapi": "3.0.0", "channels": {}}`)))
	if schema.Validate(inst) == nil {
		t.Error("the schema accepts a document without info")
	}
}
