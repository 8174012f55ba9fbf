package core

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ConfChangeType is one change of one server's membership (thesis §4.1).
type ConfChangeType uint8

const (
	// AddLearner adds a non-voting member that receives the log; the leader
	// promotes it once it has caught up (thesis §4.2.1).
	AddLearner ConfChangeType = iota
	// PromoteLearner makes a learner a voter.
	PromoteLearner
	// RemoveServer removes a voter or a learner.
	RemoveServer
	// AddVoter adds a server as a voter at once, without a learner's
	// catch-up: for joint changes (ProposeConfChanges), where a majority of
	// the new voters must then hold each new entry before it commits.
	AddVoter
	// AddStagedLearner adds a learner that the leader does not promote by
	// itself (Configuration.Staged): the first step of a change of several
	// members, whose second promotes the staged learners together.
	AddStagedLearner
)

func (t ConfChangeType) String() string {
	switch t {
	case AddLearner:
		return "add-learner"
	case PromoteLearner:
		return "promote"
	case RemoveServer:
		return "remove"
	case AddVoter:
		return "add-voter"
	case AddStagedLearner:
		return "add-staged-learner"
	}
	return fmt.Sprintf("ConfChangeType(%d)", uint8(t))
}

// ConfChange is one change within a membership change of several servers.
type ConfChange struct {
	Type ConfChangeType
	ID   int
}

func (cc ConfChange) String() string { return cc.Type.String() + " " + strconv.Itoa(cc.ID) }

// canChangeConfig says why the leader may not propose a configuration now,
// or nil. Following thesis §4.1 a change is refused while the previous one
// is uncommitted or before the leader has committed an entry of its term
// (the fix to single-server changes Ongaro posted to raft-dev in 2015), and
// while a joint configuration has not been left yet.
func (c *Core) canChangeConfig() error {
	switch {
	case c.role != Leader:
		return ErrNotLeader
	case c.transferee != None:
		return ErrTransferring
	case !c.committedInTerm:
		return ErrNotReady
	case c.configIndex > c.log.committed, c.config.IsJoint():
		return ErrConfigPending
	}
	return nil
}

// ProposeConfChange appends a configuration entry for one change. Following
// thesis §4.1 the new configuration is used as soon as it is appended.
func (c *Core) ProposeConfChange(t ConfChangeType, id int) (uint64, error) {
	if err := c.canChangeConfig(); err != nil {
		return 0, err
	}
	next, err := c.config.apply(t, id)
	if err != nil {
		return 0, err
	}
	if c.tracing() {
		e := c.ev(EventConfChange)
		e.Detail, e.Peer, e.Groups = t.String(), id, groupsOf(next)
		c.emit(e)
	}
	return c.appendEntry(EntryConfig, EncodeConfiguration(next)), nil
}

// ProposeConfChanges appends one configuration entry for several changes
// at once (replacing a server, say: add-voter 3, remove 0). When they
// change the set of voters by more than one server, the entry is the joint
// configuration C_old,new of Raft paper §6: from then on every decision
// needs a majority of the old voters and one of the new, and once it is
// committed the leader appends C_new by itself (maybeLeaveJoint). Changes
// of at most one voter need no joint step (thesis §4.1: any two majorities
// of configurations one server apart overlap) and make a simple entry.
// Additions apply before removals, so that [remove 0, add-voter 1] on the
// single voter 0 is a replacement, not a removal of the last voter.
func (c *Core) ProposeConfChanges(changes []ConfChange) (uint64, error) {
	if err := c.canChangeConfig(); err != nil {
		return 0, err
	}
	switch len(changes) {
	case 0:
		return 0, fmt.Errorf("%w: no change given", ErrBadMember)
	case 1:
		return c.ProposeConfChange(changes[0].Type, changes[0].ID)
	}
	ordered := slices.Clone(changes)
	slices.SortStableFunc(ordered, func(a, b ConfChange) int {
		return cmpBool(a.Type == RemoveServer, b.Type == RemoveServer)
	})
	next := c.config.Clone()
	named := make(map[int]bool, len(changes))
	for _, ch := range ordered {
		if named[ch.ID] {
			return 0, fmt.Errorf("%w: node %d is named twice", ErrBadMember, ch.ID)
		}
		named[ch.ID] = true
		var err error
		if next, err = next.apply(ch.Type, ch.ID); err != nil {
			return 0, err
		}
	}
	if len(next.Voters) == 0 {
		return 0, fmt.Errorf("%w: no voter would remain", ErrBadMember)
	}
	if votersApart(c.config.Voters, next.Voters) > 1 {
		next.Outgoing = slices.Clone(c.config.Voters)
	}
	if c.tracing() {
		e := c.ev(EventConfChange)
		e.Peer, e.Groups = None, groupsOf(next)
		e.Detail = changesText(changes)
		c.emit(e)
	}
	return c.appendEntry(EntryConfig, EncodeConfiguration(next)), nil
}

