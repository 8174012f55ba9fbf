//go:build docker

package main

// The compose cluster under faults, in containers: run with
//
//	go test -tags docker -run TestDockerCompose .
//
// (.ci/run does, where "docker info" answers). It builds the static
// binary and the image, starts deploy/docker-compose.yml under a project
// name of its own, on ports of its own, and tears everything down after,
// even on failure: clients over TLS while nodes are killed (docker kill),
// frozen (docker pause), cut off (docker network disconnect) and restarted
// one after the other (a rolling restart); porcupine and the
// acknowledged-write check at the end. It runs twice: nodes of one group,
// and nodes of 8 groups each (RAFT_GROUPS=8, node -groups 8).

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fortytw2/leaktest"

	"raft-consensus/raft/cluster"
	"raft-consensus/raft/remote"
)

// compose is one compose project.
type compose struct {
	t       *testing.T
	cmd     []string // docker compose, or docker-compose
	project string
	env     []string
	groups  int
	cl      cluster.Cluster
	*remote.Cluster
	grouped *remote.GroupedCluster // with RAFT_GROUPS > 1
}

func (c *compose) run(args ...string) string {
	c.t.Helper()
	out, err := c.try(args...)
	if err != nil {
		c.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (c *compose) try(args ...string) (string, error) {
	var cmd *exec.Cmd
	if args[0] == "compose" {
		full := append(append(c.cmd[1:], "-p", c.project, "-f", "deploy/docker-compose.yml"), args[1:]...)
		cmd = exec.Command(c.cmd[0], full...)
	} else {
		cmd = exec.Command("docker", args...)
	}
	cmd.Env = append(os.Environ(), c.env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// container is node id's container.
func (c *compose) newClient() workloadClient {
	if c.grouped != nil {
		return c.grouped.NewShardClient()
	}
	return c.NewClient()
}

// leader is the leader (of the most groups, with many).
func (c *compose) leader() int {
	c.t.Helper()
	if c.grouped == nil {
		l, _, err := c.CheckUniqueLeader(30 * time.Second)
		if err != nil {
			c.t.Fatalf("%v\n%s", err, c.logs())
		}
		return l
	}
	led, err := c.grouped.WaitLeaders(30 * time.Second)
	if err != nil {
		c.t.Fatalf("%v\n%s", err, c.logs())
	}
	best := 0
	for id, n := range led {
		if n > led[best] {
			best = id
		}
	}
	return best
}

func (c *compose) container(id int) string {
	return strings.TrimSpace(c.run("compose", "ps", "-q", fmt.Sprintf("node-%d", id)))
}

func (c *compose) logs() string {
	out, _ := c.try("compose", "logs", "--tail", "20")
	return out
}

// freeAddr finds a port on 127.0.0.1 nobody listens on now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func composeCommand() ([]string, error) {
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}, nil
	}
	if _, err := exec.LookPath("docker-compose"); err == nil {
		return []string{"docker-compose"}, nil
	}
	return nil, fmt.Errorf("neither \"docker compose\" nor docker-compose is installed")
}

func TestDockerCompose(t *testing.T) {
	if out, err := exec.Command("docker", "info").CombinedOutput(); err != nil {
		t.Skipf("the Docker Engine does not answer (docker info: %v): %s", err, bytes.TrimSpace(out))
	}
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	cmd, err := composeCommand()
	if err != nil {
		t.Fatal(err)
	}
	buildImage(t)
	for _, groups := range []int{1, 8} {
		t.Run(fmt.Sprintf("groups=%d", groups), func(t *testing.T) { composeUnderFaults(t, cmd, groups) })
	}
}

// buildImage builds the image as deploy/Dockerfile says: the static
// binary, in FROM scratch.
func buildImage(t *testing.T) {
	t.Helper()
	ctxDir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(ctxDir, "raft-consensus"), ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	df, err := os.ReadFile("deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), df, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("docker", "build", "-q", "-t", "raft-consensus:latest", ctxDir).CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
}

func composeUnderFaults(t *testing.T, cmd []string, groups int) {
	certs := t.TempDir()
	c := &compose{t: t, cmd: cmd, project: fmt.Sprintf("rafttest%dg%d", os.Getpid(), groups), groups: groups,
		env: []string{"RAFT_CERTS_DIR=" + certs, fmt.Sprintf("RAFT_GROUPS=%d", groups)}}
	var addrs []string
	for i := range 4 { // node-3 is started later, and added
		addr, err := freeAddr()
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := strings.Cut(addr, ":")
		c.env = append(c.env, fmt.Sprintf("RAFT_PORT_%d=%s", i, port))
		addrs = append(addrs, addr)
	}
	t.Cleanup(func() {
		if out, err := c.try("compose", "down", "-v", "--remove-orphans", "-t", "2"); err != nil {
			t.Errorf("tearing down: %v\n%s", err, out)
		}
	})
	c.run("compose", "up", "-d")
	deadline := time.Now().Add(60 * time.Second)
	for {
		var err error
		c.cl, err = remote.ConnectAny(remote.ClusterConfig{Addrs: addrs, Cluster: "compose", TLSDir: certs, Timeout: 5 * time.Second})
		if err == nil {
			c.grouped, _ = c.cl.(*remote.GroupedCluster)
			if c.grouped != nil {
				c.Cluster = c.grouped.Cluster
			} else {
				c.Cluster = c.cl.(*remote.Cluster)
			}
			if len(c.IDs()) == 3 && (c.grouped != nil) == (groups > 1) {
				break
			}
			err = fmt.Errorf("%d nodes, grouped %v", len(c.IDs()), c.grouped != nil)
			c.cl.Shutdown()
		}
		if time.Now().After(deadline) {
			t.Fatalf("the compose cluster did not answer: %v\n%s", err, c.logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
	defer c.cl.Shutdown()
	leader := c.leader
	leader()
	w := startWorkload(c, 4)
	defer w.finish()
	w.waitProgress(t, c, 50, "before the faults")

	l := leader()
	c.run("kill", c.container(l))
	w.waitProgress(t, c, 20, fmt.Sprintf("after docker kill of the leader %d", l))
	c.run("start", c.container(l))

	l = leader()
	c.run("pause", c.container(l))
	w.waitProgress(t, c, 20, fmt.Sprintf("with the leader %d paused", l))
	c.run("unpause", c.container(l))

	l = leader()
	network := c.project + "_default"
	c.run("network", "disconnect", network, c.container(l))
	w.waitProgress(t, c, 20, fmt.Sprintf("with the leader %d disconnected from the network", l))
	c.run("network", "connect", "--alias", fmt.Sprintf("node-%d", l), network, c.container(l))

	for id := range 3 {
		c.run("restart", "-t", "5", c.container(id))
		w.waitProgress(t, c, 20, fmt.Sprintf("after restarting node %d (rolling restart)", id))
	}

	// A node added as the README says: "up -d node-3" (it joins), then
	// "add 3" from a client that reaches it at its host port.
	c.run("compose", "up", "-d", "node-3")
	if err := c.cl.AddServer(3); err != nil {
		t.Fatalf("add 3: %v\n%s", err, c.logs())
	}
	w.waitProgress(t, c, 20, "after node 3 was added")
	if c.grouped != nil {
		for _, gs := range c.grouped.Groups() {
			if !gs.Config.IsVoter(3) {
				t.Errorf("after add 3, group %d's members are %v", gs.ID, gs.Config.Voters)
			}
		}
	} else if ids := c.IDs(); !slices.Contains(ids, 3) {
		t.Errorf("after add 3, the members are %v", ids)
	} else if st := c.Status(); !slices.ContainsFunc(st, func(n cluster.NodeStatus) bool { return n.ID == 3 && n.Alive }) {
		t.Errorf("after add 3, node 3 does not answer: %+v", st)
	}
	w.finish()
	leader()
	checkAcked(t, c, w)
	checkHistory(t, c.History())
}
