package golang_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/muninn-es/muninn/gen/golang"
	"github.com/muninn-es/muninn/gen/model"
)

// repoRoot is the muninn module this package is in, which generated
// modules replace github.com/muninn-es/muninn with.
const repoRoot = "../.."

// goCmd runs the go command in dir and returns its combined output.
func goCmd(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// generateModule generates m as module example.com/gen in a temporary
// directory, replacing muninn with this checkout.
func generateModule(t *testing.T, m *model.Model) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := golang.Generate(m, dir, golang.Options{Module: "example.com/gen", Replace: repoRoot}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// scenarioCount is the number of scenarios of m.
func scenarioCount(m *model.Model) int {
	n := 0
	for _, c := range m.Contexts {
		for _, a := range c.Aggregates {
			n += len(a.Scenarios)
		}
	}
	return n
}

// checkWaiting checks the output of `go test ./...` on a module whose
// rules are all stubs: every scenario test fails, each with the message
// naming the rule to write, and nothing else fails.
func checkWaiting(t *testing.T, out string, scenarios int) {
	t.Helper()
	fails := regexp.MustCompile(`(?m)^--- FAIL: (\S+)`).FindAllStringSubmatch(out, -1)
	msgs := regexp.MustCompile(`rule \w+\.\w+ is not written yet: fill in (decide|evolve)\w+ in rules\.go`).FindAllString(out, -1)
	if len(fails) != scenarios || len(msgs) != scenarios {
		t.Errorf("%d tests failed and %d said which rule to write, want %d of each:\n%s", len(fails), len(msgs), scenarios, out)
	}
	if strings.Contains(out, "panic") || strings.Contains(out, "[build failed]") || strings.Contains(out, "[setup failed]") {
		t.Errorf("go test did more than fail the scenarios:\n%s", out)
	}
}

// TestGeneratedModule generates the shop's model as a module of its own:
// it builds and vets, and its scenario tests fail, each saying which rule
// of rules.go to write. Then a command is removed from the model, and the
// regenerated module fails to compile in rules.go, where the removed
// command is still used.
func TestGeneratedModule(t *testing.T) {
	if testing.Short() && os.Getenv("MUNINN_CI") == "" {
		t.Skip("builds a module (-short)")
	}
	m := parseFile(t, filepath.Join(shopDir, "eventmodel.yaml"))
	dir := generateModule(t, m)
	for _, args := range [][]string{{"build", "./..."}, {"vet", "./..."}} {
		if out, err := goCmd(t, dir, args...); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	out, err := goCmd(t, dir, "test", "./...")
	if err == nil {
		t.Fatalf("go test passed with every rule a stub:\n%s", out)
	}
	checkWaiting(t, out, scenarioCount(m))
	if !strings.Contains(out, "rule Order.PlaceOrder is not written yet: fill in decidePlaceOrder in rules.go") {
		t.Errorf("no test asks for decidePlaceOrder:\n%s", out)
	}

	// Remove MarkPaid (and its scenarios) from the model and regenerate.
	order := m.Context("Order").Aggregate("Order")
	var cmds []*model.Command
	for _, c := range order.Commands {
		if c.Name != "MarkPaid" {
			cmds = append(cmds, c)
		}
	}
	order.Commands = cmds
	var scenarios []*model.Scenario
	for _, s := range order.Scenarios {
		if s.When.Command != "MarkPaid" {
			scenarios = append(scenarios, s)
		}
	}
	order.Scenarios = scenarios
	// The checkout saga sends MarkPaid too: the model stays consistent
	// without it there (hooks.go, written once, still names it as well).
	for _, sg := range m.Sagas {
		for _, re := range sg.ReactsTo {
			var then []string
			for _, c := range re.Then {
				if c != "Order.MarkPaid" && c != "MarkPaid" {
					then = append(then, c)
				}
			}
			re.Then = then
		}
	}
	before, err := os.ReadFile(filepath.Join(dir, "order", "rules.go"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := golang.Generate(m, dir, golang.Options{Module: "example.com/gen", Replace: repoRoot}); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "order", "rules.go"))
	if !bytes.Equal(before, after) {
		t.Fatal("regenerating rewrote order/rules.go")
	}
	out, err = goCmd(t, dir, "build", "./...")
	if err == nil {
		t.Fatalf("go build passed although rules.go uses the removed command MarkPaid:\n%s", out)
	}
	if !regexp.MustCompile(`order/rules\.go:\d+:\d+: undefined: MarkPaid`).MatchString(out) {
		t.Errorf("go build does not fail in order/rules.go on MarkPaid:\n%s", out)
	}
}
