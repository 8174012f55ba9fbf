package multinode

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fortytw2/leaktest"

	"raft-consensus/raft/core"
	"raft-consensus/raft/multi"
	"raft-consensus/raft/transport"
)

func sampleBatch() *multi.Batch {
	return &multi.Batch{From: 1, To: 2,
		Heartbeats:    []multi.Heartbeat{{Group: 7, Term: 3, PrevLogIndex: 9, PrevLogTerm: 2, Commit: 8, ReadRound: 4, Quiesce: true}, {Group: 1 << 40, Term: 1}},
		AppendReplies: []multi.AppendReply{{Group: 3, Term: 5, Success: true, MatchIndex: 12, PrevLogIndex: 11, ReadRound: 2, ConflictTerm: 1, ConflictIndex: 6}},
		Messages: []multi.GroupMessage{
			{Group: 9, Msg: core.Message{Type: core.MsgAppendEntries, From: 1, To: 2, Term: 4, PrevLogIndex: 2, PrevLogTerm: 1, LeaderCommit: 2,
				Entries: []core.Entry{{Index: 3, Term: 4, Type: core.EntryNormal, Data: []byte("hello")}}}},
			{Group: 2, Msg: core.Message{Type: core.MsgRequestVote, From: 1, To: 2, Term: 6, LastLogIndex: 5, LastLogTerm: 4, PreVote: true}},
		},
		UnknownGroups: []multi.GroupID{44}, Wake: []multi.GroupID{5, 6},
	}
}

func TestBatchRoundTrip(t *testing.T) {
	for _, b := range []*multi.Batch{sampleBatch(), {From: 0, To: 1}} {
		got, err := DecodeBatch(AppendBatch(nil, b))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, b) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, b)
		}
	}
}

// A batch whose message claims another sender, a truncated one, trailing
// bytes or a huge count: refused, no panic.
func TestBatchDecodeRefusesBadInput(t *testing.T) {
	spoof := sampleBatch()
	spoof.Messages[1].Msg.From = 0 // speaks for node 0 inside node 1's batch
	good := AppendBatch(nil, sampleBatch())
	huge := append([]byte{batchVersion, 2, 4}, binary.AppendUvarint(nil, 1<<60)...)
	for name, frame := range map[string][]byte{
		"spoofed sender": AppendBatch(nil, spoof),
		"truncated":      good[:len(good)-3],
		"trailing":       append(append([]byte(nil), good...), 0),
		"huge count":     huge,
		"version":        append([]byte{9}, good[1:]...),
		"empty":          nil,
	} {
		if _, err := DecodeBatch(frame); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(AppendBatch(nil, sampleBatch()))
	f.Add(AppendBatch(nil, &multi.Batch{From: 3, To: 4}))
	f.Fuzz(func(t *testing.T, frame []byte) {
		b, err := DecodeBatch(frame)
		if err != nil {
			return
		}
		// What decodes encodes to a frame that decodes to the same batch
		// (not to the same bytes: a varint may be written longer).
		again, err := DecodeBatch(AppendBatch(nil, b))
		if err != nil || !reflect.DeepEqual(again, b) {
			t.Fatalf("decoded %+v; encoded again, it decodes to %+v, %v", b, again, err)
		}
	})
}

// tcpCluster is nodes over TCP on loopback, every group on all of them.
func tcpCluster(t *testing.T, nodes, groups int, tlsDir string) ([]*Node, []*TCP) {
	t.Helper()
	var ns []*Node
	var ts []*TCP
	var ids []multi.NodeID
	for i := range nodes {
		cfg := TCPConfig{ID: multi.NodeID(i), Cluster: "test", Listen: "127.0.0.1:0"}
		if tlsDir != "" {
			tc, err := transport.LoadTLS(tlsDir, transport.CertName(i))
			if err != nil {
				t.Fatal(err)
			}
			cfg.TLS = tc
		}
		tr, err := ListenTCP(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, tr)
		ids = append(ids, multi.NodeID(i))
	}
	for i, tr := range ts {
		for j, other := range ts {
			if i != j {
				tr.SetPeer(multi.NodeID(j), other.Addr())
			}
		}
		cc := testCore()
		cc.Seed = int64(i + 1)
		n := New(Config{ID: multi.NodeID(i), Core: cc, Tick: 5 * time.Millisecond, Transport: tr, LivenessTicks: 200})
		tr.Attach(n)
		ns = append(ns, n)
	}
	for _, n := range ns {
		for g := range multi.GroupID(groups) {
			if err := n.CreateGroup(g, ids); err != nil {
				t.Fatal(err)
			}
		}
	}
	return ns, ts
}

// Many groups commit over TCP, plain and with mutual TLS; each node pair
// has one stream each way, whatever the number of groups.
func TestNodesOverTCP(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	dir := t.TempDir()
	if _, err := transport.WriteCerts(dir, []string{transport.CertName(0), transport.CertName(1), transport.CertName(2)}); err != nil {
		t.Fatal(err)
	}
	for _, tlsDir := range []string{"", dir} {
		ns, ts := tcpCluster(t, 3, 20, tlsDir)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for g := range multi.GroupID(20) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- ProposeAtLeader(ctx, ns, g, []byte("x"), time.Second)
			}()
		}
		wg.Wait()
		cancel()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("tls %v: %v", tlsDir != "", err)
			}
		}
		var sent, recv uint64
		for _, tr := range ts {
			st := tr.Stats()
			sent, recv = sent+st.FramesSent, recv+st.FramesReceived
		}
		t.Logf("tls %v: 20 groups committed; %d frames sent, %d received", tlsDir != "", sent, recv)
		if recv == 0 {
			t.Fatal("no frame received")
		}
		for _, n := range ns {
			n.Stop()
		}
		for _, tr := range ts {
			tr.Close()
		}
	}
}

