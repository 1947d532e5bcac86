package harness

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Timing for loopback clusters in tests: a tenth of etcd's defaults would make a loaded CI
// machine call elections for nothing; half of them still elects a new leader within about a
// second of losing one. Lease TTLs of 1s are accepted with these (etcd's minimum is 1.5
// election timeouts, rounded up to whole seconds).
const (
	etcdHeartbeatMillis = 50
	etcdElectionMillis  = 500
)

const (
	// etcdStartTimeout bounds the wait for a new member or cluster to serve with a leader. A
	// cold start on a loaded two-core machine takes a few seconds; this leaves plenty of room.
	etcdStartTimeout = 60 * time.Second
	etcdStopTimeout  = 10 * time.Second
)

// EtcdOptions describe the members StartEtcd starts.
type EtcdOptions struct {
	// Bin is the etcd binary (see ServerBinary).
	Bin string
	// Dir holds the members' data, logs and, with TLS, certificates.
	Dir string
	// TLS serves clients over TLS only, with client certificates required
	// (--client-cert-auth): the harness makes a CA, a server certificate for 127.0.0.1 and
	// localhost, and the client certificate it puts in each member's TLS field.
	TLS bool
	// LogLevel is etcd's --log-level; default info.
	LogLevel string
	// Defaults keeps etcd's own timing and durability (heartbeat 100 ms, election timeout 1 s,
	// fsync on every write), as the benchmark measures. Without it the members use a heartbeat
	// of 50 ms, an election timeout of 500 ms and --unsafe-no-fsync: test data need not survive
	// a power cut, and fsync on a shared CI disk is the slowest part of every write.
	Defaults bool
	// Logf receives the harness's notes, such as a retry on new ports.
	Logf Logf
}

// EtcdMember is one etcd server process. The exported fields describe it; do not change them
// (but Auth, which EnableEtcdAuth sets).
type EtcdMember struct {
	Name      string
	ClientURL string // "http://127.0.0.1:PORT", https with TLS
	PeerURL   string
	DataDir   string
	// Auth is set by EnableEtcdAuth.
	Auth *EtcdAuth
	// TLS is set on members started with TLS: the files a client presents.
	TLS *EtcdTLSFiles
	// ReadyAfter is how long the start took, from starting the process until it served.
	ReadyAfter time.Duration

	process
	bin  string
	args []string
}

// Endpoint is the member's client URL, as given to an etcd client.
func (m *EtcdMember) Endpoint() string { return m.ClientURL }

// Stop ends the member with SIGTERM, giving it 10s to shut down before killing it.
func (m *EtcdMember) Stop() { m.stop(syscall.SIGTERM, etcdStopTimeout) }

// Restart starts a stopped or killed member again on the same ports and data directory and
// waits until it answers (it may still be catching up with the cluster's leader).
func (m *EtcdMember) Restart(ctx context.Context) error {
	if m.Running() {
		return fmt.Errorf("restart of %s, which is still running", m.what)
	}
	if err := m.start(m.bin, filepath.Dir(m.DataDir), m.args...); err != nil {
		return fmt.Errorf("restart %s: %w\n%s", m.what, err, m.LogTail(40))
	}
	ctx, cancel := context.WithTimeout(ctx, etcdStartTimeout)
	defer cancel()
	if err := waitServing(ctx, m, false); err != nil {
		return fmt.Errorf("restarted %s does not serve: %w\n%s", m.what, err, m.LogTail(40))
	}
	m.ReadyAfter = time.Since(m.StartedAt())
	return nil
}

// StartEtcd starts an n-member cluster from a static initial-cluster list (members m1 ... mN)
// and waits until every member serves and the cluster has a leader. On an error the members
// it started are killed.
func StartEtcd(ctx context.Context, n int, opts EtcdOptions) ([]*EtcdMember, error) {
	if n < 1 {
		return nil, fmt.Errorf("a cluster of %d etcd members", n)
	}
	if opts.Bin == "" || opts.Dir == "" {
		return nil, errors.New("etcd: EtcdOptions need Bin and Dir")
	}
	var tlsFlags []string
	var client *EtcdTLSFiles
	if opts.TLS {
		var err error
		if tlsFlags, client, err = etcdTLS(filepath.Join(opts.Dir, "tls")); err != nil {
			return nil, err
		}
	}
	// A port chosen by listening on :0 and closing may be taken by someone else before etcd
	// binds it; a start that fails that way is retried with new ports.
	for attempt := 1; ; attempt++ {
		members, err := launchEtcd(ctx, filepath.Join(opts.Dir, fmt.Sprintf("try%d", attempt)), n, opts, tlsFlags, client)
		if err == nil {
			return members, nil
		}
		inUse := false
		var tails []string
		for _, m := range members {
			m.Kill()
			inUse = inUse || m.addrInUse()
			tails = append(tails, m.LogTail(30))
		}
		if attempt == startAttempts || ctx.Err() != nil || !inUse {
			return nil, fmt.Errorf("start %d etcd member(s): %w\n%s", n, err, strings.Join(tails, "\n"))
		}
		opts.Logf.printf("harness: a port was taken while starting etcd; retrying with new ports")
	}
}

