package golang

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// muninnModule is the framework's module path.
const muninnModule = "github.com/muninn-es/muninn"

// goMod returns the go.mod (and go.sum, or nil) of a generated module.
// With replace, a local directory of the muninn module, the go.mod
// requires what muninn's go.mod requires, at the same versions, and the
// go.sum is muninn's: so the generated module builds from the module cache
// alone, with the same dependency versions as the framework it replaces.
func goMod(module, replace string) ([]byte, []byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "module %s\n\n", module)
	if replace == "" {
		fmt.Fprintf(&b, "go 1.26.0\n\nrequire %s v0.0.0\n", muninnModule)
		return b.Bytes(), nil, nil
	}
	abs, err := filepath.Abs(replace)
	if err != nil {
		return nil, nil, fmt.Errorf("golang: replace: %w", err)
	}
	mod, err := os.ReadFile(filepath.Join(abs, "go.mod"))
	if err != nil {
		return nil, nil, fmt.Errorf("golang: replace: %s is not the muninn module: %w", abs, err)
	}
	sum, err := os.ReadFile(filepath.Join(abs, "go.sum"))
	if err != nil {
		return nil, nil, fmt.Errorf("golang: replace: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(mod))
	first := true
	for sc.Scan() {
		line := sc.Text()
		if first {
			if strings.TrimSpace(line) != "module "+muninnModule {
				return nil, nil, fmt.Errorf("golang: replace: %s is not the muninn module (its go.mod says %q)", abs, line)
			}
			first = false
			continue
		}
		if strings.HasPrefix(line, "replace ") || strings.HasPrefix(line, "tool ") {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "\nrequire %s v0.0.0-00010101000000-000000000000\n\nreplace %s => %s\n", muninnModule, muninnModule, abs)
	return b.Bytes(), sum, nil
}
