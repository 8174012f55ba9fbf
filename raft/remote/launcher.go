package remote

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Launcher starts node processes on 127.0.0.1 (as etcd's Procfile does)
// and controls them for Cluster: SIGKILL, a restart on the same data dir,
// SIGSTOP and SIGCONT. Each node's data dir is Dir/node-<id>, its log
// Dir/node-<id>.log; the address book is kept in Dir/cluster.json, so that
// a launcher started again on Dir recovers the same cluster on the same
// ports.
type Launcher struct {
	cfg     LauncherConfig
	release func()

	mu    sync.Mutex
	procs map[int]*proc
	book  map[int]string

	// recovered: Dir held a cluster, started again (Nodes ignored).
	recovered bool
}

// Recovered reports whether Dir held a cluster when the launcher started,
// which it started again as it was (LauncherConfig.Nodes was not used).
func (l *Launcher) Recovered() bool { return l.recovered }

// LauncherConfig configures a Launcher.
type LauncherConfig struct {
	Dir     string
	Nodes   int    // the founding members, 0..Nodes-1 (a recovered Dir keeps its own)
	Cluster string // the cluster id
	// Binary is this program (default: os.Executable()), run as
	// "Binary node …"; NodeArgs are more flags for every node.
	Binary   string
	NodeArgs []string
	// Env is added to the nodes' environment.
	Env []string
	// StartTimeout bounds the wait for a started node to answer (10 s).
	StartTimeout time.Duration
}

type proc struct {
	id     int
	cmd    *exec.Cmd
	done   chan struct{} // closed when the process has exited
	paused bool
	join   bool
}

// launcherFile is the launcher's record of the cluster in Dir.
const launcherFile = "cluster.json"

type launcherRecord struct {
	Cluster string         `json:"cluster"`
	Peers   map[int]string `json:"peers"`
	Joined  []int          `json:"joined,omitempty"` // added after the start
	// Removed are the nodes a membership change took out (and the
	// launcher stopped): a later launcher on the dir does not start them.
	Removed []int `json:"removed,omitempty"`
}

// Launch takes Dir (one launcher at a time), starts the nodes and waits
// until each answers.
func Launch(cfg LauncherConfig) (*Launcher, error) {
	if cfg.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cfg.Binary = exe
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	release, err := lockDir(cfg.Dir, "LAUNCHER")
	if err != nil {
		if errors.Is(err, ErrLocked) {
			return nil, fmt.Errorf("%w: another launcher runs on it", err)
		}
		return nil, err
	}
	l := &Launcher{cfg: cfg, release: release, procs: map[int]*proc{}}
	rec, err := l.record()
	if err != nil {
		release()
		return nil, err
	}
	l.book = rec.Peers
	var ids []int
	for id := range l.book {
		if !slices.Contains(rec.Removed, id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		if err := l.startLocked(id, slices.Contains(rec.Joined, id)); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

// record reads Dir's record, or makes one with free ports for a new
// cluster.
func (l *Launcher) record() (launcherRecord, error) {
	path := filepath.Join(l.cfg.Dir, launcherFile)
	var rec launcherRecord
	if b, err := os.ReadFile(path); err == nil {
		if err := jsonUnmarshal(b, &rec); err != nil {
			return rec, fmt.Errorf("%s: %v", path, err)
		}
		if rec.Cluster != l.cfg.Cluster {
			return rec, fmt.Errorf("%s holds cluster %q, not %q", l.cfg.Dir, rec.Cluster, l.cfg.Cluster)
		}
		l.recovered = true
		return rec, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return rec, err
	}
	if l.cfg.Nodes < 1 || l.cfg.Nodes > 16 {
		return rec, fmt.Errorf("a cluster has 1 to 16 nodes, not %d", l.cfg.Nodes)
	}
	rec = launcherRecord{Cluster: l.cfg.Cluster, Peers: map[int]string{}}
	for id := range l.cfg.Nodes {
		addr, err := freePort()
		if err != nil {
			return rec, err
		}
		rec.Peers[id] = addr
	}
	return rec, writeJSON(path, rec)
}

// freePort finds a port on 127.0.0.1 nobody listens on now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Book returns where every node listens.
func (l *Launcher) Book() map[int]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.book)
}

// Addrs returns the addresses of the nodes it runs (not those a change
// removed), in id order.
func (l *Launcher) Addrs() []string {
	book := l.Book()
	rec, _ := l.recordOnDisk()
	var out []string
	for _, id := range slices.Sorted(maps.Keys(book)) {
		if !slices.Contains(rec.Removed, id) {
			out = append(out, book[id])
		}
	}
	return out
}

func (l *Launcher) nodeDir(id int) string { return filepath.Join(l.cfg.Dir, "node-"+strconv.Itoa(id)) }

// startLocked starts node id's process and waits until it answers.
func (l *Launcher) startLocked(id int, join bool) error {
	peers := maps.Clone(l.book)
	if !join {
		// The founders' book is the founding configuration: the members
		// added later are learned by the admin service.
		rec, _ := l.recordOnDisk()
		for _, j := range rec.Joined {
			delete(peers, j)
		}
	}
	args := []string{"node", "-id", strconv.Itoa(id), "-listen", l.book[id], "-peers", FormatPeers(peers),
		"-data-dir", l.nodeDir(id), "-cluster-id", l.cfg.Cluster}
	if join {
		args = append(args, "-join")
	}
	args = append(args, l.cfg.NodeArgs...)
	logPath := l.nodeDir(id) + ".log"
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(l.cfg.Binary, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), l.cfg.Env...)
	// The nodes die with the launcher, however it ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("starting node %d: %v", id, err)
	}
	p := &proc{id: id, cmd: cmd, done: make(chan struct{}), join: join}
	go func() {
		cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	l.procs[id] = p
	if err := l.waitAnswers(id, p); err != nil {
		cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("node %d: %v\n%s", id, err, tail(logPath, 5))
	}
	return nil
}

func (l *Launcher) recordOnDisk() (launcherRecord, error) {
	var rec launcherRecord
	b, err := os.ReadFile(filepath.Join(l.cfg.Dir, launcherFile))
	if err != nil {
		return rec, err
	}
	return rec, jsonUnmarshal(b, &rec)
}

// waitAnswers waits until node id answers its admin service, or its
// process exits.
func (l *Launcher) waitAnswers(id int, p *proc) error {
	d, err := NewDialer(l.cfg.Cluster, "")
	if err != nil {
		return err
	}
	defer d.Close()
	deadline := time.Now().Add(l.cfg.StartTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		var info NodeInfo
		err := d.Call(ctx, l.book[id], AdminService+".Info", &struct{}{}, &info)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("the process exited (%v)", p.cmd.ProcessState)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer within %v: %v", l.cfg.StartTimeout, err)
		}
	}
}

