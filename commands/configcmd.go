package commands

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/sdctl/sdctl/internal/config"
	"github.com/sdctl/sdctl/internal/output"
	"github.com/sdctl/sdctl/registry"
)

// ConfigViewOptions holds the parsed flags of `sdctl config view`.
type ConfigViewOptions struct {
	OutputOptions
}

func newConfigCmd(f *Factory, runF func(context.Context, *ConfigViewOptions) error) *cobra.Command {
	opts := &ConfigViewOptions{}
	view := &cobra.Command{
		Use:   "view",
		Short: "Print the merged configuration with the source of each value; secrets are redacted",
		Long: `Print the configuration sdctl would use: global settings and the selected backend's
options, merged from flags, SDCTL_* and backend environment variables, the config file
and defaults. Each value is followed by its source. Secret values (tokens, passwords)
print as <redacted>.`,
		Example: "  sdctl config view\n  SDCTL_BACKEND=consul sdctl config view -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return dispatch(cmd.Context(), f, opts, runF, runConfigView)
		},
	}
	addOutputFlags(view, &opts.OutputOptions, output.FormatYAML, "'{{.Key}}={{.Value}}'")
	return newGroupCmd("config", "Inspect sdctl's configuration", view)
}

func runConfigView(ctx context.Context, f *Factory, view *ConfigViewOptions) error {
	printer, err := view.printer()
	if err != nil {
		return err
	}
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	opts, err := f.backendOptions(ctx, cfg.Backend())
	if err != nil {
		return err
	}
	section, err := cfg.BackendSection(cfg.Backend(), opts)
	if err != nil {
		return err
	}
	settings := cfg.View(cfg.Backend(), opts, section)
	if printer.Format != output.FormatYAML {
		return printer.Print(f.IO.Out, settings, func(w io.Writer) error {
			t := f.table("key", "value", "source")
			for _, s := range settings {
				t.AddRow(s.Key, fmt.Sprint(yamlValue(s.Value)), s.Source)
			}
			return t.Render(w)
		})
	}
	// The YAML form is a config file, with each value's source as a comment.
	file := cfg.File()
	if file == "" {
		file = "none"
	}
	fmt.Fprintf(f.IO.Out, "# config file: %s\n", file)
	return writeSettingsYAML(f.IO.Out, settings)
}

// backendOptions returns the option list of a backend: from the binary for built-in and bundled
// ones, by asking the plugin for external ones.
func (f *Factory) backendOptions(ctx context.Context, name string) ([]registry.Option, error) {
	if opts, known := f.knownOptions(name); known {
		return opts, nil
	}
	h, err := f.Host()
	if err != nil {
		return nil, err
	}
	cand, err := h.Find(name)
	if err != nil {
		return nil, err
	}
	client, err := f.startBackend(h, cand)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	ctx, cancel := f.callContext(ctx)
	defer cancel()
	info, err := client.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("backend %q: %w", name, err)
	}
	return info.Options, nil
}

// writeSettingsYAML prints settings as a nested YAML document (usable as a config file) with each
// value's source as a line comment.
func writeSettingsYAML(w io.Writer, settings []config.Setting) error {
	root := &yaml.Node{Kind: yaml.MappingNode}
	sections := map[string]*yaml.Node{}
	for _, s := range settings {
		parent, key := root, s.Key
		if sec, sub, nested := strings.Cut(s.Key, "."); nested {
			if sections[sec] == nil {
				sections[sec] = &yaml.Node{Kind: yaml.MappingNode}
				root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: sec}, sections[sec])
			}
			parent, key = sections[sec], sub
		}
		var val yaml.Node
		if err := val.Encode(yamlValue(s.Value)); err != nil {
			return err
		}
		if val.Kind == yaml.SequenceNode || val.Kind == yaml.MappingNode {
			val.Style = yaml.FlowStyle // one line, so the source comment stays beside it
		}
		val.LineComment = s.Source
		parent.Content = append(parent.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, &val)
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return err
	}
	return enc.Close()
}

// yamlValue prints durations as "10s" rather than nanoseconds.
func yamlValue(v any) any {
	if s, ok := v.(fmt.Stringer); ok {
		return s.String()
	}
	return v
}
