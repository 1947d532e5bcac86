package output

import (
	"bytes"
	"io"
	"testing"
)

// checkWrite has write write into a buffer and checks that it wrote want, or, with wantErr, that
// it failed. what names write in the messages.
func checkWrite(t *testing.T, what string, write func(io.Writer) error, want string, wantErr bool) {
	t.Helper()
	var buf bytes.Buffer
	err := write(&buf)
	if wantErr {
		if err == nil {
			t.Fatalf("%s succeeded, want an error; wrote %q", what, buf.String())
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != want {
		t.Errorf("%s wrote\n%q\nwant\n%q", what, got, want)
	}
}

// checkFailsQuietly checks that write fails and writes nothing.
func checkFailsQuietly(t *testing.T, what string, write func(io.Writer) error) {
	t.Helper()
	var buf bytes.Buffer
	if err := write(&buf); err == nil {
		t.Fatalf("%s succeeded, want an error; wrote %q", what, buf.String())
	}
	if buf.Len() != 0 {
		t.Errorf("%s wrote %q on error, want nothing", what, buf.String())
	}
}