// The door: a node of another cluster, an unknown node and a client are
// refused; a malformed frame or one that speaks for another node closes
// the stream, and nothing of it reaches the node.
func TestTCPRefusesStrangers(t *testing.T) {
	defer leaktest.CheckTimeout(t, 10*time.Second)()
	var mu sync.Mutex
	var logs []string
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		logs = append(logs, strings.TrimSpace(fmt.Sprintf(format, args...)))
	}
	tr, err := ListenTCP(TCPConfig{ID: 0, Cluster: "c", Listen: "127.0.0.1:0", Logf: logf})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	tr.SetPeer(1, "127.0.0.1:1") // known, never dialled here
	for _, tc := range []struct {
		name  string
		hello transport.Hello
		frame []byte
		want  string
	}{
		{"another cluster", transport.Hello{Cluster: "other", From: 1, To: 0}, nil, `cluster "other" is not this node's`},
		{"an unknown node", transport.Hello{Cluster: "c", From: 5, To: 0}, nil, "node 5 is not a known member"},
		{"a client", transport.Hello{Cluster: "c", From: transport.Client, To: 0}, nil, "a client may not send node frames"},
		{"a node of another -groups", transport.Hello{Cluster: "c", From: 1, To: 0, Groups: 8}, nil, "node 1 hosts 8 groups"},
		{"a malformed frame", transport.Hello{Cluster: "c", From: 1, To: 0}, []byte{1, 2, 3}, "malformed batch"},
		{"a batch from another node", transport.Hello{Cluster: "c", From: 1, To: 0}, AppendBatch(nil, &multi.Batch{From: 2, To: 0}), "a batch from node 2"},
		{"an oversized frame", transport.Hello{Cluster: "c", From: 1, To: 0}, binary.LittleEndian.AppendUint32(nil, 65<<20), "frame of"},
	} {
		err := sendRaw(tr.Addr(), tc.hello, tc.frame)
		waitFor(t, 5*time.Second, tc.name+" refused", func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, l := range logs {
				if strings.Contains(l, tc.want) {
					return true
				}
			}
			return false
		})
		t.Logf("%s: %v", tc.name, err)
	}
	if st := tr.Stats(); st.FramesReceived != 0 {
		t.Fatalf("%d frames got through", st.FramesReceived)
	}
}

// sendRaw dials addr, says hello as the transport does (written out here
// by hand, from the format in raft/transport/hello.go), and writes frame
// as one frame, or as raw bytes if it is only a header.
func sendRaw(addr string, h transport.Hello, frame []byte) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	body := []byte("RAFT2")
	body = binary.AppendUvarint(body, uint64(len(h.Cluster)))
	body = append(body, h.Cluster...)
	body = binary.AppendVarint(body, int64(h.From))
	body = binary.AppendVarint(body, int64(h.To))
	body = binary.AppendVarint(body, int64(h.Groups))
	if _, err := conn.Write(append(binary.LittleEndian.AppendUint32(nil, uint32(len(body))), body...)); err != nil {
		return err
	}
	answer := make([]byte, 512)
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := conn.Read(answer)
	if err != nil {
		return err
	}
	if n > 5 {
		return errors.New(string(answer[5:n])) // refused: the reason
	}
	if frame == nil {
		return nil
	}
	if len(frame) != 4 {
		frame = append(binary.LittleEndian.AppendUint32(nil, uint32(len(frame))), frame...)
	}
	_, err = conn.Write(frame)
	// The listener closes the connection: a read then ends.
	conn.Read(answer)
	return err
}
