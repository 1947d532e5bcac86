//go:build linux

package fsutil

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sdctl/sdctl/internal/testutil"
)

func TestReadRegular(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "regular")
	if err := os.WriteFile(regular, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(regular, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero")
	testutil.MakeCharDevice(t, zero, 1, 5)
	null := filepath.Join(dir, "null")
	testutil.MakeCharDevice(t, null, 1, 3)

	for _, tc := range []struct {
		name, path string
		want       string
		kind       error
		says       string
	}{
		{"Regular", regular, "hello", nil, ""},
		{"SymlinkToRegular", link, "hello", nil, ""},
		{"Directory", dir, "", ErrNotRegular, "is a directory"},
		{"FIFO", fifo, "", ErrNotRegular, "is a FIFO"},
		{"ZeroDevice", zero, "", ErrNotRegular, "is a character device"},
		{"NullDevice", null, "", ErrNotRegular, "is a character device"},
		{"Missing", filepath.Join(dir, "missing"), "", fs.ErrNotExist, "no such file"},
		{"TooLarge", regular, "", ErrTooLarge, "larger than 4 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			limit := int64(100)
			if errors.Is(tc.kind, ErrTooLarge) {
				limit = 4
			}
			got, err := ReadRegular(tc.path, limit)
			if tc.kind == nil {
				if err != nil || string(got) != tc.want {
					t.Fatalf("ReadRegular = %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.says) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("ReadRegular = %v; want one line wrapping %v and saying %q", err, tc.kind, tc.says)
			}
		})
	}
}

func TestReadLimited(t *testing.T) {
	if got, err := ReadLimited(bytes.NewReader(make([]byte, 1024)), "stdin", 1024); err != nil || len(got) != 1024 {
		t.Errorf("exactly the cap: %d bytes, %v", len(got), err)
	}
	if _, err := ReadLimited(bytes.NewReader(make([]byte, 1025)), "stdin", 1024); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "stdin is larger than 1 KiB") {
		t.Errorf("one byte over the cap: %v", err)
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{64 << 20: "64 MiB", 512 << 10: "512 KiB", 100: "100 bytes", 1<<20 + 1: "1048577 bytes"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}