// launchEtcd starts n members under dir and waits for them. It returns the members it started
// also on an error.
func launchEtcd(ctx context.Context, dir string, n int, opts EtcdOptions, tlsFlags []string, client *EtcdTLSFiles) ([]*EtcdMember, error) {
	ports, err := FreePorts(2 * n)
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if client != nil {
		scheme = "https"
	}
	logLevel := opts.LogLevel
	if logLevel == "" {
		logLevel = "info"
	}
	token := fmt.Sprintf("sdctl-harness-%d-%d", os.Getpid(), time.Now().UnixNano())
	members := make([]*EtcdMember, n)
	var initial []string
	for i := range members {
		name := fmt.Sprintf("m%d", i+1)
		m := &EtcdMember{
			Name:      name,
			ClientURL: fmt.Sprintf("%s://%s", scheme, loopback(ports[2*i])),
			PeerURL:   "http://" + loopback(ports[2*i+1]),
			DataDir:   filepath.Join(dir, name, "data"),
			TLS:       client,
			process:   process{what: "etcd member " + name, logPath: filepath.Join(dir, name, "etcd.log")},
			bin:       opts.Bin,
		}
		members[i] = m
		initial = append(initial, name+"="+m.PeerURL)
	}
	var started []*EtcdMember
	for _, m := range members {
		if err := os.MkdirAll(filepath.Dir(m.DataDir), 0o700); err != nil {
			return started, err
		}
		m.args = []string{
			"--name", m.Name,
			"--data-dir", m.DataDir,
			"--listen-client-urls", m.ClientURL,
			"--advertise-client-urls", m.ClientURL,
			"--listen-peer-urls", m.PeerURL,
			"--initial-advertise-peer-urls", m.PeerURL,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", token,
			"--log-level", logLevel,
		}
		if !opts.Defaults {
			m.args = append(m.args,
				"--heartbeat-interval", fmt.Sprint(etcdHeartbeatMillis),
				"--election-timeout", fmt.Sprint(etcdElectionMillis),
				"--unsafe-no-fsync")
		}
		m.args = append(m.args, tlsFlags...)
		if err := m.start(m.bin, filepath.Dir(m.DataDir), m.args...); err != nil {
			return started, err
		}
		started = append(started, m)
	}
	ctx, cancel := context.WithTimeout(ctx, etcdStartTimeout)
	defer cancel()
	errs := make(chan error, n)
	for _, m := range members {
		go func() {
			err := waitServing(ctx, m, true)
			if err == nil {
				m.ReadyAfter = time.Since(m.StartedAt())
			}
			errs <- err
		}()
	}
	for range members {
		if err := <-errs; err != nil {
			return members, err
		}
	}
	return members, nil
}

// EtcdTLSFiles are PEM files a client uses to talk to a member started with TLS: the CA that
// signed the server's certificate, and a client certificate with its key.
type EtcdTLSFiles struct {
	CAFile, CertFile, KeyFile string
}

