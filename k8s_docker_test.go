//go:build docker

package main

// The StatefulSet of deploy/k8s/raft.yaml, run without Kubernetes: these
// machines have none, so the test plays the parts Kubernetes would, on
// the Docker Engine, from the manifest itself. Each pod is a container of
// the image, named and with the host name of a StatefulSet's pod (raft-0,
// raft-1, …, from which the node takes its id), with the manifest's
// container args, its volume claim (a volume per pod, kept when the pod is
// deleted) and the Secret's certificates mounted where the manifest mounts
// them, on a network where the headless Service's DNS names
// (raft-0.raft) resolve; the readiness and liveness probes are the
// manifest's exec commands, run in the container (docker exec, as the
// kubelet does). Each pod's port is published on 127.0.0.1 (kubectl
// port-forward). The test then does what the manifest's head tells a
// user: connect, write under load, delete a pod (the StatefulSet makes it
// again on its volume), scale to 4 (raft-3 joins: it is no founder), add
// it; porcupine and the acknowledged-write check at the end.

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/fortytw2/leaktest"

	"raft-consensus/raft/remote"
)

// podSet is the StatefulSet's pods as containers.
type podSet struct {
	t       *testing.T
	prefix  string // of the containers', volumes' and network's names
	objs    k8sObjects
	certs   string
	ports   []string // host port of pod i (its port-forward)
	network string
	*remote.Cluster
}

