package commands

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/sdctl/sdctl/fsutil"
	"github.com/sdctl/sdctl/internal/suggest"
	"github.com/sdctl/sdctl/registry"
)

// The batch file of `register -f` holds instances in the shape sdctl prints them
// (`resolve --all -o json`, `catalog NAME -o yaml`), so what sdctl prints reads back:
//
//   - a list of instances,
//   - {"instances": [...]}, or
//   - one instance, as `resolve NAME -o json` prints it.
//
// JSON and YAML are read alike (JSON is parsed as YAML, which it is), strictly: an unknown key
// at any level, a duplicate key, a value of the wrong type or two entries with the same ID are
// errors that name the file, the entry and the key, and nothing is registered.
// docs/batch-files.md is the reference.

// batchSource names the file in errors ("stdin" for -).
type batchSource string

func (s batchSource) errorf(format string, args ...any) error {
	return registry.Errorf(registry.ErrInvalid, "register -f %s: %s", string(s), fmt.Sprintf(format, args...))
}

// readBatch reads the instances of a batch file ("-" is stdin).
func readBatch(path string, stdin io.Reader) ([]registry.Instance, error) {
	var data []byte
	var err error
	if path == "-" {
		path = "stdin"
		data, err = fsutil.ReadLimited(stdin, path, fsutil.MaxBatchSize)
	} else {
		data, err = fsutil.ReadRegular(path, fsutil.MaxBatchSize)
	}
	if err != nil {
		return nil, usage(fmt.Errorf("register -f: %w", err))
	}
	return parseBatch(path, data)
}

// parseBatch decodes and validates a batch file's instances, deriving default IDs.
func parseBatch(path string, data []byte) ([]registry.Instance, error) {
	src := batchSource(path)
	if err := checkJSON(data); err != nil {
		return nil, src.errorf("%v", err)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, src.errorf("%s", oneLine(err.Error()))
	}
	if err := src.noMoreDocuments(dec); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		return nil, src.errorf("no instances")
	}
	entries, err := batchEntries(src, doc.Content[0])
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, src.errorf("no instances")
	}
	out := make([]registry.Instance, 0, len(entries))
	seen := make(map[string]int, len(entries))
	for i, node := range entries {
		where := fmt.Sprintf("entry %d (line %d)", i+1, node.Line)
		inst, err := decodeEntry(node)
		if err != nil {
			return nil, src.errorf("%s: %v", where, err)
		}
		if inst.ID == "" && inst.Name != "" {
			inst.ID = registry.DefaultID(inst.Name, inst.Address, inst.Port)
		}
		if err := inst.Validate(); err != nil {
			return nil, src.errorf("%s: %v", where, err)
		}
		if j, dup := seen[inst.ID]; dup {
			return nil, src.errorf("%s has the same ID %q as entry %d (IDs must be unique in a batch)", where, inst.ID, j+1)
		}
		seen[inst.ID] = i
		out = append(out, inst)
	}
	return out, nil
}

// noMoreDocuments refuses a second YAML document after the first one dec read (yaml reads one
// document: the instances after a "---" would be left out). An empty document, as a trailing
// "---" makes, is not one.
func (s batchSource) noMoreDocuments(dec *yaml.Decoder) error {
	for {
		var next yaml.Node
		err := dec.Decode(&next)
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return s.errorf("%s", oneLine(err.Error()))
		case len(next.Content) == 1 && next.Content[0].Tag == "!!null":
			continue
		}
		return s.errorf("line %d: a second YAML document (after ---): a batch file is one document, so put every instance in one list", next.Line)
	}
}

// checkJSON refuses a JSON document followed by more data, which YAML would read as one
// document. Text that is not JSON is left to the YAML parser (flow style looks alike).
func checkJSON(data []byte) error {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || (trimmed[0] != '[' && trimmed[0] != '{') || json.Valid(trimmed) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	var v any
	if dec.Decode(&v) == nil {
		return fmt.Errorf("unexpected data after the JSON value at byte %d", dec.InputOffset())
	}
	return nil
}

