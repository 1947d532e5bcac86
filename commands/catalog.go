package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sdctl/sdctl/internal/output"
	"github.com/sdctl/sdctl/registry"
)

// CatalogOptions holds the parsed flags of `sdctl catalog`.
type CatalogOptions struct {
	OutputOptions
	Name string
	Tags []string
}

func newCatalogCmd(f *Factory, runF func(context.Context, *CatalogOptions) error) *cobra.Command {
	opts := &CatalogOptions{}
	cmd := &cobra.Command{
		Use:   "catalog [NAME]",
		Short: "List services, or the instances of one service with their health",
		Long: `Without NAME, list every service with its instance count, passing count and tags.
With NAME, list that service's instances, healthy or not. A service with no instances
exits with code 3.

Tables have aligned columns and a header on a terminal, and are tab-separated without a
header when stdout is a pipe or a file.`,
		Example: `  sdctl catalog
  sdctl catalog web
  sdctl catalog web --tag v2 -o json
  sdctl catalog -o yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Name = args[0]
				if err := registry.ValidateName(opts.Name); err != nil {
					return err
				}
			}
			if len(opts.Tags) > 0 && opts.Name == "" {
				return usage(errors.New("catalog: --tag needs NAME (it selects instances of one service)"))
			}
			if err := registry.ValidateTags(opts.Tags); err != nil {
				return err
			}
			return dispatch(cmd.Context(), f, opts, runF, runCatalog)
		},
	}
	addOutputFlags(cmd, &opts.OutputOptions, output.FormatTable, "'{{.Name}} {{.Passing}}', with NAME '{{.ID}} {{.Health}}'")
	cmd.Flags().StringArrayVar(&opts.Tags, "tag", nil, "only instances with this tag (repeatable; with NAME)")
	cmd.ValidArgsFunction = completeServiceNames(f, 0)
	return cmd
}

func runCatalog(ctx context.Context, f *Factory, opts *CatalogOptions) error {
	printer, err := opts.printer()
	if err != nil {
		return err
	}
	return f.withRegistry(ctx, func(ctx context.Context, reg registry.Registry) error {
		if opts.Name == "" {
			services, err := reg.Services(ctx)
			if err != nil {
				return fmt.Errorf("catalog: %w", err)
			}
			return printer.Print(f.IO.Out, services, func(w io.Writer) error {
				t := f.table("name", "instances", "passing", "tags")
				for _, s := range services {
					t.AddRow(s.Name, strconv.Itoa(s.Instances), strconv.Itoa(s.Passing), strings.Join(s.Tags, ","))
				}
				return t.Render(w)
			})
		}
		insts, err := reg.Instances(ctx, registry.Query{Name: opts.Name, Tags: opts.Tags})
		if err != nil {
			return fmt.Errorf("catalog %s: %w", opts.Name, err)
		}
		if len(insts) == 0 {
			return registry.Errorf(registry.ErrNotFound, "catalog %s: service has no instances", opts.Name)
		}
		return printer.Print(f.IO.Out, insts, func(w io.Writer) error {
			t := f.table("id", "address", "health", "tags", "meta")
			for _, in := range insts {
				health := string(in.Health)
				if in.Drain {
					health += " (drained)"
				}
				t.AddRow(in.ID, registry.HostPort(in.Address, in.Port), health, strings.Join(in.Tags, ","), formatMeta(in.Meta))
			}
			return t.Render(w)
		})
	})
}

func formatMeta(meta map[string]string) string {
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + meta[k]
	}
	return strings.Join(parts, ",")
}
