package output

import (
	"bytes"
	"encoding"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// WriteYAML writes v as a YAML document indented by two spaces.
//
// The document holds the same data as WriteJSON: field names, omitted fields and key order come
// from the json struct tags (struct fields in declaration order, map keys sorted), and types
// with their own MarshalJSON are written as the JSON they produce. Two things read better than
// in JSON: a time.Duration is written as "1m30s" rather than nanoseconds, and a time.Time as an
// unquoted timestamp. A nil slice at the top level is written as [].
func WriteYAML(w io.Writer, v any) error {
	node, err := yamlNode(reflect.ValueOf(emptyList(v)), 0)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(node); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err = w.Write(buf.Bytes())
	return err
}

// maxDepth stops the walk on cyclic data, as encoding/json does.
const maxDepth = 1000

var (
	durationType      = reflect.TypeFor[time.Duration]()
	timeType          = reflect.TypeFor[time.Time]()
	numberType        = reflect.TypeFor[json.Number]()
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// yamlNode converts v to a YAML node following encoding/json's rules.
func yamlNode(v reflect.Value, depth int) (*yaml.Node, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("yaml: data nested more than %d levels deep (a cycle?)", maxDepth)
	}
	if !v.IsValid() {
		return nullNode(), nil
	}
	t := v.Type()
	switch v.Kind() {
	case reflect.Interface:
		if v.IsNil() {
			return nullNode(), nil
		}
		return yamlNode(v.Elem(), depth+1)
	case reflect.Pointer:
		// The pointee is addressable, so marshalers with pointer receivers are still found.
		if v.IsNil() {
			return nullNode(), nil
		}
		return yamlNode(v.Elem(), depth+1)
	}
	switch t {
	case durationType:
		return strNode(time.Duration(v.Int()).String()), nil
	case timeType:
		return scalar("!!timestamp", v.Interface().(time.Time).Format(time.RFC3339Nano)), nil
	case numberType:
		return numberNode(v.String()), nil
	}
	if m, ok := marshaler(v, jsonMarshalerType); ok {
		data, err := m.(json.Marshaler).MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("yaml: %s: %w", t, err)
		}
		return jsonToNode(data)
	}
	if m, ok := marshaler(v, textMarshalerType); ok {
		text, err := m.(encoding.TextMarshaler).MarshalText()
		if err != nil {
			return nil, fmt.Errorf("yaml: %s: %w", t, err)
		}
		return strNode(string(text)), nil
	}

	switch v.Kind() {
	case reflect.Bool:
		return scalar("!!bool", strconv.FormatBool(v.Bool())), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return scalar("!!int", strconv.FormatInt(v.Int(), 10)), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return scalar("!!int", strconv.FormatUint(v.Uint(), 10)), nil
	case reflect.Float32, reflect.Float64:
		return floatNode(v.Float(), t.Bits()), nil
	case reflect.String:
		return strNode(v.String()), nil
	case reflect.Slice:
		if v.IsNil() {
			return nullNode(), nil
		}
		if t.Elem().Kind() == reflect.Uint8 && !implementsAny(t.Elem()) {
			return strNode(base64.StdEncoding.EncodeToString(v.Bytes())), nil
		}
		return sequenceNode(v, depth)
	case reflect.Array:
		return sequenceNode(v, depth)
	case reflect.Map:
		if v.IsNil() {
			return nullNode(), nil
		}
		return mapNode(v, depth)
	case reflect.Struct:
		return structNode(v, depth)
	default:
		return nil, fmt.Errorf("yaml: unsupported type %s", t)
	}
}

// marshaler returns v (or its address) as an interface value when it implements iface, the way
// encoding/json looks for marshalers.
func marshaler(v reflect.Value, iface reflect.Type) (any, bool) {
	if v.Type().Implements(iface) {
		return v.Interface(), true
	}
	if v.Kind() != reflect.Pointer && v.CanAddr() && reflect.PointerTo(v.Type()).Implements(iface) {
		return v.Addr().Interface(), true
	}
	return nil, false
}

func implementsAny(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return t.Implements(jsonMarshalerType) || t.Implements(textMarshalerType) ||
		p.Implements(jsonMarshalerType) || p.Implements(textMarshalerType)
}

func sequenceNode(v reflect.Value, depth int) (*yaml.Node, error) {
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	if v.Len() == 0 {
		n.Style = yaml.FlowStyle
	}
	for i := range v.Len() {
		item, err := yamlNode(v.Index(i), depth+1)
		if err != nil {
			return nil, err
		}
		n.Content = append(n.Content, item)
	}
	return n, nil
}

func mapNode(v reflect.Value, depth int) (*yaml.Node, error) {
	type entry struct {
		key string
		val reflect.Value
	}
	entries := make([]entry, 0, v.Len())
	for it := v.MapRange(); it.Next(); {
		key, err := mapKey(it.Key())
		if err != nil {
			return nil, err
		}
		entries = append(entries, entry{key, it.Value()})
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	n := mappingNode(len(entries) == 0)
	for _, e := range entries {
		val, err := yamlNode(e.val, depth+1)
		if err != nil {
			return nil, err
		}
		n.Content = append(n.Content, strNode(e.key), val)
	}
	return n, nil
}

// mapKey turns a map key into a string as encoding/json does.
func mapKey(k reflect.Value) (string, error) {
	if k.Kind() == reflect.String {
		return k.String(), nil
	}
	if m, ok := marshaler(k, textMarshalerType); ok {
		text, err := m.(encoding.TextMarshaler).MarshalText()
		return string(text), err
	}
	switch k.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(k.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.FormatUint(k.Uint(), 10), nil
	}
	return "", fmt.Errorf("yaml: unsupported map key type %s", k.Type())
}

func scalar(tag, value string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
}

func nullNode() *yaml.Node { return scalar("!!null", "null") }

func mappingNode(empty bool) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	if empty {
		n.Style = yaml.FlowStyle
	}
	return n
}

func floatNode(f float64, bits int) *yaml.Node {
	switch {
	case math.IsNaN(f):
		return scalar("!!float", ".nan")
	case math.IsInf(f, 1):
		return scalar("!!float", ".inf")
	case math.IsInf(f, -1):
		return scalar("!!float", "-.inf")
	}
	return scalar("!!float", strconv.FormatFloat(f, 'g', -1, bits))
}

func numberNode(s string) *yaml.Node {
	if strings.ContainsAny(s, ".eE") {
		return scalar("!!float", s)
	}
	return scalar("!!int", s)
}

// strNode is a string scalar, quoted where a YAML 1.1 reader would take it for something else
// ("yes", "off", "1:20"), as yaml.Marshal does for Go strings. Invalid UTF-8 is replaced as
// encoding/json replaces it, rather than turning the string into !!binary.
func strNode(s string) *yaml.Node {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var n yaml.Node
	if err := n.Encode(s); err != nil {
		// Encoding a plain string cannot fail; fall back to an explicit double-quoted scalar.
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s, Style: yaml.DoubleQuotedStyle}
	}
	return &n
}
