package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Peak RSS has to be measured through a probe process.
//
// Go starts children with vfork (clone with CLONE_VM|CLONE_VFORK): until it execs, the child
// runs on its parent's memory, and at exec Linux records that memory's peak RSS in the child's
// ru_maxrss. So wait4 never reports less for a child than its parent's own peak RSS at the
// time it was started: for the bench, whose RSS grows to 20-30 MiB over a run, a 10 MiB curl
// would show up as 25 MiB. (The same holds one level down: the plugin's max_rss_kib is at
// least what the sdctl host had touched when it started the plugin.)
//
// Runs that measure RSS therefore go through a probe: this program re-executed with probeEnv
// set, which starts the command straight away, while it is still small, waits for it and
// writes the command's rusage and its own start and end times to file descriptor 3. The floor
// that remains, the probe's own RSS, is measured with /bin/true and shown in the report.
// Wall times in the report come from direct runs; the probe's start and end times only serve
// the phase breakdown of the debug runs, which the probe's own start-up would otherwise skew.

const probeEnv = "SDCTL_BENCH_RSS_PROBE"

// probeMain is the probe: argv is the command to run. It returns the exit code to use.
func probeMain(argv []string) int {
	report := os.NewFile(3, "probe-report")
	if len(argv) == 0 || report == nil {
		fmt.Fprintln(os.Stderr, "bench probe: no command, or no report descriptor")
		return 125
	}
	syscall.CloseOnExec(3) // not for the command
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, probeEnv+"=") {
			env = append(env, kv)
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// The command dies with the probe, which the bench kills on Ctrl-C. Pdeathsig follows
	// the forking thread, so fork from a thread that stays.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	runtime.LockOSThread()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "bench probe:", err)
		return 127
	}
	_ = cmd.Wait()
	end := time.Now()
	var maxRSS, cpu int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		maxRSS, cpu = ru.Maxrss, ru.Utime.Nano()+ru.Stime.Nano()
	}
	fmt.Fprintf(report, "%d %d %d %d\n", start.UnixNano(), end.UnixNano(), maxRSS, cpu)
	report.Close()
	if st, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && st.Signaled() {
		return 128 + int(st.Signal())
	}
	return cmd.ProcessState.ExitCode()
}

// probeReport is what the probe wrote.
type probeReport struct {
	start, end time.Time
	maxRSS     int64 // KiB
	cpu        time.Duration
}

func readProbeReport(f *os.File) (probeReport, error) {
	var p probeReport
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil {
		return p, fmt.Errorf("no report from the RSS probe: %w", err)
	}
	f4 := strings.Fields(line)
	if len(f4) != 4 {
		return p, fmt.Errorf("bad report from the RSS probe: %q", line)
	}
	var v [4]int64
	for i, s := range f4 {
		if v[i], err = strconv.ParseInt(s, 10, 64); err != nil {
			return p, fmt.Errorf("bad report from the RSS probe: %q", line)
		}
	}
	p.start, p.end = time.Unix(0, v[0]), time.Unix(0, v[1])
	p.maxRSS, p.cpu = v[2], time.Duration(v[3])
	return p, nil
}

// probePath is this program, which is the probe too.
var probePath = func() string {
	p, err := os.Executable()
	if err != nil {
		return ""
	}
	return p
}()
