package web

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/fortytw2/leaktest"
)

type fakeBackend struct {
	mu    sync.Mutex
	lines []string
}

func (f *fakeBackend) Exec(line string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lines = append(f.lines, line)
	return "ran " + line + "\n"
}

func (f *fakeBackend) State(int) State {
	return State{Sim: true, Time: 1.5, Cluster: true, Nodes: []Node{{ID: 0, Role: "leader"}}}
}

func TestLoopbackOnly(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:8080": true, "localhost:0": true, "[::1]:9000": true, "127.0.0.2:1": true,
		"0.0.0.0:8080": false, ":8080": false, "192.168.1.4:80": false, "example.com:80": false, "8080": false,
	} {
		if err := CheckLoopback(addr); (err == nil) != ok {
			t.Errorf("CheckLoopback(%q) = %v", addr, err)
		}
	}
	if _, err := Serve("0.0.0.0:0", &fakeBackend{}); err == nil || !strings.Contains(err.Error(), "loopback only") {
		t.Errorf("Serve on 0.0.0.0: %v", err)
	}
}

func TestPageStateAndExec(t *testing.T) {
	defer leaktest.Check(t)()
	b := &fakeBackend{}
	s, err := Serve("127.0.0.1:0", b)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(path string) (int, string) {
		resp, err := client.Get(s.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	post := func(body string, page bool) (int, string) {
		req, _ := http.NewRequest("POST", s.URL()+"exec", strings.NewReader(body))
		if page {
			req.Header.Set("X-Raft-Page", "1")
			req.Header.Set("Origin", "http://"+s.Addr())
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	if code, body := get(""); code != 200 || !strings.Contains(body, "<title>raft-consensus") || strings.Contains(body, "http://") && !strings.Contains(body, "http://www.w3.org/2000/svg") {
		t.Fatalf("the page: %d, or it loads something from elsewhere", code)
	}
	if code, body := get("state"); code != 200 || !strings.Contains(body, `"role":"leader"`) || !strings.Contains(body, `"time":1.5`) {
		t.Fatalf("state: %d %s", code, body)
	}
	if code, body := post("crash 1", true); code != 200 || body != "ran crash 1\n" {
		t.Fatalf("exec: %d %q", code, body)
	}
	if code, _ := post("crash 2", false); code != http.StatusForbidden {
		t.Fatalf("exec without the page's header: %d", code)
	}
	// DNS rebinding: another name for 127.0.0.1, or another origin.
	rebound, _ := http.NewRequest("POST", s.URL()+"exec", strings.NewReader("crash 0"))
	rebound.Host = "evil.example:80"
	rebound.Header.Set("X-Raft-Page", "1")
	rebound.Header.Set("Origin", "http://evil.example:80")
	if resp, err := client.Do(rebound); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a request for another host name: %v %v", resp, err)
	}
	foreign, _ := http.NewRequest("POST", s.URL()+"exec", strings.NewReader("crash 0"))
	foreign.Header.Set("X-Raft-Page", "1")
	foreign.Header.Set("Origin", "http://evil.example")
	if resp, err := client.Do(foreign); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("an action from another origin: %v %v", resp, err)
	}
	if code, _ := post("set x 1\ncrash 0", true); code != http.StatusBadRequest {
		t.Fatalf("two lines at once: %d", code)
	}
	if code, _ := post(strings.Repeat("x", maxExecBytes+1), true); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("an oversized line: %d", code)
	}
	if code, _ := get("nothing"); code != http.StatusNotFound {
		t.Fatalf("an unknown path: %d", code)
	}
	if len(b.lines) != 1 || b.lines[0] != "crash 1" {
		t.Fatalf("the backend ran %q", b.lines)
	}
}