// batchEntries finds the list of entries in a batch document.
func batchEntries(src batchSource, root *yaml.Node) ([]*yaml.Node, error) {
	switch root.Kind {
	case yaml.SequenceNode:
		return root.Content, nil
	case yaml.MappingNode:
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value != "instances" {
				continue
			}
			if len(root.Content) != 2 {
				other := root.Content[0].Value
				if i == 0 {
					other = root.Content[2].Value
				}
				return nil, src.errorf("line %d: unknown key %q next to instances (a batch file holds only instances: [...])", root.Content[0].Line, other)
			}
			list := root.Content[i+1]
			if list.Kind != yaml.SequenceNode {
				if list.Tag == "!!null" {
					return nil, nil
				}
				return nil, src.errorf("line %d: instances must be a list", list.Line)
			}
			return list.Content, nil
		}
		// One instance, as `resolve NAME -o json` prints it.
		return []*yaml.Node{root}, nil
	case yaml.ScalarNode:
		if root.Tag == "!!null" {
			return nil, nil
		}
	}
	return nil, src.errorf("line %d: expected a list of instances, {instances: [...]} or one instance", root.Line)
}

// decodeEntry decodes one entry strictly, through JSON so that YAML and JSON follow one set of
// rules: those of registry.DecodeInstance.
func decodeEntry(node *yaml.Node) (registry.Instance, error) {
	if node.Kind != yaml.MappingNode {
		return registry.Instance{}, errors.New("an instance must be a mapping of keys (id, name, address, port, ...)")
	}
	var v any
	if err := node.Decode(&v); err != nil {
		return registry.Instance{}, errors.New(oneLine(strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:")))
	}
	raw, err := json.Marshal(jsonable(v))
	if err != nil {
		return registry.Instance{}, fmt.Errorf("cannot read the entry: %w", err)
	}
	inst, err := registry.DecodeInstance(raw)
	if err != nil {
		return registry.Instance{}, explainJSON(err)
	}
	return inst, nil
}

// jsonable turns what yaml decodes into `any` into values encoding/json accepts: mappings with
// keys that are not strings become maps keyed by their text (and then fail as unknown keys).
func jsonable(v any) any {
	switch val := v.(type) {
	case map[string]any:
		for k, e := range val {
			val[k] = jsonable(e)
		}
		return val
	case map[any]any:
		out := make(map[string]any, len(val))
		for k, e := range val {
			out[fmt.Sprint(k)] = jsonable(e)
		}
		return out
	case []any:
		for i, e := range val {
			val[i] = jsonable(e)
		}
		return val
	}
	return v
}

// explainJSON rewrites encoding/json's messages in the file's terms: keys, not Go fields.
func explainJSON(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("%s: %s where %s is expected", te.Field, withArticle(te.Value), kindName(te.Type))
	}
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, `json: unknown field "`); ok {
		key := strings.TrimSuffix(rest, `"`)
		known := append(registry.InstanceKeys(), registry.CheckKeys()...)
		if s := suggest.Closest(key, known); s != "" {
			return fmt.Errorf("unknown key %q; did you mean %q? (keys: 'sdctl register --help')", key, s)
		}
		return fmt.Errorf("unknown key %q (keys: 'sdctl register --help')", key)
	}
	return errors.New(oneLine(strings.TrimPrefix(msg, "json: ")))
}

// withArticle puts "a" or "an" before what encoding/json calls a value: "an object", "a string".
func withArticle(what string) string {
	if what != "" && strings.ContainsRune("aeiou", rune(what[0])) {
		return "an " + what
	}
	return "a " + what
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "a whole number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	}
	return "a " + t.String()
}

// applyToBatch adds the --tag and --meta of the command line to every entry of a batch; the
// command line wins over an entry's own value of the same metadata key.
func applyToBatch(insts []registry.Instance, tags []string, meta map[string]string) error {
	for i := range insts {
		for _, t := range tags {
			if !slices.Contains(insts[i].Tags, t) {
				insts[i].Tags = append(insts[i].Tags, t)
			}
		}
		if len(meta) > 0 {
			m := make(map[string]string, len(insts[i].Meta)+len(meta))
			for k, v := range insts[i].Meta {
				m[k] = v
			}
			for k, v := range meta {
				m[k] = v
			}
			insts[i].Meta = m
		}
		if err := insts[i].Validate(); err != nil {
			return fmt.Errorf("register -f: instance %s: %w", insts[i].ID, err)
		}
	}
	return nil
}

// oneLine joins a multi-line message into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
