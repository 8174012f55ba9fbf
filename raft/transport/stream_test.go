package transport

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fortytw2/leaktest"
)

// stuckListener is a stream listener whose first delivery blocks until
// release closes, so that the connection it came on stops being read and
// the sender's writes to it block once the socket buffers are full.
// Frames of later connections are counted.
type stuckListener struct {
	*StreamListener
	release chan struct{}

	mu    sync.Mutex
	stuck bool
	later int
}

func listenStuck(t *testing.T) *stuckListener {
	t.Helper()
	s := &stuckListener{release: make(chan struct{})}
	l, err := ListenStreams(StreamConfig{Addr: "127.0.0.1:0", Cluster: "c", ID: 1, Known: func(int) bool { return true },
		Deliver: func(from int, frame []byte) error {
			s.mu.Lock()
			first := !s.stuck
			s.stuck = true
			if !first {
				s.later++
			}
			s.mu.Unlock()
			if first {
				<-s.release
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	s.StreamListener = l
	return s
}

func (s *stuckListener) laterFrames() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.later
}

// fillUntilStuck sends big frames to peer 1 until its goroutine has been
// in one write for 100 ms: blocked, since the peer does not read.
func fillUntilStuck(t *testing.T, s *StreamSender) {
	t.Helper()
	s.mu.Lock()
	p := s.peers[1]
	s.mu.Unlock()
	frame := bytes.Repeat([]byte{7}, 1<<20)
	waitUntil(t, 20*time.Second, "a write blocked on a peer that does not read", func() bool {
		s.Send(1, frame)
		since := p.writing.Load()
		return since != 0 && time.Since(time.Unix(0, since)) > 100*time.Millisecond
	})
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A sender whose write is blocked on a peer that does not read closes at
// once: stopping closes the connection under the write.
func TestStreamSenderClosesWhileBlockedWriting(t *testing.T) {
	defer leaktest.Check(t)()
	l := listenStuck(t)
	defer l.Close()
	defer close(l.release)
	s := NewStreamSender(SenderConfig{ID: 0, Cluster: "c", Queue: 4, WriteTimeout: time.Minute})
	s.SetAddr(1, l.Addr())
	var once sync.Once
	defer once.Do(s.Close) // when the test fails before its own Close
	fillUntilStuck(t, s)
	closed := make(chan struct{})
	go func() { once.Do(s.Close); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close is still waiting for a write to a peer that does not read")
	}
}

// A write that outlasts WriteTimeout closes the stream; what is sent next
// goes on a new one.
func TestStreamSenderWriteTimeoutRedials(t *testing.T) {
	defer leaktest.Check(t)()
	l := listenStuck(t)
	defer l.Close()
	defer close(l.release)
	s := NewStreamSender(SenderConfig{ID: 0, Cluster: "c", Queue: 4, WriteTimeout: 200 * time.Millisecond, Logf: t.Logf})
	defer s.Close()
	s.SetAddr(1, l.Addr())
	fillUntilStuck(t, s)
	waitUntil(t, 10*time.Second, "frames on a new stream after the write timed out", func() bool {
		s.Send(1, []byte("after"))
		return l.laterFrames() > 0
	})
}

// Moving a peer whose write is blocked to another address stops the old
// stream's goroutine (leaktest) and delivers what follows at the new one.
func TestStreamSenderSetAddrWhileBlocked(t *testing.T) {
	defer leaktest.Check(t)()
	old := listenStuck(t)
	defer old.Close()
	defer close(old.release)
	var mu sync.Mutex
	var got []string
	l, err := ListenStreams(StreamConfig{Addr: "127.0.0.1:0", Cluster: "c", ID: 1, Known: func(int) bool { return true },
		Deliver: func(from int, frame []byte) error {
			mu.Lock()
			got = append(got, string(frame))
			mu.Unlock()
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := NewStreamSender(SenderConfig{ID: 0, Cluster: "c", Queue: 4, WriteTimeout: time.Minute})
	defer s.Close()
	s.SetAddr(1, old.Addr())
	fillUntilStuck(t, s)
	s.SetAddr(1, l.Addr())
	waitUntil(t, 10*time.Second, "frames at the new address", func() bool {
		s.Send(1, []byte("moved"))
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0
	})
	mu.Lock()
	defer mu.Unlock()
	for _, f := range got {
		if f != "moved" {
			t.Fatalf("the new address got %d bytes sent before the move", len(f))
		}
	}
}

// A frame longer than MaxFrame is refused at Send, instead of making the
// peer close the stream.
func TestStreamSenderRefusesOversizedFrames(t *testing.T) {
	defer leaktest.Check(t)()
	s := NewStreamSender(SenderConfig{ID: 0, Cluster: "c", MaxFrame: 10})
	defer s.Close()
	s.SetAddr(1, "127.0.0.1:1")
	if s.Send(1, make([]byte, 11)) {
		t.Fatal("a frame of 11 bytes was queued with MaxFrame 10")
	}
	if !s.Send(1, make([]byte, 10)) {
		t.Fatal("a frame of 10 bytes was refused with MaxFrame 10")
	}
}

// TestStreamRefusesAnotherGroupCount: a node started with another number
// of groups is refused at the hello, with the reason in the listener's
// log, and none of its frames is delivered (it would route keys to other
// groups); a node with the same figure is served.
func TestStreamRefusesAnotherGroupCount(t *testing.T) {
	defer leaktest.Check(t)()
	var logged logRecorder
	var mu sync.Mutex
	delivered := map[int]int{}
	l, err := ListenStreams(StreamConfig{Addr: "127.0.0.1:0", Cluster: "c", ID: 1, Groups: 4,
		Known: func(int) bool { return true }, Logf: logged.logf,
		Deliver: func(from int, frame []byte) error {
			mu.Lock()
			delivered[from]++
			mu.Unlock()
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, c := range []struct{ from, groups int }{{2, 8}, {3, 0}, {4, 4}} {
		s := NewStreamSender(SenderConfig{ID: c.from, Cluster: "c", Groups: c.groups})
		s.SetAddr(1, l.Addr())
		s.Send(1, []byte("frame"))
		if c.groups != 4 {
			want := fmt.Sprintf("node %d hosts %s, this node 4 groups", c.from, groupsWord(c.groups))
			waitUntil(t, 10*time.Second, "the refusal logged: "+want, func() bool {
				return strings.Contains(logged.text(), want)
			})
		} else {
			waitUntil(t, 10*time.Second, "the frame of a node of 4 groups delivered", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return delivered[c.from] == 1
			})
		}
		s.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	if delivered[2]+delivered[3] != 0 {
		t.Fatalf("frames of refused nodes delivered: %v", delivered)
	}
}

// A peer that reads steadily, however slowly, keeps its stream: the write
// deadline bounds a write without progress, not the drain of a queue that
// takes longer than WriteTimeout.
func TestStreamSenderSlowReaderKeepsItsStream(t *testing.T) {
	defer leaktest.Check(t)()
	var mu sync.Mutex
	delivered := 0
	l, err := ListenStreams(StreamConfig{Addr: "127.0.0.1:0", Cluster: "c", ID: 1, Known: func(int) bool { return true },
		Deliver: func(from int, frame []byte) error {
			time.Sleep(10 * time.Millisecond) // a slow reader
			mu.Lock()
			delivered++
			mu.Unlock()
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var logged logRecorder
	s := NewStreamSender(SenderConfig{ID: 0, Cluster: "c", Queue: 128, WriteTimeout: 300 * time.Millisecond, Logf: logged.logf})
	defer s.Close()
	s.SetAddr(1, l.Addr())
	// 120 frames of 256 KiB: about 1.2 s of reading (far more than the
	// kernel buffers hold), all drained by one run of the sender's loop.
	frame := bytes.Repeat([]byte{1}, 256<<10)
	for i := range 120 {
		if !s.Send(1, frame) {
			t.Fatalf("frame %d refused", i)
		}
	}
	waitUntil(t, 20*time.Second, "every frame delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return delivered == 120 || strings.Contains(logged.text(), "closed the stream")
	})
	if text := logged.text(); strings.Contains(text, "closed the stream") {
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("the stream to a slow but steady reader was closed (%d of 120 frames delivered):\n%s", delivered, text)
	}
}
