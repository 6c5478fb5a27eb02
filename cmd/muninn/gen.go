package main

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/muninn-es/muninn/gen/asyncapi"
	"github.com/muninn-es/muninn/gen/board"
	"github.com/muninn-es/muninn/gen/mermaid"
	"github.com/muninn-es/muninn/gen/miro"
	"github.com/muninn-es/muninn/gen/model"
)

// defaultModelFile is the model file the gen commands read when given none.
const defaultModelFile = "eventmodel.yaml"

func newGenCmd() *cobra.Command {
	gen := &cobra.Command{
		Use:   "gen",
		Short: "Work with an event-storming model (eventmodel.yaml): import, check, draw, generate",
		Long: `From an event-storming board to code. The model is eventmodel.yaml (muninn gen
schema prints its JSON Schema).

  muninn gen init [FILE]                 write a commented starter model
  muninn gen import miro BOARD.json      a Miro board export as a model, on stdout
  muninn gen check [FILE]                every problem of a model, with file:line
  muninn gen board [FILE]                the model as an SVG event-storming board, on stdout
  muninn gen asyncapi [FILE]             AsyncAPI 3 of the public events, on stdout
  muninn gen mermaid [FILE]              a Mermaid flowchart of the model, on stdout
  muninn gen go --out DIR [FILE]         the Go code of a model (--module: a service)
  muninn gen schema                      the JSON Schema of the model file`,
	}
	gen.AddCommand(newGenBoardCmd())
	gen.AddCommand(newGenInitCmd(), newGenImportCmd(), newGenCheckCmd(), newGenSchemaCmd(),
		newGenAsyncAPICmd(), newGenMermaidCmd(), genGoCmd())
	return gen
}

// modelFile returns the model file named by args, or the default.
func modelFile(args []string) string {
	if len(args) > 0 {
		return args[0]
	}
	return defaultModelFile
}

// loadModel reads and parses a model file, and refuses one with problems
// (not with unresolved items only: those do not stop a generator).
func loadModel(path string) (*model.Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := model.Parse(path, data)
	if err != nil {
		return nil, err
	}
	if ps := model.Validate(m); len(ps) > 0 {
		return nil, fmt.Errorf("%w\n%s: %d problem(s): muninn gen check %s lists them", ps, path, len(ps), path)
	}
	return m, nil
}

func newGenInitCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "init [FILE]",
		Short: "Write a commented starter model (default eventmodel.yaml)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SilenceUsage = true
			path := modelFile(args)
			flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
			if force {
				flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
			}
			f, err := os.OpenFile(path, flags, 0o644)
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s exists already: not overwritten (--force overwrites it)", path)
			}
			if err != nil {
				return err
			}
			if _, err := f.Write(model.Starter()); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: edit it, then muninn gen check %s\n", path, path)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "overwrite the file if it exists")
	return cmd
}

