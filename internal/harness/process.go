package harness

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// process is one server's process, started again by restarts. Its output, across all of its
// runs, goes to one log file, with a line of the harness's own before each run.
type process struct {
	what    string // "consul agent NAME", "etcd member NAME": for messages
	logPath string

	mu        sync.Mutex
	cmd       *exec.Cmd
	done      chan struct{} // closed when the current run has exited
	exitErr   error
	startedAt time.Time // when the current run was started
	logOffset int64     // where the current run's output starts in the log
	exitedCPU time.Duration
}

// start launches bin with args in dir; it does not wait for the server to serve.
func (p *process) start(bin, dir string, args ...string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !isClosed(p.done) {
		return fmt.Errorf("%s is already running", p.what)
	}
	off, err := p.mark("starting %s %s", bin, strings.Join(args, " "))
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = ServerEnv(os.Environ())
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := StartProcess(cmd); err != nil {
		return err
	}
	done := make(chan struct{})
	p.cmd, p.done, p.exitErr, p.logOffset, p.startedAt = cmd, done, nil, off, time.Now()
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.exitErr = err
		p.exitedCPU += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		p.mu.Unlock()
		_, _ = p.mark("%s exited: %v", p.what, cmd.ProcessState)
		close(done)
	}()
	return nil
}

// mark writes a line of the harness into the log and returns the offset where it starts.
func (p *process) mark(format string, args ...any) (int64, error) {
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	off, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, err
	}
	_, err = fmt.Fprintf(f, "=== harness %s: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	return off, err
}

// exited reports why the current run ended, or nil while it runs.
func (p *process) exited() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("%s was not started", p.what)
	}
	if !isClosed(p.done) {
		return nil
	}
	if p.exitErr != nil {
		return fmt.Errorf("%s exited: %w", p.what, p.exitErr)
	}
	return fmt.Errorf("%s exited with status 0", p.what)
}

// Running reports whether the server's process is running.
func (p *process) Running() bool {
	return p.exited() == nil
}

// signal sends sig to the running process and returns the channel closed on its exit, or nil
// when nothing runs.
func (p *process) signal(sig os.Signal) chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || isClosed(p.done) {
		return nil
	}
	_ = p.cmd.Process.Signal(sig)
	return p.done
}

// Kill sends SIGKILL and waits for the process to end, as a crash would end it. It does
// nothing when the server is not running.
func (p *process) Kill() {
	if done := p.signal(os.Kill); done != nil {
		<-done
	}
}

// stop sends sig and waits for the process to end, killing it after grace.
func (p *process) stop(sig os.Signal, grace time.Duration) {
	done := p.signal(sig)
	if done == nil {
		return
	}
	select {
	case <-done:
	case <-time.After(grace):
		_, _ = p.mark("%s still running %s after %v; killing it", p.what, grace, sig)
		p.Kill()
	}
}

// PID is the process ID of the current run, or 0 when none was started.
func (p *process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// StartedAt is when the current run was started.
func (p *process) StartedAt() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.startedAt
}

// CPUTime is the user and system time of every run of the server so far, and the part of it
// that belongs to runs that have exited (and so count in the getrusage(RUSAGE_CHILDREN) of the
// program that started them). A running process's share comes from /proc, 0 where there is none.
func (p *process) CPUTime() (total, exited time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	total = p.exitedCPU
	if p.cmd != nil && !isClosed(p.done) {
		total += ProcCPU(p.cmd.Process.Pid)
	}
	return total, p.exitedCPU
}

// Log is everything the server printed so far, over all its runs, with the harness's lines.
func (p *process) Log() string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(no log of %s: %v)", p.what, err)
	}
	return string(data)
}

// LogTail is the last n lines of Log, headed by where the log is.
func (p *process) LogTail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("(%d earlier lines omitted)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return fmt.Sprintf("--- log of %s (%s):\n%s", p.what, p.logPath, strings.Join(lines, "\n"))
}

// addrInUse reports whether the current run failed to bind a port.
func (p *process) addrInUse() bool {
	p.mu.Lock()
	off := p.logOffset
	p.mu.Unlock()
	f, err := os.Open(p.logPath)
	if err != nil {
		return false
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return false
	}
	data, _ := io.ReadAll(f)
	return bytes.Contains(data, []byte("address already in use"))
}

// clockTick is USER_HZ, the unit of the times in /proc/PID/stat.
const clockTick = 100

// ProcCPU is the user and system time of a running process, from /proc/PID/stat; 0 when it
// cannot be read.
func ProcCPU(pid int) time.Duration {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces; the fields after it start at 3.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return time.Duration(utime+stime) * time.Second / clockTick
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
