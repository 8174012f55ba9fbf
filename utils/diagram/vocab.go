package diagram

import (
	"regexp"
	"strconv"
	"strings"
)

// The message vocabulary of utils/TRACE.md. Each pattern is anchored so that
// a message is either fully understood or left as free text: a half-parsed
// message would draw something the trace did not say.
var (
	reTerm        = regexp.MustCompile(`^term (\d+) → (\d+)$`)
	reRole        = regexp.MustCompile(`^(\S+) → (\S+) in term (\d+)$`)
	reLeader      = regexp.MustCompile(`^leader is (\S+) in term (\d+)$`)
	reWon         = regexp.MustCompile(`^won the election for term (\d+)$`)
	reTimeout     = regexp.MustCompile(`^election timeout after \d+ ticks in term (\d+)$`)
	reStart       = regexp.MustCompile(`^starting (election|pre-vote) for term (\d+)(?: \(.*\))?$`)
	rePreVoteWon  = regexp.MustCompile(`^pre-vote won with \d+ of \d+$`)
	reLost        = regexp.MustCompile(`^election lost in term (\d+)(?: \(.*\))?$`)
	reCheckQuorum = regexp.MustCompile(`^check quorum failed: stepping down in term (\d+)$`)
	reVote        = regexp.MustCompile(`^(granted|refused) (vote|pre-vote) to (\S+) for term (\d+)(?: \(.*\))?$`)
	reRPC         = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9_]*) (\S+?)→(\S+)(?: (.*))?$`)
	reAppended    = regexp.MustCompile(`^appended entries (\d+)\.\.(\d+) from (\S+)$`)
	reTruncate    = regexp.MustCompile(`^truncating log from (\d+)(?: \(.*\))?$`)
	reRejected    = regexp.MustCompile(`^rejected AppendEntries from (\S+): `)
	reCommit      = regexp.MustCompile(`^commit index (\d+) → (\d+)$`)
	reApplied     = regexp.MustCompile(`^applied (\d+)(?:\.\.(\d+))?$`)
	reConfig      = regexp.MustCompile(`^configuration at (\d+): `)
	reSnapshot    = regexp.MustCompile(`^snapshot through (\d+)/(\d+)`)
	reInstalled   = regexp.MustCompile(`^installed snapshot through (\d+)/(\d+) from (\S+)`)
	reTransfer    = regexp.MustCompile(`^transferring leadership to (\S+)$`)
	reTimeoutNow  = regexp.MustCompile(`^TimeoutNow from (\S+): `)
)

// interpret fills in Kind and the typed fields of e from e.Msg. It never
// fails: what it does not recognise stays KindOther.
func interpret(e *Event) {
	e.Kind = KindOther
	e.Match = -1
	msg := e.Msg
	switch {
	case strings.HasPrefix(msg, "SAFETY:"):
		e.Kind = KindSafety
		return
	case strings.HasPrefix(msg, "fault:"):
		e.Kind = KindFault
		e.Fault = parseFault(strings.TrimSpace(msg[len("fault:"):]))
		return
	case strings.HasPrefix(msg, "client "):
		e.Kind = KindClient
		return
	case strings.HasPrefix(msg, "send "), strings.HasPrefix(msg, "recv "):
		if r := parseRPC(msg[5:]); r != nil {
			e.Kind = KindSend
			if msg[0] == 'r' {
				e.Kind = KindRecv
			}
			e.RPC = r
			e.Term, e.HasTerm = r.Term, r.HasTerm
			return
		}
	}
	if m := reTerm.FindStringSubmatch(msg); m != nil {
		if from, ok1 := num(m[1]); ok1 {
			if to, ok2 := num(m[2]); ok2 {
				e.Kind, e.PrevTerm = KindTerm, from
				e.setTerm(to)
			}
		}
		return
	}
	if m := reRole.FindStringSubmatch(msg); m != nil {
		from, ok1 := parseRole(m[1])
		to, ok2 := parseRole(m[2])
		t, ok3 := num(m[3])
		if ok1 && ok2 && ok3 {
			e.Kind, e.PrevRole, e.Role = KindRole, from, to
			e.setTerm(t)
		}
		return
	}
	if m := reLeader.FindStringSubmatch(msg); m != nil {
		if t, ok := num(m[2]); ok {
			e.Kind, e.Peer = KindLeader, m[1]
			e.setTerm(t)
		}
		return
	}
	if m := reVote.FindStringSubmatch(msg); m != nil {
		if t, ok := num(m[4]); ok {
			e.Kind, e.Granted, e.PreVote, e.Peer = KindVote, m[1] == "granted", m[2] == "pre-vote", m[3]
			e.setTerm(t)
		}
		return
	}
	for _, re := range []*regexp.Regexp{reWon, reTimeout, reLost, reCheckQuorum} {
		if m := re.FindStringSubmatch(msg); m != nil {
			if t, ok := num(m[1]); ok {
				e.Kind = KindElection
				e.setTerm(t)
			}
			return
		}
	}
	if m := reStart.FindStringSubmatch(msg); m != nil {
		if t, ok := num(m[2]); ok {
			e.Kind, e.PreVote = KindElection, m[1] == "pre-vote"
			e.setTerm(t)
		}
		return
	}
	if rePreVoteWon.MatchString(msg) {
		e.Kind, e.PreVote = KindElection, true
		return
	}
	if m := reCommit.FindStringSubmatch(msg); m != nil {
		if lo, ok1 := num(m[1]); ok1 {
			if hi, ok2 := num(m[2]); ok2 {
				e.Kind, e.Lo, e.Hi = KindCommit, lo, hi
			}
		}
		return
	}
	if m := reAppended.FindStringSubmatch(msg); m != nil {
		e.Kind, e.Peer = KindLog, m[3]
		e.Lo, _ = num(m[1])
		e.Hi, _ = num(m[2])
		return
	}
	if m := reApplied.FindStringSubmatch(msg); m != nil {
		e.Kind = KindLog
		e.Lo, _ = num(m[1])
		e.Hi = e.Lo
		if m[2] != "" {
			e.Hi, _ = num(m[2])
		}
		return
	}
	if m := reRejected.FindStringSubmatch(msg); m != nil {
		e.Kind, e.Peer = KindLog, m[1]
		return
	}
	if reTruncate.MatchString(msg) || reConfig.MatchString(msg) {
		e.Kind = KindLog
		return
	}
	if m := reInstalled.FindStringSubmatch(msg); m != nil {
		e.Kind, e.Peer = KindSnapshot, m[3]
		return
	}
	if reSnapshot.MatchString(msg) {
		e.Kind = KindSnapshot
		return
	}
	if m := reTransfer.FindStringSubmatch(msg); m != nil {
		e.Kind, e.Peer = KindTransfer, m[1]
		return
	}
	if m := reTimeoutNow.FindStringSubmatch(msg); m != nil {
		e.Kind, e.Peer = KindTransfer, m[1]
		return
	}
}

func (e *Event) setTerm(t uint64) { e.Term, e.HasTerm = t, true }

func num(s string) (uint64, bool) {
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// parseRPC reads `Name A→B key=value … flag …`. Endpoints must be valid node
// ids, since they pick the lanes an arrow is drawn between.
func parseRPC(s string) *RPC {
	m := reRPC.FindStringSubmatch(s)
	if m == nil || !validNode(m[2]) || !validNode(m[3]) || m[2] == SimNode || m[3] == SimNode {
		return nil
	}
	r := &RPC{Name: m[1], From: m[2], To: m[3], Text: s}
	r.PreVote = r.Name == "PreVote"
	for _, f := range strings.Fields(m[4]) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "term":
			r.Term, r.HasTerm = num(v)
		case "entries":
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				r.Entries, r.HasCount = n, true
			}
		case "granted":
			r.Granted = v == "true"
		case "prevote":
			r.PreVote = r.PreVote || v == "true"
		case "reject":
			r.Reject = true
		}
	}
	return r
}

// parseFault reads what follows `fault:`.
func parseFault(s string) *Fault {
	what, arg, _ := strings.Cut(s, " ")
	f := &Fault{What: what, Arg: strings.TrimSpace(arg)}
	switch what {
	case "drop":
		f.Arg = strings.TrimSpace(strings.TrimPrefix(f.Arg, "rate"))
	case "partition":
		for _, g := range strings.Split(f.Arg, "|") {
			var group []string
			for _, n := range strings.Fields(g) {
				if validNode(n) && n != SimNode {
					group = append(group, n)
				}
			}
			if len(group) > 0 {
				f.Groups = append(f.Groups, group)
			}
		}
	}
	return f
}
