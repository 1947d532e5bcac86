package etcd

import (
	"testing"
	"time"

	"github.com/sdctl/sdctl/internal/testutil/etcdtest"
	"github.com/sdctl/sdctl/registry"
	"github.com/sdctl/sdctl/registry/registrytest"
)

// TestConformance runs the registry suite against a real single-member etcd. Each registry the
// suite opens gets a fresh random prefix, which is an empty registry on the shared server.
func TestConformance(t *testing.T) {
	m := etcdtest.StartSingle(t)
	registrytest.Run(t, func(t *testing.T) registry.Registry { return open(t, Options{}, nil, m) }, registrytest.Options{
		TTL: true,
		// A lease that runs out deletes its keys: expired instances are gone, not critical.
		ExpiryDeletes: true,
		Watch:         true,
		// etcd's minimum lease TTL with its default timing; the test server accepts shorter
		// ones, but users' servers will not.
		MinTTL: 2 * time.Second,
	})
}
