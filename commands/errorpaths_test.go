package commands

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestErrorPathsHaveAnExitCode reads the source of this package and checks that every error it
// creates says which exit code it means: wrapped in usage() (2), made with registry.Errorf or
// registry.Invalidf (the kind's code), or wrapping a cause with %w (the cause's code). An error
// made any other way exits 1, "error", and must be listed in plainErrors with the reason, so no
// new error path gets a code by accident.
func TestErrorPathsHaveAnExitCode(t *testing.T) {
	// Errors made plainly on purpose, keyed by file and message, with where their code comes
	// from. Exit 1 is for failures of this machine, not of the input or the registry.
	plainErrors := map[string]string{
		"batch.go: unexpected data after the JSON value at byte %d":                      "detail of a batch-file error: exit 2 through batchSource.errorf",
		"batch.go: an instance must be a mapping of keys (id, name, address, port, ...)": "detail of a batch-file error: exit 2 through batchSource.errorf",
		"batch.go: ":                            "detail of a batch-file error (a yaml or json message): exit 2 through batchSource.errorf",
		"batch.go: %s: %s where %s is expected": "detail of a batch-file error: exit 2 through batchSource.errorf",
		"batch.go: unknown key %q; did you mean %q? (keys: 'sdctl register --help')":          "detail of a batch-file error: exit 2 through batchSource.errorf",
		"batch.go: unknown key %q (keys: 'sdctl register --help')":                            "detail of a batch-file error: exit 2 through batchSource.errorf",
		"resolve.go: enough instances":                                                        "control flow: stops a wait, never returned by a command",
		"root.go: ":                                                                           "errSilent: the command already explained itself; its code is decided with it",
		"exec.go: %s: %s is missing (it ships beside sdctl: %s)":                              "an incomplete installation, a failure of this machine: exit 1 as for a missing bundled backend",
		"factory.go: backend %q: this program keeps backends warm only; %s starts the others": "a program built without StartBackend that did not hand the command over: exit 1, a failure of this installation",
		"watch.go: %q is negative":                                                            "a flag value's Set error: exit 2 through the flag error function",
		"watch.go: %q is not a duration (like 30s or 2m) or a number":                         "a flag value's Set error: exit 2 through the flag error function",
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var unclassified []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Calls that are arguments of usage(...) are classified by it.
		classified := map[ast.Node]bool{}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			if id, ok := call.Fun.(*ast.Ident); ok && id.Name == "usage" {
				for _, a := range call.Args {
					ast.Inspect(a, func(m ast.Node) bool { classified[m] = true; return true })
				}
			}
			return true
		})
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || classified[call] {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pkg, _ := sel.X.(*ast.Ident)
			if pkg == nil {
				return true
			}
			msg := ""
			switch {
			case pkg.Name == "errors" && sel.Sel.Name == "New":
			case pkg.Name == "fmt" && sel.Sel.Name == "Errorf":
				if lit, ok := call.Args[0].(*ast.BasicLit); ok {
					if s, err := strconv.Unquote(lit.Value); err == nil && strings.Contains(s, "%w") {
						return true // keeps the code of what it wraps
					}
				}
			default:
				return true
			}
			if lit, ok := call.Args[0].(*ast.BasicLit); ok {
				msg, _ = strconv.Unquote(lit.Value)
			}
			key := name + ": " + msg
			if plainErrors[key] == "" {
				unclassified = append(unclassified, fset.Position(call.Pos()).String()+": "+msg)
			}
			return true
		})
	}
	for _, u := range unclassified {
		t.Errorf("error without an exit code of its own (wrap it in usage(), use registry.Errorf, wrap a cause with %%w, or list it in plainErrors): %s", u)
	}
}
