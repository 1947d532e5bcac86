// Command docgen writes sdctl's command reference from the real command tree: one Markdown
// page per command plus an index (README.md) to docs/cli, and one man page per command to
// docs/man. Hidden commands are left out.
//
// Usage (what `make docs` runs):
//
//	go run ./tools/docgen -md docs/cli -man docs/man
//
// An empty -md or -man skips that output: the release build writes only the man pages it
// packs into the archives (-md= -man manpages).
//
// The output depends only on the command tree: no generation date, no "auto generated" tag,
// and no default that depends on the machine or the user running it. Files of either directory
// that the tree no longer produces (*.md in the Markdown directory, *.1 in the man directory)
// are removed, so renaming or dropping a command leaves nothing stale behind. The package's
// test fails when the committed pages differ from what docgen writes.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"

	"github.com/sdctl/sdctl/commands"
	"github.com/sdctl/sdctl/internal/builtin"
)

// manSection is the man section of every page: user commands.
const manSection = "1"

// manNoDate stands in for the date of the man page header; render removes it, so the pages
// carry no date and regenerating them changes nothing unless the commands changed.
var manNoDate = time.Date(1, time.January, 1, 0, 0, 0, 0, time.UTC)

func main() {
	mdDir := flag.String("md", "docs/cli", "directory for the Markdown pages and their README.md index (empty: none)")
	manDir := flag.String("man", "docs/man", "directory for the man pages (empty: none)")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: docgen [-md DIR] [-man DIR]")
		os.Exit(2)
	}
	if err := generate(newRoot(), *mdDir, *manDir); err != nil {
		fmt.Fprintf(os.Stderr, "docgen: %v\n", err)
		os.Exit(1)
	}
}

// newRoot builds sdctl's command tree as the binary does, plus the completion command cobra
// adds when sdctl runs.
func newRoot() *cobra.Command {
	f := &commands.Factory{
		IO:         &commands.IOStreams{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard},
		Builtins:   builtin.Backends(),
		Bundled:    builtin.Bundled(),
		Executable: "sdctl",
	}
	root := commands.NewRootCmd(f)
	root.InitDefaultCompletionCmd()
	return root
}

// generate writes the pages of root's tree to mdDir and manDir, creating them as needed; an
// empty name skips that kind of page.
func generate(root *cobra.Command, mdDir, manDir string) error {
	md, man, err := render(root)
	if err != nil {
		return err
	}
	if mdDir != "" {
		if err := writeDir(mdDir, ".md", md); err != nil {
			return err
		}
	}
	if manDir != "" {
		return writeDir(manDir, "."+manSection, man)
	}
	return nil
}

// render returns the Markdown and man pages of root's tree, by file name.
func render(root *cobra.Command) (md, man map[string][]byte, err error) {
	md, man = map[string][]byte{}, map[string][]byte{}
	var index bytes.Buffer
	index.WriteString(indexHeader)
	for _, c := range documented(root) {
		c.DisableAutoGenTag = true
		stabilizeDefaults(c)

		var mdPage, manPage bytes.Buffer
		if err := doc.GenMarkdownCustom(c, &mdPage, func(name string) string { return name }); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", c.CommandPath(), err)
		}
		md[mdName(c)] = mdPage.Bytes()

		header := &doc.GenManHeader{Section: manSection, Date: &manNoDate, Source: "sdctl", Manual: "sdctl manual"}
		if err := doc.GenMan(c, header, &manPage); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", c.CommandPath(), err)
		}
		man[manName(c)] = undate(manPage.Bytes())

		depth := strings.Count(c.CommandPath(), " ")
		fmt.Fprintf(&index, "%s- [%s](%s): %s\n", strings.Repeat("  ", depth), c.CommandPath(), mdName(c), c.Short)
	}
	md["README.md"] = index.Bytes()
	return md, man, nil
}

const indexHeader = `# sdctl command reference

One page per command, generated from sdctl's command tree by ` + "`make docs`" + `; do not edit
them by hand. The same pages are man pages in [docs/man](../man) (` + "`man ./docs/man/sdctl.1`" + `).
Every command also prints its page with ` + "`--help`" + `.

`

// documented lists root and every command under it that the docs show, depth first in name
// order: hidden commands, deprecated ones and help topics are left out, as in --help.
func documented(root *cobra.Command) []*cobra.Command {
	out := []*cobra.Command{root}
	subs := append([]*cobra.Command(nil), root.Commands()...)
	sort.Slice(subs, func(i, j int) bool { return subs[i].Name() < subs[j].Name() })
	for _, c := range subs {
		if !c.IsAvailableCommand() || c.IsAdditionalHelpTopicCommand() {
			continue
		}
		out = append(out, documented(c)...)
	}
	return out
}

func mdName(c *cobra.Command) string {
	return strings.ReplaceAll(c.CommandPath(), " ", "_") + ".md"
}

func manName(c *cobra.Command) string {
	return strings.ReplaceAll(c.CommandPath(), " ", "-") + "." + manSection
}

// stabilizeDefaults rewrites flag defaults that spell out this machine (the user's home
// directory, the temporary directory, the working directory) into the variable they come
// from, so the pages read the same wherever they are generated.
func stabilizeDefaults(c *cobra.Command) {
	type sub struct{ path, name string }
	var subs []sub
	for _, env := range []string{"XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "HOME", "TMPDIR"} {
		if v := os.Getenv(env); filepath.IsAbs(v) && v != "/" {
			subs = append(subs, sub{v, "$" + env})
		}
	}
	if home, err := os.UserHomeDir(); err == nil && home != "/" {
		subs = append(subs, sub{home, "$HOME"})
	}
	if tmp := os.TempDir(); tmp != "/" {
		subs = append(subs, sub{tmp, "$TMPDIR"})
	}
	if wd, err := os.Getwd(); err == nil && wd != "/" {
		subs = append(subs, sub{wd, "."})
	}
	// The longest path first: $XDG_DATA_HOME before the $HOME it usually lies under.
	sort.SliceStable(subs, func(i, j int) bool { return len(subs[i].path) > len(subs[j].path) })
	fix := func(f *pflag.Flag) {
		for _, s := range subs {
			f.DefValue = strings.ReplaceAll(f.DefValue, s.path, s.name)
		}
	}
	c.LocalFlags().VisitAll(fix)
	c.InheritedFlags().VisitAll(fix)
}

// undate empties the date field of the man page's .TH header line.
func undate(page []byte) []byte {
	placeholder := fmt.Sprintf("%q", manNoDate.Format("Jan 2006"))
	lines := strings.SplitAfter(string(page), "\n")
	for i, line := range lines {
		if strings.HasPrefix(line, ".TH ") {
			lines[i] = strings.Replace(line, placeholder, `""`, 1)
			break
		}
	}
	return []byte(strings.Join(lines, ""))
}

// writeDir makes dir hold files: it writes each one and removes the other files named *ext.
func writeDir(dir, ext string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if _, keep := files[e.Name()]; !keep && !e.IsDir() && strings.HasSuffix(e.Name(), ext) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	for name, data := range files {
		path := filepath.Join(dir, name)
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
			continue
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
