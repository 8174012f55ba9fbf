package main

// The Kubernetes manifest, checked without a Kubernetes cluster: its
// documents decode strictly into the API's own types (k8s.io/api: a field
// Kubernetes does not know is an error, as kubectl's validation makes it),
// and what the StatefulSet asks of the node command holds together (the
// headless Service it names, the ports, the peers' names, the probes'
// addresses). TestStatefulSetOnDocker (tag docker) runs its pods.

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"raft-consensus/raft/remote"
)

const k8sManifest = "deploy/k8s/raft.yaml"

// k8sObjects are the manifest's Service and StatefulSet.
type k8sObjects struct {
	service corev1.Service
	set     appsv1.StatefulSet
}

func loadManifest(t *testing.T) k8sObjects {
	t.Helper()
	b, err := os.ReadFile(k8sManifest)
	if err != nil {
		t.Fatal(err)
	}
	var objs k8sObjects
	seen := map[string]bool{}
	for i, doc := range bytes.Split(b, []byte("\n---\n")) {
		var head struct{ Kind string }
		if err := yaml.Unmarshal(doc, &head); err != nil {
			t.Fatalf("%s, document %d: %v", k8sManifest, i+1, err)
		}
		var into any
		switch head.Kind {
		case "Service":
			into = &objs.service
		case "StatefulSet":
			into = &objs.set
		default:
			t.Fatalf("%s, document %d: kind %q, want a Service and a StatefulSet", k8sManifest, i+1, head.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, into); err != nil {
			t.Fatalf("%s, the %s: %v", k8sManifest, head.Kind, err)
		}
		seen[head.Kind] = true
	}
	if !seen["Service"] || !seen["StatefulSet"] {
		t.Fatalf("%s holds %v, want a Service and a StatefulSet", k8sManifest, seen)
	}
	return objs
}

// nodeContainer is the StatefulSet's node container.
func (o k8sObjects) nodeContainer(t *testing.T) corev1.Container {
	t.Helper()
	cs := o.set.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("the pod has %d containers, want the node's", len(cs))
	}
	return cs[0]
}

// flagValue is the value of -name in args ("" if absent).
func flagValue(args []string, name string) string {
	i := slices.Index(args, "-"+name)
	if i < 0 || i+1 >= len(args) {
		return ""
	}
	return args[i+1]
}

func TestKubernetesManifest(t *testing.T) {
	o := loadManifest(t)
	svc, set := o.service, o.set
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("the Service is not headless (clusterIP %q): pods get no DNS names of their own", svc.Spec.ClusterIP)
	}
	if !svc.Spec.PublishNotReadyAddresses {
		t.Error("the Service hides pods not ready: the peers could never find each other to elect the leader that readiness waits for")
	}
	if set.Spec.ServiceName != svc.Name {
		t.Errorf("the StatefulSet's serviceName %q is not the Service %q", set.Spec.ServiceName, svc.Name)
	}
	for k, v := range svc.Spec.Selector {
		if set.Spec.Template.Labels[k] != v || set.Spec.Selector.MatchLabels[k] != v {
			t.Errorf("the Service selects %s=%s, which the pods do not carry", k, v)
		}
	}
	c := o.nodeContainer(t)
	args := c.Args
	if len(args) == 0 || args[0] != "node" || !slices.Contains(args, "-id-from-hostname") {
		t.Fatalf("the container runs %v, want the node command with -id-from-hostname", args)
	}
	_, port, _ := strings.Cut(flagValue(args, "listen"), ":")
	if len(c.Ports) != 1 || fmt.Sprint(c.Ports[0].ContainerPort) != port || fmt.Sprint(svc.Spec.Ports[0].Port) != port {
		t.Errorf("the node listens on port %s; the container declares %+v, the Service %+v", port, c.Ports, svc.Spec.Ports)
	}
	// Every peer is a pod of the set, by its DNS name in the Service.
	peers, err := remote.ParsePeers(flagValue(args, "peers"))
	if err != nil {
		t.Fatalf("-peers: %v", err)
	}
	for id, addr := range peers {
		if want := fmt.Sprintf("%s-%d.%s:%s", set.Name, id, svc.Name, port); addr != want {
			t.Errorf("peer %d is %s, want pod %s-%d's name in the Service, %s", id, addr, set.Name, id, want)
		}
	}
	replicas := int(*set.Spec.Replicas)
	founders, err := parseIDs(flagValue(args, "founders"))
	if err != nil || len(founders) != replicas {
		t.Errorf("-founders %v (%v), want the first %d pods", founders, err, replicas)
	}
	for _, f := range founders {
		if _, ok := peers[f]; !ok {
			t.Errorf("founder %d is not a peer", f)
		}
	}
	cluster := flagValue(args, "cluster-id")
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.Exec == nil {
			t.Errorf("no %s probe running the health command", name)
			continue
		}
		cmd := p.Exec.Command
		if flagValue(cmd, "addr") != "127.0.0.1:"+port || flagValue(cmd, "cluster-id") != cluster || flagValue(cmd, "tls-dir") != flagValue(args, "tls-dir") {
			t.Errorf("the %s probe %v does not ask this node (port %s, cluster %s, the same certificates)", name, cmd, port, cluster)
		}
	}
	if !slices.Contains(c.ReadinessProbe.Exec.Command, "-ready") {
		t.Error("the readiness probe does not wait for a known leader (health -ready)")
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	if len(set.Spec.VolumeClaimTemplates) != 1 || mounts[set.Spec.VolumeClaimTemplates[0].Name] != flagValue(args, "data-dir") {
		t.Errorf("the data dir %s is not the pod's volume claim (mounts %v)", flagValue(args, "data-dir"), mounts)
	}
}
