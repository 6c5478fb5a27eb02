package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/muninn-es/muninn/gen/golang"
	"github.com/muninn-es/muninn/gen/model"
)

// genGoCmd returns `muninn gen go`: the Go code of a model (package
// gen/golang), registered under `muninn gen`.
func genGoCmd() *cobra.Command {
	var out, module, replace, importPath string
	var dryRun, noBuf, service, noMain bool
	cmd := &cobra.Command{
		Use:   "go [FILE]",
		Short: "generate Go code from an event model (default eventmodel.yaml)",
		Long: `Generate the Go code of an event model into --out, one package per bounded
context: the event and command types, the event registries, the deciders, and
a test per scenario (*_gen.go and *_gen_test.go, rewritten on every run), and,
once, rules.go with a stub per business rule to fill in (never overwritten).
The model must pass 'muninn gen check'.

With --module, the module is a service: a go.mod (written once; --replace
points it at a local checkout of the muninn module), a .proto per context with
routed commands (grpc-gateway HTTP annotations from the route hints), the gRPC
and gateway code generated from it by buf (run as a Go module: the first run
compiles buf, which takes minutes), a server per context, the serve wiring and
a main.go (written once) that serves it all over gRPC and REST, with the read
models with a route hint as query RPCs and the OpenAPI document at
/openapi.json.

Each saga of the model is a package of its own (DIR/<saga>/): <saga>_gen.go
with its wiring and, once, hooks.go with a hook per step. It imports the
contexts, so it needs the import path of --out: --import-path, --module, or
the go.mod above --out; without one the sagas are skipped (and said so).

--service generates the service surface without a go.mod, into a directory
of an existing module (its import path as for the sagas); --no-main leaves out
main.go and serve_gen.go, so that the directory stays a library whose own code
wires the generated servers (go generate ./examples/shop does both).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := "eventmodel.yaml"
			if len(args) == 1 {
				file = args[0]
			}
			if out == "" {
				return errors.New("gen go: --out is required: the directory to generate into")
			}
			data, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("gen go: %w", err)
			}
			m, err := model.Parse(file, data)
			if err != nil {
				return fmt.Errorf("gen go: %w", err)
			}
			if ps := model.Validate(m); len(ps) > 0 {
				return fmt.Errorf("gen go: %s is not valid (muninn gen check says the same):\n%w", file, ps)
			}
			rep, err := golang.Generate(m, out, golang.Options{Module: module, Replace: replace, DryRun: dryRun, Service: module != "" || service, NoMain: noMain, ImportPath: importPath})
			if err != nil {
				return fmt.Errorf("gen go: %w", err)
			}
			w := cmd.OutOrStdout()
			for _, l := range []struct {
				what  string
				files []string
			}{{"generated", rep.Written}, {"created", rep.Created}, {"kept", rep.Kept}, {"removed", rep.Removed}, {"skipped", rep.Skipped}} {
				for _, f := range l.files {
					fmt.Fprintf(w, "%-9s %s\n", l.what, filepath.Join(out, f))
				}
			}
			if (module != "" || service) && !noBuf && !dryRun {
				fmt.Fprintf(w, "running buf in %s (the gRPC and gateway code) ...\n", out)
				if err := golang.RunBuf(cmd.Context(), out); err != nil {
					return fmt.Errorf("gen go: %w", err)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "the directory to generate into (required)")
	cmd.Flags().StringVar(&module, "module", "", "the Go module path: write DIR/go.mod if missing")
	cmd.Flags().StringVar(&replace, "replace", "", "a local muninn checkout for go.mod's replace directive")
	cmd.Flags().StringVar(&importPath, "import-path", "", "the import path of --out, which the saga packages import the contexts under (default: --module, or from the go.mod above --out)")
	cmd.Flags().BoolVar(&noBuf, "no-buf", false, "with --module or --service: do not run buf (the module does not build until it has run)")
	cmd.Flags().BoolVar(&service, "service", false, "generate the service surface (as --module does) without writing a go.mod")
	cmd.Flags().BoolVar(&noMain, "no-main", false, "with --module or --service: no main.go nor serve_gen.go (the directory stays a library)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "say what would be written, write nothing")
	return cmd
}
