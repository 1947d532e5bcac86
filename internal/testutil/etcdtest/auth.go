package etcdtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Names set up by StartAuth.
const (
	// RootUser is etcd's administrator; it holds the root role.
	RootUser = "root"
	// ServiceRole may read and write keys under ServicePrefix and nothing else.
	ServiceRole = "sdctl-services"
	// ServiceUser holds ServiceRole only.
	ServiceUser = "sdctl"
	// ServicePrefix is the key prefix ServiceRole is limited to: sdctl's default.
	ServicePrefix = "/services"
)

// Auth describes the users of a member started by StartAuth.
type Auth struct {
	RootPassword string
	// User and Password log in as ServiceUser, limited to Prefix.
	User, Password string
	Prefix         string
}

// StartAuth starts a single member with authentication enabled: a root user, a role granted
// read and write on the ServicePrefix keys ("/services" and everything under it) only, and a
// ServiceUser holding that role. It returns the member, whose Auth field also names the
// limited user and its password, and the root password.
func StartAuth(t testing.TB) (*Member, string) {
	t.Helper()
	m := StartSingle(t)
	a := &Auth{RootPassword: password(t), User: ServiceUser, Password: password(t), Prefix: ServicePrefix}
	cli := Client(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	steps := []struct {
		what string
		do   func() error
	}{
		{"add root user", func() error { _, err := cli.UserAdd(ctx, RootUser, a.RootPassword); return err }},
		{"grant root role", func() error { _, err := cli.UserGrantRole(ctx, RootUser, "root"); return err }},
		{"add role", func() error { _, err := cli.RoleAdd(ctx, ServiceRole); return err }},
		{"grant role " + ServicePrefix + " prefix", func() error {
			_, err := cli.RoleGrantPermission(ctx, ServiceRole, ServicePrefix, clientv3.GetPrefixRangeEnd(ServicePrefix), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		}},
		{"add user", func() error { _, err := cli.UserAdd(ctx, a.User, a.Password); return err }},
		{"grant user role", func() error { _, err := cli.UserGrantRole(ctx, a.User, ServiceRole); return err }},
		{"enable auth", func() error { _, err := cli.AuthEnable(ctx); return err }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("etcdtest: StartAuth: %s: %v", s.what, err)
		}
	}
	m.Auth = a
	return m, a.RootPassword
}

func password(t testing.TB) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
