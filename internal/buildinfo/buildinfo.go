// Package buildinfo holds the version, commit and build date stamped into the binary by the
// linker (-ldflags "-X github.com/sdctl/sdctl/internal/buildinfo.Version=..."), with fallbacks
// from the Go build information for `go install` builds.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Set by -ldflags -X at release time.
var (
	Version = ""
	Commit  = ""
	Date    = ""
)

// Info is what `sdctl version` prints.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Date      string `json:"date"`
	GoVersion string `json:"go"`
	Platform  string `json:"platform"`
}

// Get returns the build information, filling gaps from the module and VCS data Go records.
func Get() Info {
	info := Info{Version: Version, Commit: Commit, Date: Date, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && info.Commit == "":
				info.Commit = s.Value
			case s.Key == "vcs.time" && info.Date == "":
				info.Date = s.Value
			}
		}
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	if info.Date == "" {
		info.Date = "unknown"
	}
	return info
}
