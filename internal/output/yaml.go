package output

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// WriteYAML writes v as a YAML document indented by two spaces.
//
// The document holds exactly the data WriteJSON writes: v is marshalled to JSON and the JSON
// is turned into YAML, keeping the order of object keys (struct fields in declaration order,
// map keys sorted). Types choose their form through MarshalJSON, so the domain types' durations
// read as "1m30s" in both formats. A nil slice at the top level is written as [].
func WriteYAML(w io.Writer, v any) error {
	data, err := json.Marshal(emptyList(v))
	if err != nil {
		return fmt.Errorf("yaml: %w", err)
	}
	node, err := jsonToNode(data)
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

// jsonToNode decodes JSON into a YAML node, keeping the order of object keys.
func jsonToNode(data []byte) (*yaml.Node, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	n, err := decodeNode(dec)
	if err != nil {
		return nil, fmt.Errorf("yaml: reading JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("yaml: reading JSON: data after the first value")
	}
	return n, nil
}

// decodeNode reads one JSON value from dec. An empty object or list is written in flow style
// ({} and []), so that it reads as empty rather than as nothing.
func decodeNode(dec *json.Decoder) (*yaml.Node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok := tok.(type) {
	case json.Delim:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		if tok == '{' {
			n = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		}
		for dec.More() {
			if tok == '{' {
				key, err := dec.Token()
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, strNode(key.(string)))
			}
			val, err := decodeNode(dec)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, val)
		}
		if len(n.Content) == 0 {
			n.Style = yaml.FlowStyle
		}
		_, err := dec.Token() // the closing '}' or ']'
		return n, err
	case string:
		return strNode(tok), nil
	case json.Number:
		if strings.ContainsAny(string(tok), ".eE") {
			return scalar("!!float", string(tok)), nil
		}
		return scalar("!!int", string(tok)), nil
	case bool:
		if tok {
			return scalar("!!bool", "true"), nil
		}
		return scalar("!!bool", "false"), nil
	case nil:
		return scalar("!!null", "null"), nil
	}
	return nil, fmt.Errorf("unexpected JSON token %v", tok)
}

func scalar(tag, value string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
}

// strNode is a string scalar, quoted where a YAML 1.1 reader would take it for something else
// ("yes", "off", "1:20"), as yaml.Marshal does for Go strings.
func strNode(s string) *yaml.Node {
	var n yaml.Node
	if err := n.Encode(s); err != nil {
		// Encoding a plain string cannot fail; fall back to an explicit double-quoted scalar.
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s, Style: yaml.DoubleQuotedStyle}
	}
	return &n
}
