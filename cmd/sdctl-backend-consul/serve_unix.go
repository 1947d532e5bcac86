//go:build unix

package main

import (
	"os"

	"github.com/sdctl/sdctl/internal/bundled/consulplugin"
	"github.com/sdctl/sdctl/plugins/server"
)

// On Unix sdctl starts its bundled backends warm or over a socket pair, never with go-plugin,
// so this program links neither go-plugin nor gRPC.
func main() { os.Exit(server.Main(consulplugin.Backend())) }