func newGenImportCmd() *cobra.Command {
	imp := &cobra.Command{
		Use:   "import",
		Short: "Import a model from a board export",
	}
	var colors, name string
	m := &cobra.Command{
		Use:   "miro BOARD.json",
		Short: "Import a Miro board (REST API v2 items and connectors JSON) as a model, on stdout",
		Long: `Import a Miro board as a model, written to stdout. BOARD.json is what Miro's
REST API v2 returns for GET /v2/boards/{id}/items and /v2/boards/{id}/connectors
(one page after another). Sticky colours follow the event-storming legend
(orange event, blue command, violet policy, green read model, pale yellow
aggregate, yellow actor, pink external system, red hotspot, gray message
type); --colors FILE maps other colours (YAML: "colour: kind"). Whatever the
board leaves ambiguous is listed under unresolved, for a person to decide.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SilenceUsage = true
			opts := miro.Options{Name: name}
			if colors != "" {
				data, err := os.ReadFile(colors)
				if err != nil {
					return err
				}
				own, err := miro.ParseColors(data)
				if err != nil {
					return fmt.Errorf("%s: %w", colors, err)
				}
				opts.Colors = miro.DefaultColors()
				maps.Copy(opts.Colors, own)
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			mod, err := miro.Import(f, opts)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			out, err := model.Marshal(mod)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "# Imported from the Miro board %s by muninn gen import miro.\n", args[0])
			if n := len(mod.Unresolved); n > 0 {
				fmt.Fprintf(w, "# %d item(s) of the board are unresolved (at the end): decide each and remove it.\n", n)
				fmt.Fprintf(cmd.ErrOrStderr(), "%d item(s) of the board are unresolved: see the end of the model\n", n)
			}
			if _, err := w.Write(out); err != nil {
				return err
			}
			if ps := model.Validate(mod); len(ps) > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "the imported model has problems:\n%v\n", ps)
			}
			return nil
		},
	}
	m.Flags().StringVar(&colors, "colors", "", "a YAML file mapping fill colours (Miro names or #rrggbb) to kinds, over the defaults")
	m.Flags().StringVar(&name, "name", "app", "the model's (system's) name")
	imp.AddCommand(m)
	return imp
}

func newGenCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check [FILE]",
		Short: "Check a model (default eventmodel.yaml) and list every problem, with file:line",
		Long: `Check a model and list every problem at once, each as file:line: element:
message, and the board items an importer left unresolved. It exits 1 if there
is any.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SilenceUsage = true
			path := modelFile(args)
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			m, err := model.Parse(path, data)
			if err != nil {
				fmt.Fprintln(w, err)
				return fmt.Errorf("%s cannot be read as a model", path)
			}
			ps, ws := model.Validate(m), model.Warnings(m)
			for _, p := range ps {
				fmt.Fprintln(w, p)
			}
			for _, p := range ws {
				fmt.Fprintln(w, p)
			}
			if len(ps)+len(ws) > 0 {
				return fmt.Errorf("%s: %d problem(s), %d unresolved item(s)", path, len(ps), len(ws))
			}
			var aggs, cmds, events int
			for _, c := range m.Contexts {
				aggs += len(c.Aggregates)
				for _, a := range c.Aggregates {
					cmds += len(a.Commands)
					events += len(a.Events)
				}
			}
			fmt.Fprintf(w, "%s: ok: %s, %s, %s, %s\n", path, plural(len(m.Contexts), "context"), plural(aggs, "aggregate"), plural(cmds, "command"), plural(events, "event"))
			return nil
		},
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func newGenSchemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of the model file (for editors)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s := model.Schema()
			if !strings.HasSuffix(string(s), "\n") {
				s = append(s, '\n')
			}
			_, err := cmd.OutOrStdout().Write(s)
			return err
		},
	}
}

func newGenAsyncAPICmd() *cobra.Command {
	var only string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "asyncapi [FILE]",
		Short: "Print the AsyncAPI 3.0 document of the model's public events (YAML, or --json)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SilenceUsage = true
			m, err := loadModel(modelFile(args))
			if err != nil {
				return err
			}
			d, err := asyncapi.Build(m, only)
			if err != nil {
				return err
			}
			if asJSON {
				return asyncapi.WriteJSON(cmd.OutOrStdout(), d)
			}
			return asyncapi.WriteYAML(cmd.OutOrStdout(), d)
		},
	}
	cmd.Flags().StringVar(&only, "context", "", "only the public events of this bounded context")
	cmd.Flags().BoolVar(&asJSON, "json", false, "write JSON instead of YAML")
	return cmd
}

func newGenMermaidCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "mermaid [FILE]",
		Short: "Print the model as a Mermaid flowchart, for docs",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SilenceUsage = true
			m, err := loadModel(modelFile(args))
			if err != nil {
				return err
			}
			return mermaid.Write(cmd.OutOrStdout(), m)
		},
	}
}

func newGenBoardCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "board [FILE]",
		Short: "Draw the model as an event-storming board, in SVG on stdout (muninn gen board > board.svg)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SilenceUsage = true
			m, err := loadModel(modelFile(args))
			if err != nil {
				return err
			}
			return board.SVG(m, cmd.OutOrStdout())
		},
	}
}
