// Command sdctl-backend-memory is a complete external sdctl backend that keeps instances in
// memory for the life of its process. It is the working example of docs/plugin-authoring.md:
// build it, put it on the plugin path, and `sdctl --backend memory ...` uses it.
//
//	go build -o ~/.local/share/sdctl/plugins/sdctl-backend-memory ./examples/sdctl-backend-memory
package main

import (
	"github.com/sdctl/sdctl/plugins"
	"github.com/sdctl/sdctl/registry"
)

// info names the backend, what it supports, and its configuration keys.
var info = registry.Info{
	Name:         "memory",
	Version:      "0.1.0",
	Capabilities: []registry.Capability{registry.CapTTL, registry.CapWatch, registry.CapWeights},
	Options: []registry.Option{
		{Key: "seed", Help: "comma-separated NAME=HOST:PORT instances to start with", List: true},
	},
}

func main() {
	plugins.Serve(plugins.Backend{
		Name:         info.Name,
		Version:      info.Version,
		Capabilities: info.Capabilities,
		Options:      info.Options,
		New:          newMemory,
	})
}
