package output

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"unicode"
)

// Table is rows of strings under named columns.
//
// On a terminal it prints aligned columns, two spaces apart, under a header of the column names
// in upper case. Elsewhere (a pipe, a file) it follows the GitHub CLI: one line per row, cells
// separated by a single tab, no padding and no header, so that cut, awk and while-read loops
// get only data. Control characters in cells (tabs and newlines included) print as spaces so
// that one row always stays one line.
type Table struct {
	// Columns names the columns; the header shows them in upper case.
	Columns []string
	// Rows holds the cells of each row. A row shorter than Columns is padded with empty cells.
	Rows [][]string
	// TTY overrides terminal detection (TTYAuto by default).
	TTY TTYMode
}

// NewTable returns a Table with the given column names and no rows.
func NewTable(columns ...string) *Table {
	return &Table{Columns: columns}
}

// AddRow appends a row of cells.
func (t *Table) AddRow(cells ...string) {
	t.Rows = append(t.Rows, cells)
}

// Render writes the table to w, aligned with a header when w is a terminal and tab-separated
// without a header otherwise. A row with more cells than there are columns is an error.
func (t *Table) Render(w io.Writer) error {
	for i, row := range t.Rows {
		if len(row) > len(t.Columns) {
			return fmt.Errorf("table row %d has %d cells for %d columns", i+1, len(row), len(t.Columns))
		}
	}
	if !t.TTY.terminal(w) {
		var buf bytes.Buffer
		for _, row := range t.Rows {
			writeCells(&buf, t.cells(row), "\t")
		}
		_, err := w.Write(buf.Bytes())
		return err
	}

	var aligned bytes.Buffer
	tw := tabwriter.NewWriter(&aligned, 0, 8, 2, ' ', 0)
	header := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		header[i] = strings.ToUpper(c)
	}
	writeCells(tw, t.cells(header), "\t")
	for _, row := range t.Rows {
		writeCells(tw, t.cells(row), "\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// tabwriter pads every cell but the last, so a row whose last cells are empty would end in
	// spaces; trimming keeps golden files and copy-paste clean.
	var out bytes.Buffer
	for line := range strings.Lines(aligned.String()) {
		out.WriteString(strings.TrimRight(line, " \n"))
		out.WriteByte('\n')
	}
	_, err := w.Write(out.Bytes())
	return err
}

// cells pads row to the number of columns and makes each cell safe to print on one line.
func (t *Table) cells(row []string) []string {
	out := make([]string, len(t.Columns))
	for i := range out {
		if i < len(row) {
			out[i] = sanitize(row[i])
		}
	}
	return out
}

func writeCells(w io.Writer, cells []string, sep string) {
	fmt.Fprintln(w, strings.Join(cells, sep))
}

func sanitize(s string) string {
	if strings.IndexFunc(s, unicode.IsControl) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}
