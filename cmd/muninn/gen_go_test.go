package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenGo(t *testing.T) {
	dir := t.TempDir()
	out, _, err := execute(t, "gen", "go", "--out", dir, "../../examples/shop/eventmodel.yaml")
	if err != nil {
		t.Fatalf("gen go: %v\n%s", err, out)
	}
	for _, want := range []string{
		"generated " + filepath.Join(dir, "order", "order_gen.go"),
		"generated " + filepath.Join(dir, "order", "scenarios_gen_test.go"),
		"created   " + filepath.Join(dir, "order", "rules.go"),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Again: the rules written the first time are kept.
	out, _, err = execute(t, "gen", "go", "--out", dir, "../../examples/shop/eventmodel.yaml")
	if err != nil || !strings.Contains(out, "kept      "+filepath.Join(dir, "order", "rules.go")) {
		t.Errorf("second gen go: %v\n%s", err, out)
	}
}

func TestGenGoErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: x\ncontexts:\n  - name: A\n    aggregates:\n      - name: B\n        id: b_id\n        commands:\n          - name: C\n            emits: [Nope]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"gen", "go", bad}, "--out is required"},
		{[]string{"gen", "go", "--out", dir, filepath.Join(dir, "missing.yaml")}, "missing.yaml"},
		{[]string{"gen", "go", "--out", dir, bad}, "is not valid"},
	} {
		_, _, err := execute(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.want)
		}
	}
}
