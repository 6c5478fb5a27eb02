package model

import (
	"cmp"
	"slices"
	"strings"
)

// Problem is one thing wrong with a model, at a position, about an
// element ("command PayOrder").
type Problem struct {
	Pos     Pos
	Element string
	Message string
}

// String returns "file:line: element: message".
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Pos.String())
	b.WriteString(": ")
	if p.Element != "" {
		b.WriteString(p.Element)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Problems is a list of problems, sorted by position. It implements
// error; a nil or empty Problems means none (use Err to get a nil error).
type Problems []Problem

// Error returns the problems, one a line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Err returns ps as an error, or nil when there are none.
func (ps Problems) Err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

func (ps Problems) sort() {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(
			cmp.Compare(a.Pos.File, b.Pos.File),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Col, b.Pos.Col),
			cmp.Compare(a.Element, b.Element),
			cmp.Compare(a.Message, b.Message),
		)
	})
}
