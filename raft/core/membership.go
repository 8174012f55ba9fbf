package core

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// ConfChangeType is one single-server membership change (thesis §4.1).
type ConfChangeType uint8

const (
	// AddLearner adds a non-voting member that receives the log; the leader
	// promotes it once it has caught up (thesis §4.2.1).
	AddLearner ConfChangeType = iota
	// PromoteLearner makes a learner a voter.
	PromoteLearner
	// RemoveServer removes a voter or a learner.
	RemoveServer
)

func (t ConfChangeType) String() string {
	return [...]string{"add-learner", "promote", "remove"}[t]
}

// ProposeConfChange appends a configuration entry for one change. Following
// thesis §4.1 the new configuration is used as soon as it is appended, and a
// change is refused while the previous one is uncommitted or before the
// leader has committed an entry of its term (the fix to single-server
// changes Ongaro posted to raft-dev in 2015).
func (c *Core) ProposeConfChange(t ConfChangeType, id int) (uint64, error) {
	if c.role != Leader {
		return 0, ErrNotLeader
	}
	if c.transferee != None {
		return 0, ErrTransferring
	}
	if !c.committedInTerm {
		return 0, ErrNotReady
	}
	if c.configIndex > c.log.committed {
		return 0, ErrConfigPending
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
	case t == PromoteLearner && !cfg.IsLearner(id):
		return cfg, fmt.Errorf("%w: node %d is not a learner", ErrBadMember, id)
	case t == PromoteLearner:
		next.Learners = slices.DeleteFunc(next.Learners, func(x int) bool { return x == id })
		next.Voters = append(next.Voters, id)
	case t == RemoveServer && !cfg.IsMember(id):
		return cfg, fmt.Errorf("%w: node %d is not a member", ErrBadMember, id)
	case t == RemoveServer && cfg.IsVoter(id) && len(cfg.Voters) == 1:
		return cfg, fmt.Errorf("%w: node %d is the last voter", ErrBadMember, id)
	case t == RemoveServer:
		del := func(x int) bool { return x == id }
		next.Voters = slices.DeleteFunc(next.Voters, del)
		next.Learners = slices.DeleteFunc(next.Learners, del)
	default:
		return cfg, fmt.Errorf("%w: unknown change %d", ErrBadMember, t)
	}
	slices.Sort(next.Voters)
	slices.Sort(next.Learners)
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
		if pr == nil || pr.match < pr.roundTarget {
			continue
		}
		if c.ticks-pr.roundStart > uint64(c.cfg.ElectionTicksMax) {
			// The round was too slow: start another from where we are now.
			pr.roundTarget, pr.roundStart = c.log.lastIndex(), c.ticks
			continue
		}
		if !c.committedInTerm || c.configIndex > c.log.committed || c.transferee != None {
			return // try again when the pending change commits
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

// EncodeConfiguration is the payload of a configuration entry.
func EncodeConfiguration(cfg Configuration) []byte {
	b := make([]byte, 0, 2+2*(len(cfg.Voters)+len(cfg.Learners)))
	b = binary.AppendUvarint(b, uint64(len(cfg.Voters)))
	for _, id := range cfg.Voters {
		b = binary.AppendUvarint(b, uint64(id))
	}
	b = binary.AppendUvarint(b, uint64(len(cfg.Learners)))
	for _, id := range cfg.Learners {
		b = binary.AppendUvarint(b, uint64(id))
	}
	return b
}

var errBadConfig = errors.New("malformed configuration")

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
	if cfg.Voters, err = readList(); err != nil {
		return cfg, err
	}
	if cfg.Learners, err = readList(); err != nil {
		return cfg, err
	}
	if len(b) != 0 {
		return cfg, errBadConfig
	}
	return cfg, nil
}
