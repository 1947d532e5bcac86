package output

import (
	"io"

	"golang.org/x/term"
)

// TTYMode says whether a writer is treated as a terminal.
type TTYMode int

// TTYAuto asks the writer (a terminal is an *os.File, or anything with an Fd method, whose
// descriptor is a terminal). TTYAlways and TTYNever override the answer, for tests and for
// flags that force one layout.
const (
	TTYAuto TTYMode = iota
	TTYAlways
	TTYNever
)

// IsTerminal reports whether w writes to a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// terminal resolves m for writer w.
func (m TTYMode) terminal(w io.Writer) bool {
	switch m {
	case TTYAlways:
		return true
	case TTYNever:
		return false
	default:
		return IsTerminal(w)
	}
}
