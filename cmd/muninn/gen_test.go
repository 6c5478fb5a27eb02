package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/muninn-es/muninn/gen/model"
)

func TestGenInitWritesAValidModel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eventmodel.yaml")
	out, _, err := execute(t, "gen", "init", path)
	if err != nil || !strings.Contains(out, "wrote "+path) {
		t.Fatalf("gen init: %v\n%s", err, out)
	}
	if out, _, err := execute(t, "gen", "check", path); err != nil || !strings.Contains(out, ": ok: 1 context, 1 aggregate, 2 commands, 2 events") {
		t.Fatalf("gen check of the starter: %v\n%s", err, out)
	}
	// A second init refuses to overwrite; --force does.
	if err := os.WriteFile(path, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := execute(t, "gen", "init", path); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("gen init over a file: %v", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "mine" {
		t.Fatal("gen init overwrote the user's file")
	}
	if _, _, err := execute(t, "gen", "init", "--force", path); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != string(model.Starter()) {
		t.Fatal("gen init --force did not write the starter")
	}
}

func TestGenCheckListsEveryProblem(t *testing.T) {
	out, _, err := execute(t, "gen", "check", "../../gen/model/testdata/bad.yaml")
	if err == nil || !strings.Contains(err.Error(), "problem(s), 1 unresolved item(s)") {
		t.Fatalf("gen check of a bad model: %v", err)
	}
	want, err := os.ReadFile("../../gen/model/testdata/bad.problems")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, strings.ReplaceAll(string(want), "testdata/", "../../gen/model/testdata/")) {
		t.Errorf("gen check printed:\n%s\nwant the problems of gen/model/testdata/bad.problems", out)
	}
	if !strings.Contains(out, "unresolved item 42: ") {
		t.Errorf("gen check does not list the unresolved item:\n%s", out)
	}
	if _, _, err := execute(t, "gen", "check", filepath.Join(t.TempDir(), "none.yaml")); err == nil {
		t.Error("gen check of a missing file succeeded")
	}
	bad := filepath.Join(t.TempDir(), "shape.yaml")
	if err := os.WriteFile(bad, []byte("name: x\ncontexts: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _, err := execute(t, "gen", "check", bad); err == nil || !strings.Contains(out, bad+":2: ") {
		t.Errorf("gen check of a badly shaped file: %v\n%s", err, out)
	}
}

func TestGenImportMiro(t *testing.T) {
	out, stderr, err := execute(t, "gen", "import", "miro", "--name", "shop", "../../gen/miro/testdata/shop-board.json")
	if err != nil {
		t.Fatalf("gen import miro: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "6 item(s) of the board are unresolved") {
		t.Errorf("stderr = %q", stderr)
	}
	golden, err := os.ReadFile("../../gen/miro/testdata/shop-board.golden.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "# Imported from") || !strings.HasSuffix(out, string(golden)) {
		t.Errorf("gen import miro printed something else than the golden model:\n%s", out)
	}
	// The output, as a file, checks clean but for the unresolved items.
	path := filepath.Join(t.TempDir(), "eventmodel.yaml")
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	check, _, err := execute(t, "gen", "check", path)
	if err == nil || !strings.Contains(err.Error(), ": 0 problem(s), 6 unresolved item(s)") {
		t.Errorf("gen check of the import: %v\n%s", err, check)
	}

	colors := filepath.Join(t.TempDir(), "colors.yaml")
	if err := os.WriteFile(colors, []byte("orange: nonsense\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := execute(t, "gen", "import", "miro", "--colors", colors, "../../gen/miro/testdata/shop-board.json"); err == nil || !strings.Contains(err.Error(), `unknown kind "nonsense"`) {
		t.Errorf("a bad colour map: %v", err)
	}
	if err := os.WriteFile(colors, []byte("'#3b3b3b': hotspot\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The dark sticky is a hotspot now; the defaults still hold for the rest.
	out, stderr, err = execute(t, "gen", "import", "miro", "--colors", colors, "../../gen/miro/testdata/shop-board.json")
	if err != nil || !strings.Contains(out, "      - Refund?\n") || !strings.Contains(stderr, "5 item(s) of the board are unresolved") {
		t.Errorf("--colors: %v\n%s\n%s", err, stderr, out)
	}
}

func TestGenSchema(t *testing.T) {
	out, _, err := execute(t, "gen", "schema")
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil || v["title"] == nil {
		t.Fatalf("gen schema printed no JSON Schema: %v\n%s", err, out)
	}
}

const shopModel = "../../gen/model/testdata/shop.yaml"

func TestGenAsyncAPIAndMermaid(t *testing.T) {
	out, _, err := execute(t, "gen", "asyncapi", shopModel)
	if err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile("../../gen/asyncapi/testdata/shop.asyncapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if out != string(golden) {
		t.Errorf("gen asyncapi differs from gen/asyncapi/testdata/shop.asyncapi.yaml")
	}
	out, _, err = execute(t, "gen", "asyncapi", "--json", "--context", "Shipping", shopModel)
	var doc map[string]any
	if err != nil || json.Unmarshal([]byte(out), &doc) != nil || len(doc["channels"].(map[string]any)) != 1 {
		t.Errorf("gen asyncapi --json --context Shipping: %v\n%s", err, out)
	}
	if _, _, err := execute(t, "gen", "asyncapi", "--context", "Nope", shopModel); err == nil {
		t.Error("gen asyncapi --context Nope succeeded")
	}

	out, _, err = execute(t, "gen", "mermaid", shopModel)
	if err != nil {
		t.Fatal(err)
	}
	if golden, _ := os.ReadFile("../../gen/mermaid/testdata/shop.mmd"); out != string(golden) {
		t.Errorf("gen mermaid differs from gen/mermaid/testdata/shop.mmd")
	}
	// A model with problems is refused, naming them.
	if _, _, err := execute(t, "gen", "mermaid", "../../gen/model/testdata/bad.yaml"); err == nil || !strings.Contains(err.Error(), "bad.yaml:7: type Loop") {
		t.Errorf("gen mermaid of a bad model: %v", err)
	}
}

func TestGenBoard(t *testing.T) {
	out, _, err := execute(t, "gen", "board", shopModel)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "<svg ") || !strings.HasSuffix(out, "</svg>\n") || !strings.Contains(out, ">Checkout saga: on</tspan>") {
		t.Errorf("gen board printed no board SVG:\n%.300s", out)
	}
	// With no file, it reads eventmodel.yaml of the current directory.
	t.Chdir(t.TempDir())
	if _, _, err := execute(t, "gen", "board"); err == nil || !strings.Contains(err.Error(), "eventmodel.yaml") {
		t.Errorf("gen board without eventmodel.yaml: %v", err)
	}
	if _, _, err := execute(t, "gen", "init"); err != nil {
		t.Fatal(err)
	}
	if out, _, err := execute(t, "gen", "board"); err != nil || !strings.Contains(out, ">Lend Book</tspan>") {
		t.Errorf("gen board of the starter: %v\n%.300s", err, out)
	}
}
