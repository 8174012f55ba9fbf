// Package web serves the REPL's live page: the cluster as it runs (nodes
// with role, term and election timer, messages in flight, every node's log,
// the event timeline with a scrubber) and buttons that act on it. The page
// is one self-contained HTML file (no external resources); every action on
// it is a REPL command line, run by the REPL as if typed and echoed there.
// The server listens on loopback only: the page can crash nodes.
package web

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Backend is what the page needs from the REPL.
type Backend interface {
	// Exec runs one command line as if typed (the REPL echoes it) and
	// returns what it printed.
	Exec(line string) string
	// State is the cluster as it stands: with many groups, as group
	// group has it (-1: the first).
	State(group int) State
}

// State is what the page shows; times are seconds of the session.
type State struct {
	Sim     bool    `json:"sim"`
	Seed    int64   `json:"seed,omitempty"`
	Time    float64 `json:"time"`
	Playing bool    `json:"playing"`
	Speed   float64 `json:"speed"`
	Cluster bool    `json:"cluster"` // a cluster runs
	// Groups is the number of Raft groups of a cluster of many (0 for
	// one); Group, the one whose nodes, logs and events are shown.
	Groups    int      `json:"groups,omitempty"`
	Group     int      `json:"group"`
	Nodes     []Node   `json:"nodes"`
	Partition string   `json:"partition,omitempty"`
	Cuts      [][2]int `json:"cuts,omitempty"`
	Flights   []Flight `json:"flights"`
	Events    []Event  `json:"events"`
	Note      string   `json:"note,omitempty"` // what the timeline leaves out
}

// Node is one server.
type Node struct {
	ID            int        `json:"id"`
	Alive         bool       `json:"alive"`
	Connected     bool       `json:"connected"`
	Role          string     `json:"role"`
	Term          uint64     `json:"term"`
	Leader        int        `json:"leader"`
	Commit        uint64     `json:"commit"`
	Applied       uint64     `json:"applied"`
	SnapshotIndex uint64     `json:"snapshot"`
	LastIndex     uint64     `json:"last"`
	Member        string     `json:"member"`
	Timer         *Timer     `json:"timer,omitempty"` // in virtual time only
	Log           []LogEntry `json:"log"`             // the latest entries
}

// Timer is a node's election timer, in ticks of TickMS milliseconds.
type Timer struct {
	Elapsed int     `json:"elapsed"`
	Timeout int     `json:"timeout"`
	TickMS  float64 `json:"tickMs"`
}

// LogEntry is one entry of a node's log.
type LogEntry struct {
	Index uint64 `json:"i"`
	Term  uint64 `json:"t"`
	Type  string `json:"type"` // command, no-op, config
	Label string `json:"label"`
}

// Flight is a message on the wire (virtual time only).
type Flight struct {
	ID      uint64  `json:"id"`
	From    int     `json:"from"`
	To      int     `json:"to"`
	Type    string  `json:"type"`
	Entries int     `json:"entries"`
	Sent    float64 `json:"sent"`
	Arrive  float64 `json:"arrive"`
	Lost    bool    `json:"lost"`
}

// Event is one event of the timeline.
type Event struct {
	Time float64 `json:"time"`
	Node string  `json:"node"`
	Kind string  `json:"kind"`
	Text string  `json:"text"`
}

//go:embed page.html
var page []byte

// Server is the page's HTTP server.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// CheckLoopback refuses an address that is not on loopback: the page can
// crash nodes, so it must not be reachable from another machine.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port (e.g. 127.0.0.1:8080): %v", addr, err)
	}
	if loopbackName(host) {
		return nil
	}
	return fmt.Errorf("the page serves on loopback only (127.0.0.1, ::1 or localhost), not %q: it can crash nodes", host)
}

// loopbackName: localhost, or a loopback address.
func loopbackName(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// maxExecBytes bounds one command line posted by the page.
const maxExecBytes = 4096

// Serve listens on addr (loopback only) and serves the page and its API.
func Serve(addr string, b Backend) (*Server, error) {
	if err := CheckLoopback(addr); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	// Loopback is not enough: a site whose name the attacker points at
	// 127.0.0.1 (DNS rebinding) would be same-origin. So the Host must be
	// a loopback name, and an action's Origin this page's own.
	guard := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			host, _, err := net.SplitHostPort(r.Host)
			if err != nil {
				host = r.Host
			}
			if !loopbackName(host) {
				http.Error(w, "error: this page answers on its loopback address only", http.StatusForbidden)
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /{$}", guard(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
		w.Write(page)
	}))
	mux.HandleFunc("GET /state", guard(func(w http.ResponseWriter, r *http.Request) {
		group := -1
		if q := r.URL.Query().Get("group"); q != "" {
			g, err := strconv.Atoi(q)
			if err != nil || g < 0 {
				http.Error(w, "error: group must be a number from 0", http.StatusBadRequest)
				return
			}
			group = g
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(b.State(group))
	}))
	mux.HandleFunc("POST /exec", guard(func(w http.ResponseWriter, r *http.Request) {
		// Only the page itself may act: a form on another site cannot set
		// this header without a CORS preflight, which this server refuses;
		// and the browser says where the request comes from.
		if r.Header.Get("X-Raft-Page") != "1" || r.Header.Get("Origin") != "http://"+r.Host {
			http.Error(w, "error: actions come from the page only", http.StatusForbidden)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxExecBytes+1))
		if err != nil || len(body) > maxExecBytes {
			http.Error(w, fmt.Sprintf("error: a command line is at most %d bytes", maxExecBytes), http.StatusRequestEntityTooLarge)
			return
		}
		line := strings.TrimSpace(string(body))
		if strings.ContainsAny(line, "\r\n") {
			http.Error(w, "error: one command line at a time", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, b.Exec(line))
	}))
	s := &Server{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}
	go s.srv.Serve(ln)
	return s, nil
}

// Addr is where the server listens.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the page's address.
func (s *Server) URL() string { return "http://" + s.Addr() + "/" }

// Close stops the server.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return s.srv.Close()
	}
	return err
}
