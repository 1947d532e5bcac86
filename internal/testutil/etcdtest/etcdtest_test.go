package etcdtest

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestSingle(t *testing.T) {
	t.Parallel()
	m := StartSingle(t)
	cli := Client(t, m)
	if _, err := cli.Put(ctx(t), "/k", "v"); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx(t), "/k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("Get(/k) = %v, %v", resp, err)
	}

	// Stop and Restart keep the data; Kill leaves nothing running.
	m.Stop()
	if m.Running() {
		t.Fatal("member still running after Stop")
	}
	m.Restart(t)
	if got := Leader(t, m); got != m {
		t.Fatalf("Leader = %s", got.Name)
	}
	resp, err = Client(t, m).Get(ctx(t), "/k")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("after restart Get(/k) = %v, %v", resp, err)
	}
	m.Kill()
	if m.Running() {
		t.Fatal("member still running after Kill")
	}
}

func TestCluster(t *testing.T) {
	t.Parallel()
	ms := StartCluster(t, 3)
	cli := Client(t, ms...)
	list, err := cli.MemberList(ctx(t))
	if err != nil || len(list.Members) != 3 {
		t.Fatalf("MemberList = %v, %v", list, err)
	}
	leader := Leader(t, ms...)
	leader.Kill()
	next := Leader(t, ms...)
	if next == leader {
		t.Fatalf("killed leader %s still reported as leader", leader.Name)
	}
	if _, err := cli.Put(ctx(t), "/after-failover", "x"); err != nil {
		t.Fatalf("Put after failover: %v", err)
	}
	leader.Restart(t)
	resp, err := Client(t, leader).Get(ctx(t), "/after-failover", clientv3.WithSerializable())
	// The restarted member may still be catching up; a linearizable read waits for it.
	if err == nil && len(resp.Kvs) == 0 {
		resp, err = Client(t, leader).Get(ctx(t), "/after-failover")
	}
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("restarted member: Get = %v, %v", resp, err)
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	m, rootPW := StartAuth(t)
	if rootPW == "" || m.Auth == nil || m.Auth.User == "" || m.Auth.Password == "" {
		t.Fatalf("StartAuth returned %q, %+v", rootPW, m.Auth)
	}
	user, err := clientv3.New(clientv3.Config{
		Endpoints: []string{m.ClientURL}, Username: m.Auth.User, Password: m.Auth.Password,
		DialTimeout: 10 * time.Second, Logger: zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer user.Close()
	if _, err := user.Put(ctx(t), ServicePrefix+"/web/1", "x"); err != nil {
		t.Errorf("user Put under %s: %v", ServicePrefix, err)
	}
	if _, err := user.Put(ctx(t), "/elsewhere", "x"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("user Put outside %s: %v, want permission denied", ServicePrefix, err)
	}
	// Root (what Client uses) may write anywhere.
	if _, err := Client(t, m).Put(ctx(t), "/elsewhere", "x"); err != nil {
		t.Errorf("root Put: %v", err)
	}
	_, err = clientv3.New(clientv3.Config{
		Endpoints: []string{m.ClientURL}, Username: RootUser, Password: "wrong",
		DialTimeout: 10 * time.Second, Logger: zap.NewNop(),
	})
	if !errors.Is(err, rpctypes.ErrAuthFailed) {
		t.Errorf("wrong password: %v, want authentication failure", err)
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	m, files := StartTLS(t)
	if _, err := Client(t, m).Put(ctx(t), "/k", "v"); err != nil {
		t.Fatalf("Put with the client certificate: %v", err)
	}
	// Without a client certificate the handshake fails.
	tc, err := files.Config()
	if err != nil {
		t.Fatal(err)
	}
	noCert := &tls.Config{RootCAs: tc.RootCAs, MinVersion: tls.VersionTLS12}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.ClientURL}, TLS: noCert, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err == nil {
		defer cli.Close()
		c, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		if _, err := cli.Get(c, "/k"); err == nil {
			t.Fatal("Get without a client certificate succeeded")
		}
	}
	for _, f := range []string{files.CAFile, files.CertFile, files.KeyFile} {
		if _, err := os.Stat(f); err != nil || !filepath.IsAbs(f) {
			t.Errorf("TLS file %q: %v", f, err)
		}
	}
}