// maybeLeaveJoint appends C_new once the joint configuration C_old,new is
// committed (Raft paper §6: "Once C_old,new has been committed ... it is
// now safe for the leader to create a log entry describing C_new"). Any
// leader does it, so a joint configuration whose leader failed is left by
// the next one once it has committed an entry of its term.
func (c *Core) maybeLeaveJoint() {
	if c.role != Leader || !c.config.IsJoint() || !c.committedInTerm ||
		c.configIndex > c.log.committed || c.transferee != None {
		return
	}
	next := c.config.Clone()
	next.Outgoing = nil
	if c.tracing() {
		e := c.ev(EventConfChange)
		e.Peer, e.Groups, e.Detail = None, groupsOf(next), "leave joint"
		c.emit(e)
	}
	c.appendEntry(EntryConfig, EncodeConfiguration(next))
}

// quorumConfig is the configuration whose voter sets the decisions count.
func (c *Core) quorumConfig() Configuration {
	if c.cfg.broken.newVotersOnly && c.config.IsJoint() {
		q := c.config
		q.Outgoing = nil
		return q
	}
	if c.cfg.broken.stagedVote && len(c.config.Staged) > 0 {
		q := c.config.Clone()
		q.Voters = append(q.Voters, q.Staged...)
		slices.Sort(q.Voters)
		return q
	}
	return c.config
}

// votersApart is the number of servers in one voter set and not the other.
func votersApart(a, b []int) int {
	n := 0
	for _, id := range a {
		if !slices.Contains(b, id) {
			n++
		}
	}
	for _, id := range b {
		if !slices.Contains(a, id) {
			n++
		}
	}
	return n
}

