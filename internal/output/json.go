package output

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"sync"
)

// WriteJSON writes v as JSON indented by two spaces, followed by a newline. Characters such as
// '<' and '&' are written as they are, not escaped for HTML. A nil slice at the top level is
// written as [] so that an empty list reads as one.
func WriteJSON(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(emptyList(v)); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// JSONLines writes a stream of values, each as compact JSON on one line, the format of
// `sdctl watch` and of any output meant for jq -c or line-oriented tools. It is safe for
// concurrent use: each value is written with a single Write call.
type JSONLines struct {
	mu sync.Mutex
	w  io.Writer
}

// NewJSONLines returns a JSONLines writing to w.
func NewJSONLines(w io.Writer) *JSONLines {
	return &JSONLines{w: w}
}

// Write writes v as one line of JSON.
func (j *JSONLines) Write(v any) error {
	line, err := compactJSON(v)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	j.mu.Lock()
	defer j.mu.Unlock()
	_, err = j.w.Write(line)
	return err
}

// compactJSON marshals v on one line without HTML escaping and without a trailing newline.
func compactJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// emptyList replaces a nil slice with an empty one of the same type.
func emptyList(v any) any {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice && rv.IsNil() {
		return reflect.MakeSlice(rv.Type(), 0, 0).Interface()
	}
	return v
}
