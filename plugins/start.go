package plugins

import (
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/sdctl/sdctl/plugins/host"
	"github.com/sdctl/sdctl/plugins/wire"
)

// Start launches the backend cand for one client with go-plugin and completes the handshake,
// without configuring it: call Info and then Configure on the result. Closing the client stops
// the process. This is how external backends always run, and built-in and bundled ones when
// they cannot be kept warm (host.Host.CanWarm).
func Start(h *host.Host, cand host.Candidate) (*host.Client, error) {
	log := h.Log()
	if cand.Missing {
		return nil, fmt.Errorf("backend %q: %w: %s is missing", cand.Name, host.ErrBundledMissing, cand.Path)
	}
	cmd := cand.Command()
	sockDir, err := newSocketDir(log)
	if err != nil {
		return nil, fmt.Errorf("backend %q: create socket directory: %w", cand.Name, err)
	}
	// The socket lives in a directory only this user can enter (MkdirTemp uses 0700), which is
	// what keeps other users away from a built-in backend that runs without mTLS.
	cmd.Env = append(cmd.Env, plugin.EnvUnixSocketDir+"="+sockDir.path, host.EnvLogLevel+"="+host.LevelName(log.GetLevel()))
	host.OwnGroup(cmd) // the kernel kills it with its host (Linux); Ctrl-C reaches the host only

	startLog := newStartLogger(log)
	stderr := &lastLine{}
	pc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: versionedPlugins(Backend{}, nil, nil),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         !cand.Trusted() || h.BuiltinMTLS,
		StartTimeout:     h.Timeout(),
		Logger:           startLog,
		Stderr:           stderr,
		SyncStdout:       os.Stderr, // a plugin's stray prints must never reach sdctl's stdout
		SyncStderr:       os.Stderr,
		GRPCDialOptions:  grpcDialOptions,
	})
	p := &process{cand: cand, plugin: pc, cmd: cmd, sockDir: sockDir, log: log, stderr: stderr, startLog: startLog}
	rpc, err := pc.Client()
	if err != nil {
		p.abort()
		return nil, p.startError(err)
	}
	raw, err := rpc.Dispense(pluginKey)
	if err != nil {
		p.abort()
		return nil, p.startError(err)
	}
	remote, ok := raw.(*wire.Remote)
	if !ok {
		p.abort()
		return nil, fmt.Errorf("backend %q: plugin returned an unexpected client type %T", cand.Name, raw)
	}
	// The start ends when the backend has been configured (host.Client.Configure): a backend
	// that dies right after the handshake is still reported in one line.
	return host.NewClient(cand, pc.NegotiatedVersion(), remote, p, log), nil
}

// process is a backend process go-plugin started for one client.
type process struct {
	cand    host.Candidate
	plugin  *plugin.Client
	cmd     *exec.Cmd
	sockDir *socketDir
	log     hclog.Logger
	stderr  *lastLine
	// startLog is quiet until the backend has been configured (Started).
	startLog startLogger
}

func (p *process) Pid() int {
	if p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *process) Exited() bool { return p.plugin.Exited() }

// Stop stops the plugin process (gracefully, then by force) and removes its socket directory.
func (p *process) Stop() error {
	done := make(chan struct{})
	go func() {
		p.plugin.Kill()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(host.KillGrace):
		// go-plugin waits for the plugin's stdout and stderr to close; a child the plugin
		// started can hold them open. The plugin leads its own process group: end all of it.
		p.killGroup()
		<-done
	}
	if rss, ok := host.MaxRSS(p.cmd); ok {
		p.log.Debug("backend plugin stopped", "backend", p.cand.Name, "max_rss_kib", rss)
	}
	return p.sockDir.remove()
}

// abort stops a plugin that failed to start: there is nothing to shut down gracefully.
func (p *process) abort() {
	p.killGroup()
	_ = p.Stop()
}

// killGroup kills the plugin's process group while the plugin is not yet reaped (so its PID,
// which names the group, cannot have been reused).
func (p *process) killGroup() {
	if !p.plugin.Exited() {
		host.KillGroup(p.cmd)
	}
}

func (p *process) Starting() bool { return p.startLog.starting.Load() }

func (p *process) Started() { p.startLog.started() }

var _ host.Starter = (*process)(nil)

// StartNamed finds the backend called name (host.Host.Find) and starts it as Start does.
func StartNamed(h *host.Host, name string) (*host.Client, error) {
	cand, err := h.Find(name)
	if err != nil {
		return nil, err
	}
	return Start(h, cand)
}