func changesText(changes []ConfChange) string {
	parts := make([]string, len(changes))
	for i, ch := range changes {
		parts[i] = ch.String()
	}
	return strings.Join(parts, ", ")
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// apply returns the configuration after one change, or why it is invalid.
func (cfg Configuration) apply(t ConfChangeType, id int) (Configuration, error) {
	next := cfg.Clone()
	switch {
	case id < 0:
		return cfg, fmt.Errorf("%w: node id %d is negative", ErrBadMember, id)
	case t == AddLearner && cfg.IsMember(id):
		return cfg, fmt.Errorf("%w: node %d is already a member", ErrBadMember, id)
	case t == AddLearner:
		next.Learners = append(next.Learners, id)
	case t == AddStagedLearner && cfg.IsMember(id):
		return cfg, fmt.Errorf("%w: node %d is already a member", ErrBadMember, id)
	case t == AddStagedLearner:
		next.Learners = append(next.Learners, id)
		next.Staged = append(next.Staged, id)
	case t == AddVoter && cfg.IsMember(id):
		return cfg, fmt.Errorf("%w: node %d is already a member", ErrBadMember, id)
	case t == AddVoter:
		next.Voters = append(next.Voters, id)
	case t == PromoteLearner && !cfg.IsLearner(id):
		return cfg, fmt.Errorf("%w: node %d is not a learner", ErrBadMember, id)
	case t == PromoteLearner:
		next.Learners = slices.DeleteFunc(next.Learners, func(x int) bool { return x == id })
		next.Staged = slices.DeleteFunc(next.Staged, func(x int) bool { return x == id })
		next.Voters = append(next.Voters, id)
	case t == RemoveServer && !cfg.IsMember(id):
		return cfg, fmt.Errorf("%w: node %d is not a member", ErrBadMember, id)
	case t == RemoveServer && cfg.IsVoter(id) && len(cfg.Voters) == 1:
		return cfg, fmt.Errorf("%w: node %d is the last voter", ErrBadMember, id)
	case t == RemoveServer:
		del := func(x int) bool { return x == id }
		next.Voters = slices.DeleteFunc(next.Voters, del)
		next.Learners = slices.DeleteFunc(next.Learners, del)
		next.Staged = slices.DeleteFunc(next.Staged, del)
	default:
		return cfg, fmt.Errorf("%w: unknown change %d", ErrBadMember, t)
	}
	slices.Sort(next.Voters)
	slices.Sort(next.Learners)
	slices.Sort(next.Staged)
	if len(next.Staged) == 0 {
		next.Staged = nil // as decoded: configurations compare equal
	}
	return next, nil
}

// applyConfigEntry switches to the configuration in a just-appended entry.
func (c *Core) applyConfigEntry(index uint64, data []byte) {
	cfg, err := DecodeConfiguration(data)
	if err != nil {
		c.violated(fmt.Sprintf("undecodable configuration at %d: %v", index, err))
		return
	}
	c.setConfig(cfg, index)
}

func (c *Core) setConfig(cfg Configuration, index uint64) {
	if c.tracing() {
		e := c.ev(EventConfig)
		e.Index, e.Groups = index, groupsOf(cfg)
		c.emit(e)
	}
	c.config, c.configIndex = cfg, index
	if c.role != Leader {
		return
	}
	for id := range c.prs {
		if !cfg.IsMember(id) {
			delete(c.prs, id)
			c.peerIDs = nil
		}
	}
	for _, id := range cfg.Members() {
		if _, ok := c.prs[id]; !ok && id != c.id {
			c.addProgress(id)
			// Send the new member the configuration entry at once rather
			// than an empty append at the next heartbeat: it learns it is a
			// member, or its rejection starts the catch-up, a heartbeat sooner.
			if pr := c.prs[id]; index > c.log.snapIndex && index <= c.log.lastIndex() {
				pr.next = index
			}
		}
	}
	if c.transferee != None && !cfg.IsVoter(c.transferee) {
		c.transferee = None
	}
}

// configFromLog finds the latest configuration: the last configuration entry
// in the log, or else the snapshot's.
func (c *Core) configFromLog() (Configuration, uint64) {
	for i := c.log.lastIndex(); i > c.log.snapIndex; i-- {
		if e := c.log.entry(i); e.Type == EntryConfig {
			if cfg, err := DecodeConfiguration(e.Data); err == nil {
				return cfg, i
			}
		}
	}
	if c.snap.latest != nil {
		return c.snap.latest.Config.Clone(), c.log.snapIndex
	}
	return Configuration{}, 0
}

// configAt returns the configuration in force at index (for snapshot metadata).
func (c *Core) configAt(index uint64) Configuration {
	for i := min(index, c.log.lastIndex()); i > c.log.snapIndex; i-- {
		if e := c.log.entry(i); e.Type == EntryConfig {
			if cfg, err := DecodeConfiguration(e.Data); err == nil {
				return cfg
			}
		}
	}
	if c.snap.latest != nil {
		return c.snap.latest.Config.Clone()
	}
	return Configuration{}
}

// maybePromoteLearner promotes a learner that caught up with the leader
// within an election timeout (thesis §4.2.1: replication in rounds; the
// last round must be shorter than an election timeout).
func (c *Core) maybePromoteLearner() {
	if c.role != Leader || len(c.config.Learners) == 0 {
		return
	}
	for _, id := range c.config.Learners {
		pr := c.prs[id]
		if pr != nil && c.config.IsStaged(id) {
			c.stagedRound(pr)
			continue
		}
		if pr == nil || pr.match < pr.roundTarget {
			continue
		}
		if c.ticks-pr.roundStart > uint64(c.cfg.ElectionTicksMax) {
			// The round was too slow: start another from where we are now.
			pr.roundTarget, pr.roundStart = c.log.lastIndex(), c.ticks
			continue
		}
		if c.canChangeConfig() != nil {
			continue // try again when the pending change commits (staged learners are still seen)
		}
		if c.tracing() {
			e := c.ev(EventPromote)
			e.Peer, e.Index, e.Count = id, pr.match, int(c.ticks-pr.roundStart)
			c.emit(e)
		}
		if _, err := c.ProposeConfChange(PromoteLearner, id); err == nil {
			return // one change at a time
		}
	}
}

// stagedRound keeps a staged learner's catch-up rounds going: its change
// promotes it, with the others it stages, so the leader only judges it
// ready (Summary.Ready) while it finishes each round within an election
// timeout, and not once a round runs out (it fell behind, or went away).
func (c *Core) stagedRound(pr *progress) {
	late := c.ticks-pr.roundStart > uint64(c.cfg.ElectionTicksMax)
	switch {
	case pr.match >= pr.roundTarget && !late:
		pr.ready = true
	case late:
		pr.ready = false
	default:
		return // the round goes on
	}
	pr.roundTarget, pr.roundStart = c.log.lastIndex(), c.ticks
}

// stagedReady reports whether a staged learner may be promoted now: its
// last round finished in time, and it answered within an election timeout
// (an idle log's rounds finish without it).
func (c *Core) stagedReady(pr *progress) bool {
	return pr != nil && pr.ready && c.ticks-pr.heardAt <= uint64(c.cfg.ElectionTicksMax)
}

// onFollowerCaughtUp runs when a follower's matchIndex advanced.
func (c *Core) onFollowerCaughtUp(id int, pr *progress) {
	if id == c.transferee && pr.match == c.log.lastIndex() {
		c.sendTimeoutNow(id)
	}
	if c.config.IsLearner(id) {
		c.maybePromoteLearner()
	}
}

// TransferLeadership hands leadership to target (thesis §3.10): the leader
// stops taking proposals, brings target up to date, then sends TimeoutNow.
// If target has not taken over within an election timeout, the leader
// resumes.
func (c *Core) TransferLeadership(target int) error {
	if c.role != Leader {
		return ErrNotLeader
	}
	if target == c.id || !c.config.IsVoter(target) {
		return fmt.Errorf("%w: node %d is not another voter", ErrBadTransfer, target)
	}
	if c.transferee != None {
		return ErrTransferring
	}
	c.transferee, c.transferElapsed = target, 0
	if c.tracing() {
		e := c.ev(EventTransfer)
		e.Peer = target
		c.emit(e)
	}
	if c.prs[target].match == c.log.lastIndex() {
		c.sendTimeoutNow(target)
	} else {
		c.sendAppend(target, false)
	}
	return nil
}

func (c *Core) sendTimeoutNow(to int) {
	if c.tracing() {
		e := c.ev(EventTimeoutNowSend)
		e.Peer = to
		c.emit(e)
	}
	c.send(Message{Type: MsgTimeoutNow, To: to})
}

// EncodeConfiguration is the payload of a configuration entry: the voters,
// the learners and, in a joint configuration only, the outgoing voters (so
// that entries written before joint consensus existed decode alike).
func EncodeConfiguration(cfg Configuration) []byte {
	b := make([]byte, 0, 6+2*(len(cfg.Voters)+len(cfg.Learners)+len(cfg.Outgoing)+len(cfg.Staged)))
	lists := [][]int{cfg.Voters, cfg.Learners}
	switch {
	case len(cfg.Staged) > 0:
		// The second form: a mark, then all four lists. The first form
		// stays for configurations without staged learners, so that logs
		// written before read the same, and write the same bytes.
		b = append(b, stagedMark...)
		lists = append(lists, cfg.Outgoing, cfg.Staged)
	case cfg.IsJoint():
		lists = append(lists, cfg.Outgoing)
	}
	for _, ids := range lists {
		b = binary.AppendUvarint(b, uint64(len(ids)))
		for _, id := range ids {
			b = binary.AppendUvarint(b, uint64(id))
		}
	}
	return b
}

var errBadConfig = errors.New("malformed configuration")

// stagedMark opens the second form of an encoded configuration: the
// uvarint 127 written in two bytes, which the first form (minimal
// uvarints, a count of voters first) never starts with.
var stagedMark = []byte{0xFF, 0x00}

// DecodeConfiguration parses EncodeConfiguration's output.
func DecodeConfiguration(b []byte) (Configuration, error) {
	var cfg Configuration
	readList := func() ([]int, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)) {
			return nil, errBadConfig
		}
		b = b[k:]
		ids := make([]int, 0, n)
		for range n {
			id, k := binary.Uvarint(b)
			if k <= 0 || id > 1<<31 {
				return nil, errBadConfig
			}
			b = b[k:]
			ids = append(ids, int(id))
		}
		return ids, nil
	}
	var err error
	staged := len(b) >= len(stagedMark) && b[0] == stagedMark[0] && b[1] == stagedMark[1]
	if staged {
		b = b[len(stagedMark):]
	}
	if cfg.Voters, err = readList(); err != nil {
		return cfg, err
	}
	if cfg.Learners, err = readList(); err != nil {
		return cfg, err
	}
	if staged {
		if cfg.Outgoing, err = readList(); err != nil {
			return cfg, err
		}
		if cfg.Staged, err = readList(); err != nil {
			return cfg, err
		}
		if len(cfg.Outgoing) == 0 {
			cfg.Outgoing = nil
		}
		if len(cfg.Staged) == 0 || len(b) != 0 || !cfg.StagedAreLearners() {
			return cfg, errBadConfig // the second form has staged learners, which are learners
		}
		return cfg, nil
	}
	if len(b) > 0 {
		if cfg.Outgoing, err = readList(); err != nil {
			return cfg, err
		}
		if len(cfg.Outgoing) == 0 {
			return cfg, errBadConfig // a joint configuration has outgoing voters
		}
	}
	if len(b) != 0 {
		return cfg, errBadConfig
	}
	return cfg, nil
}
