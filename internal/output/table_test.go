package output

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestTableRender(t *testing.T) {
	services := [][]string{
		{"web", "3", "3", "http,v2"},
		{"database-primary", "1", "0"},
	}
	tests := []struct {
		name    string
		columns []string
		rows    [][]string
		tty     TTYMode
		want    string
		wantErr bool
	}{
		{
			name:    "terminal aligns under an upper-case header",
			columns: []string{"name", "instances", "passing", "tags"},
			rows:    services,
			tty:     TTYAlways,
			want: "NAME              INSTANCES  PASSING  TAGS\n" +
				"web               3          3        http,v2\n" +
				"database-primary  1          0\n",
		},
		{
			name:    "pipe gets tab-separated rows without header",
			columns: []string{"name", "instances", "passing", "tags"},
			rows:    services,
			tty:     TTYNever,
			want:    "web\t3\t3\thttp,v2\ndatabase-primary\t1\t0\t\n",
		},
		{
			name:    "auto on a buffer is not a terminal",
			columns: []string{"name"},
			rows:    [][]string{{"web"}},
			want:    "web\n",
		},
		{
			name:    "control characters keep a row on one line",
			columns: []string{"name", "note"},
			rows:    [][]string{{"we\tb", "two\nlines"}},
			tty:     TTYNever,
			want:    "we b\ttwo lines\n",
		},
		{
			name:    "empty table on a terminal prints the header",
			columns: []string{"name", "leader"},
			tty:     TTYAlways,
			want:    "NAME  LEADER\n",
		},
		{
			name:    "empty table on a pipe prints nothing",
			columns: []string{"name", "leader"},
			tty:     TTYNever,
			want:    "",
		},
		{
			name:    "more cells than columns",
			columns: []string{"name"},
			rows:    [][]string{{"web", "extra"}},
			tty:     TTYAlways,
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := NewTable(tt.columns...)
			for _, r := range tt.rows {
				tb.AddRow(r...)
			}
			tb.TTY = tt.tty
			checkWrite(t, "Render", tb.Render, tt.want, tt.wantErr)
		})
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tests := []struct {
		name string
		w    io.Writer
	}{
		{name: "buffer", w: &bytes.Buffer{}},
		{name: "regular file", w: f},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if IsTerminal(tt.w) {
				t.Errorf("IsTerminal(%s) = true, want false", tt.name)
			}
		})
	}
}