// tail returns the last n lines of a file, indented.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

func (l *Launcher) running(id int) (*proc, error) {
	p, ok := l.procs[id]
	if !ok {
		return nil, fmt.Errorf("node %d was not started here", id)
	}
	select {
	case <-p.done:
		return nil, fmt.Errorf("node %d is not running (restart it first)", id)
	default:
		return p, nil
	}
}

// Start implements Processes: a new node, joining.
func (l *Launcher) Start(id int, book map[int]string) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p, ok := l.procs[id]; ok {
		select {
		case <-p.done:
		default:
			return "", fmt.Errorf("node %d runs already", id)
		}
	}
	addr, err := freePort()
	if err != nil {
		return "", err
	}
	maps.Copy(l.book, book)
	l.book[id] = addr
	rec, err := l.recordOnDisk()
	if err != nil {
		return "", err
	}
	rec.Peers = maps.Clone(l.book)
	if !slices.Contains(rec.Joined, id) {
		rec.Joined = append(rec.Joined, id)
	}
	rec.Removed = slices.DeleteFunc(rec.Removed, func(r int) bool { return r == id })
	if err := writeJSON(filepath.Join(l.cfg.Dir, launcherFile), rec); err != nil {
		return "", err
	}
	os.RemoveAll(l.nodeDir(id)) // a node added anew starts empty
	return addr, l.startLocked(id, true)
}

// Kill implements Processes.
func (l *Launcher) Kill(id int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, err := l.running(id)
	if err != nil {
		return fmt.Errorf("node %d is already crashed", id)
	}
	p.cmd.Process.Kill()
	<-p.done
	p.paused = false
	return nil
}

// Restart implements Processes.
func (l *Launcher) Restart(id int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.procs[id]
	if !ok {
		return fmt.Errorf("node %d was not started here", id)
	}
	if rec, err := l.recordOnDisk(); err == nil && slices.Contains(rec.Removed, id) {
		return fmt.Errorf("node %d was removed from the cluster: \"add %d\" brings it back, empty", id, id)
	}
	select {
	case <-p.done:
	default:
		return fmt.Errorf("node %d is running (crash it first)", id)
	}
	return l.startLocked(id, p.join)
}

// Pause implements Processes.
func (l *Launcher) Pause(id int) error { return l.setPaused(id, true) }

// Resume implements Processes.
func (l *Launcher) Resume(id int) error { return l.setPaused(id, false) }

// setPaused stops (SIGSTOP) or continues (SIGCONT) node id's process.
func (l *Launcher) setPaused(id int, pause bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, err := l.running(id)
	if err != nil {
		return err
	}
	switch {
	case pause && p.paused:
		return fmt.Errorf("node %d is already paused", id)
	case !pause && !p.paused:
		return fmt.Errorf("node %d is not paused", id)
	}
	sig := syscall.SIGCONT
	if pause {
		sig = syscall.SIGSTOP
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return err
	}
	p.paused = pause
	return nil
}

// Stop implements Processes: SIGTERM, and SIGKILL if the node has not
// stopped within 5 s.
func (l *Launcher) Stop(id int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p, err := l.running(id); err == nil {
		l.stopLocked(p)
	}
	return nil
}

// Remove implements Processes.
func (l *Launcher) Remove(id int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Recorded first: a launcher started later on the dir leaves it out.
	rec, err := l.recordOnDisk()
	if err != nil {
		return err
	}
	if !slices.Contains(rec.Removed, id) {
		rec.Removed = append(rec.Removed, id)
		if err := writeJSON(filepath.Join(l.cfg.Dir, launcherFile), rec); err != nil {
			return err
		}
	}
	if p, err := l.running(id); err == nil {
		l.stopLocked(p)
	}
	return nil
}

func (l *Launcher) stopLocked(p *proc) {
	if p.paused {
		p.cmd.Process.Signal(syscall.SIGCONT)
		p.paused = false
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// Pid implements Processes.
func (l *Launcher) Pid(id int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, err := l.running(id)
	if err != nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Paused implements Processes.
func (l *Launcher) Paused(id int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, err := l.running(id)
	return err == nil && p.paused
}

// Close implements Processes: every node stops (SIGTERM), and Dir is
// free for another launcher.
func (l *Launcher) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range l.procs {
		if _, err := l.running(p.id); err == nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l.stopLocked(p)
			}()
		}
	}
	wg.Wait()
	if l.release != nil {
		l.release()
		l.release = nil
	}
	return nil
}