// Config is a tls.Config presenting the client certificate and trusting only the CA.
func (f EtcdTLSFiles) Config() (*tls.Config, error) {
	pool, err := certPool(f.CAFile)
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// etcdTLS makes the certificates of a TLS member in dir, and returns the member's flags and
// the client's files.
func etcdTLS(dir string) ([]string, *EtcdTLSFiles, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	ca, err := NewCA(dir, "sdctl test CA")
	if err != nil {
		return nil, nil, err
	}
	server, err := ca.Issue(dir, "server", "127.0.0.1", "::1", "localhost")
	if err != nil {
		return nil, nil, err
	}
	c, err := ca.Issue(dir, "client")
	if err != nil {
		return nil, nil, err
	}
	client := EtcdTLSFiles(c)
	flags := []string{
		"--cert-file", server.CertFile,
		"--key-file", server.KeyFile,
		"--trusted-ca-file", server.CAFile,
		"--client-cert-auth",
	}
	return flags, &client, nil
}

// EtcdClientConfig is a client configuration for members, as root where authentication is on
// and presenting the client certificate where they serve TLS.
func EtcdClientConfig(members ...*EtcdMember) (clientv3.Config, error) {
	cfg := clientv3.Config{Logger: zap.NewNop()}
	if len(members) == 0 {
		return cfg, errors.New("an etcd client without members")
	}
	for _, m := range members {
		cfg.Endpoints = append(cfg.Endpoints, m.ClientURL)
	}
	m := members[0]
	if m.Auth != nil {
		cfg.Username, cfg.Password = EtcdRootUser, m.Auth.RootPassword
	}
	if m.TLS != nil {
		tc, err := m.TLS.Config()
		if err != nil {
			return cfg, err
		}
		cfg.TLS = tc
	}
	return cfg, nil
}

// waitServing polls m until it answers a status request (and, with needLeader, knows a leader),
// failing early when the process exits.
func waitServing(ctx context.Context, m *EtcdMember, needLeader bool) error {
	cfg, err := EtcdClientConfig(m)
	if err != nil {
		return err
	}
	var last error
	for {
		if err := m.exited(); err != nil {
			return err
		}
		st, err := etcdStatus(ctx, cfg, m.ClientURL)
		switch {
		case err != nil:
			last = err
		case needLeader && st.Leader == 0:
			last = errors.New("no leader yet")
		default:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last: %v)", m.what, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// etcdStatus asks one endpoint for its status, giving up after a second so a dead member does
// not stall the caller.
func etcdStatus(ctx context.Context, cfg clientv3.Config, endpoint string) (*clientv3.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	cfg.Endpoints = []string{endpoint}
	cfg.DialTimeout = time.Second
	cfg.Context = ctx
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, err
	}
	defer func() { _ = cli.Close() }()
	return cli.Status(ctx, endpoint)
}

// EtcdLeader waits until one of the running members among members reports itself the leader
// and returns it; it gives up when ctx ends.
func EtcdLeader(ctx context.Context, members ...*EtcdMember) (*EtcdMember, error) {
	var last error
	for {
		for _, m := range members {
			if !m.Running() {
				continue
			}
			cfg, err := EtcdClientConfig(m)
			if err != nil {
				return nil, err
			}
			st, err := etcdStatus(ctx, cfg, m.ClientURL)
			if err != nil {
				last = err
				continue
			}
			if st.Leader != 0 && st.Leader == st.Header.MemberId {
				return m, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no leader among %d etcd member(s): %w (last error: %v)", len(members), ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Names EnableEtcdAuth sets up.
const (
	// EtcdRootUser is etcd's administrator; it holds the root role.
	EtcdRootUser = "root"
	// EtcdServiceRole may read and write keys under EtcdServicePrefix and nothing else.
	EtcdServiceRole = "sdctl-services"
	// EtcdServiceUser holds EtcdServiceRole only.
	EtcdServiceUser = "sdctl"
	// EtcdServicePrefix is the key prefix EtcdServiceRole is limited to: sdctl's default.
	EtcdServicePrefix = "/services"
)

// EtcdAuth describes the users of a member with authentication (see EnableEtcdAuth).
type EtcdAuth struct {
	RootPassword string
	// User and Password log in as EtcdServiceUser, limited to Prefix.
	User, Password string
	Prefix         string
}

// EnableEtcdAuth turns authentication on in the cluster of m: a root user, a role granted read
// and write on the EtcdServicePrefix keys ("/services" and everything under it) only, and an
// EtcdServiceUser holding that role, with random passwords. It sets m.Auth.
func EnableEtcdAuth(ctx context.Context, m *EtcdMember) (*EtcdAuth, error) {
	a := &EtcdAuth{User: EtcdServiceUser, Prefix: EtcdServicePrefix}
	var err error
	if a.RootPassword, err = password(); err != nil {
		return nil, err
	}
	if a.Password, err = password(); err != nil {
		return nil, err
	}
	cfg, err := EtcdClientConfig(m)
	if err != nil {
		return nil, err
	}
	cfg.DialTimeout = 10 * time.Second
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, err
	}
	defer func() { _ = cli.Close() }()
	steps := []struct {
		what string
		do   func() error
	}{
		{"add root user", func() error { _, err := cli.UserAdd(ctx, EtcdRootUser, a.RootPassword); return err }},
		{"grant root role", func() error { _, err := cli.UserGrantRole(ctx, EtcdRootUser, "root"); return err }},
		{"add role", func() error { _, err := cli.RoleAdd(ctx, EtcdServiceRole); return err }},
		{"grant role " + EtcdServicePrefix + " prefix", func() error {
			_, err := cli.RoleGrantPermission(ctx, EtcdServiceRole, EtcdServicePrefix, clientv3.GetPrefixRangeEnd(EtcdServicePrefix), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		}},
		{"add user", func() error { _, err := cli.UserAdd(ctx, a.User, a.Password); return err }},
		{"grant user role", func() error { _, err := cli.UserGrantRole(ctx, a.User, EtcdServiceRole); return err }},
		{"enable auth", func() error { _, err := cli.AuthEnable(ctx); return err }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			return nil, fmt.Errorf("enabling etcd authentication: %s: %w", s.what, err)
		}
	}
	m.Auth = a
	return a, nil
}

func password() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