func (p *podSet) docker(args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command("docker", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (p *podSet) must(args ...string) string {
	p.t.Helper()
	out, err := p.docker(args...)
	if err != nil {
		p.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (p *podSet) pod(i int) string          { return fmt.Sprintf("%s-%s-%d", p.prefix, p.objs.set.Name, i) }
func (p *podSet) hostname(i int) string     { return fmt.Sprintf("%s-%d", p.objs.set.Name, i) }
func (p *podSet) volume(i int) string       { return fmt.Sprintf("%s-data-%d", p.prefix, i) }
func (p *podSet) newClient() workloadClient { return p.NewClient() }

// start runs pod i as the StatefulSet would (again on its volume, if it
// ran before).
func (p *podSet) start(i int) {
	p.t.Helper()
	c := p.objs.nodeContainer(p.t)
	args := []string{"run", "-d", "--name", p.pod(i), "--hostname", p.hostname(i),
		"--network", p.network, "--network-alias", p.hostname(i) + "." + p.objs.service.Name,
		"-p", "127.0.0.1:" + p.ports[i] + ":" + fmt.Sprint(c.Ports[0].ContainerPort),
		"--stop-timeout", fmt.Sprint(*p.objs.set.Spec.Template.Spec.TerminationGracePeriodSeconds)}
	for _, m := range c.VolumeMounts {
		switch m.Name {
		case p.objs.set.Spec.VolumeClaimTemplates[0].Name:
			args = append(args, "-v", p.volume(i)+":"+m.MountPath)
		default: // the Secret's certificates
			args = append(args, "-v", p.certs+":"+m.MountPath+":ro")
		}
	}
	args = append(args, c.Image)
	p.must(append(args, c.Args...)...)
}

// probe runs a probe's command in pod i, as the kubelet does.
func (p *podSet) probe(i int, cmd []string) error {
	if out, err := p.docker(append([]string{"exec", p.pod(i)}, cmd...)...); err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(out))
	}
	return nil
}

// waitReady waits until pod i's readiness probe passes.
func (p *podSet) waitReady(i int) {
	p.t.Helper()
	p.waitProbe(i, p.objs.nodeContainer(p.t).ReadinessProbe.Exec.Command, "ready")
}

// waitProbe waits until a probe passes in pod i.
func (p *podSet) waitProbe(i int, cmd []string, what string) {
	p.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := p.probe(i, cmd)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("pod %s is not %s after 60 s: %v\n%s", p.hostname(i), what, err, p.logs())
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (p *podSet) logs() string {
	var b strings.Builder
	for i := range len(p.ports) {
		out, _ := p.docker("logs", "--tail", "15", p.pod(i))
		fmt.Fprintf(&b, "--- %s\n%s", p.hostname(i), out)
	}
	return b.String()
}

func TestStatefulSetOnDocker(t *testing.T) {
	if out, err := exec.Command("docker", "info").CombinedOutput(); err != nil {
		t.Skipf("the Docker Engine does not answer (docker info: %v): %s", err, bytes.TrimSpace(out))
	}
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	buildImage(t)
	objs := loadManifest(t)
	replicas := int(*objs.set.Spec.Replicas)
	p := &podSet{t: t, prefix: fmt.Sprintf("raftk8s%d", os.Getpid()), objs: objs, certs: t.TempDir()}
	// The Secret: the certificates the manifest's head makes.
	if code := runCerts([]string{"-dir", p.certs, "-nodes", "7"}, io.Discard, io.Discard); code != 0 {
		t.Fatalf("certs: status %d", code)
	}
	var addrs []string
	for range replicas + 1 { // the last: raft-3, scaled up later
		addr, err := freeAddr()
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := strings.Cut(addr, ":")
		p.ports = append(p.ports, port)
		addrs = append(addrs, addr)
	}
	p.network = p.prefix + "-net"
	p.must("network", "create", p.network)
	t.Cleanup(func() {
		for i := range p.ports {
			p.docker("rm", "-f", "-v", p.pod(i)) //nolint:errcheck // may never have run
			p.docker("volume", "rm", "-f", p.volume(i))
		}
		if out, err := p.docker("network", "rm", p.network); err != nil {
			t.Errorf("tearing down: %v\n%s", err, out)
		}
	})
	for i := range replicas { // podManagementPolicy: Parallel
		p.start(i)
	}
	for i := range replicas {
		p.waitReady(i)
	}
	cluster := flagValue(objs.nodeContainer(t).Args, "cluster-id")
	var err error
	p.Cluster, err = remote.Connect(remote.ClusterConfig{Addrs: addrs, Cluster: cluster, TLSDir: p.certs, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("connecting to the pods: %v\n%s", err, p.logs())
	}
	defer p.Shutdown()
	if got := p.IDs(); len(got) != replicas {
		t.Fatalf("the founders are %v, want the first %d pods", got, replicas)
	}
	w := startWorkload(p, 4)
	defer w.finish()
	w.waitProgress(t, p, 50, "before the faults")
	for i := range replicas {
		if err := p.probe(i, objs.nodeContainer(t).LivenessProbe.Exec.Command); err != nil {
			t.Errorf("pod %s fails its liveness probe: %v", p.hostname(i), err)
		}
	}

	// kubectl delete pod of the leader: the StatefulSet makes it again,
	// with the same name, on the same volume claim.
	l, _, err := p.CheckUniqueLeader(30 * time.Second)
	if err != nil {
		t.Fatalf("%v\n%s", err, p.logs())
	}
	p.must("rm", "-f", p.pod(l))
	w.waitProgress(t, p, 20, fmt.Sprintf("with the leader's pod %s deleted", p.hostname(l)))
	p.start(l)
	p.waitReady(l)
	w.waitProgress(t, p, 20, fmt.Sprintf("after pod %s came back", p.hostname(l)))

	// kubectl scale --replicas 4: raft-3 is no founder, so it joins and
	// waits; "add 3" adds it.
	p.start(replicas)
	p.waitProbe(replicas, objs.nodeContainer(t).LivenessProbe.Exec.Command, "live") // it runs: "kubectl get pods"
	if err := p.AddServer(replicas); err != nil {
		t.Fatalf("add %d: %v\n%s", replicas, err, p.logs())
	}
	p.waitReady(replicas)
	w.waitProgress(t, p, 20, "after the fourth pod was added")
	if ids := p.IDs(); len(ids) != replicas+1 {
		t.Errorf("after add %d the members are %v", replicas, ids)
	}
	w.finish()
	if _, _, err := p.CheckUniqueLeader(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	checkAcked(t, p, w)
	checkHistory(t, p.History())
}
