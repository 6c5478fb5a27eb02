package golang_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/muninn-es/muninn/gen/golang"
	"github.com/muninn-es/muninn/gen/miro"
	"github.com/muninn-es/muninn/gen/model"
)

// TestMiroRoundTrip is the proof: the Miro board fixture of the
// shop, imported (package gen/miro), with a scenario per aggregate added
// (a board has none), generated as a module of its own with its service
// surface and policies
// (with a replace to this checkout) builds and vets, and go test passes
// but for the scenario tests waiting for a rule, each failing with the
// message naming it.
func TestMiroRoundTrip(t *testing.T) {
	if testing.Short() && os.Getenv("MUNINN_CI") == "" {
		t.Skip("builds a module (-short)")
	}
	f, err := os.Open("../miro/testdata/shop-board.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := miro.Import(f, miro.Options{Name: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	if ps := model.Validate(m); len(ps) > 0 {
		t.Fatalf("the imported board is not valid:\n%v", ps)
	}
	if len(m.Contexts) == 0 {
		t.Fatal("the board imported no context")
	}
	// A board has no given-when-then examples: add one per aggregate, as
	// its team would next, for a command and the first event it emits.
	for _, c := range m.Contexts {
		for _, a := range c.Aggregates {
			for _, cmd := range a.Commands {
				if len(cmd.Emits) == 0 {
					continue
				}
				a.Scenarios = append(a.Scenarios, &model.Scenario{
					Name: cmd.Name + " emits " + cmd.Emits[0],
					When: &model.CommandInstance{Command: cmd.Name, Fields: map[string]any{}},
					Then: []*model.EventInstance{{Event: cmd.Emits[0], Fields: map[string]any{}}},
				})
				break
			}
		}
	}
	if ps := model.Validate(m); len(ps) > 0 {
		t.Fatalf("the board with its scenarios is not valid:\n%v", ps)
	}
	dir := t.TempDir()
	if _, err := golang.Generate(m, dir, golang.Options{Module: "example.com/gen", Replace: repoRoot, Service: true}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := golang.RunBuf(ctx, dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"api/order/v1/order.pb.gw.go", "policies/policies_gen.go", "serve_gen.go", "main.go"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("not generated: %v", err)
		}
	}
	for _, args := range [][]string{{"build", "./..."}, {"vet", "./..."}} {
		if out, err := goCmd(t, dir, args...); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	out, err := goCmd(t, dir, "test", "./...")
	n := scenarioCount(m)
	if n == 0 {
		t.Fatal("no scenario: the board has no aggregate with a command that emits")
	}
	if err == nil {
		t.Fatalf("go test passed with every rule a stub:\n%s", out)
	}
	checkWaiting(t, out, n)
}
