package core

// replicationState is how the leader currently feeds one follower, after
// etcd-io/raft's progress tracking.
type replicationState uint8

const (
	// probing: the leader does not know where the follower's log matches
	// its own; it sends one AppendEntries at a time and backs nextIndex off
	// on each rejection (§5.3).
	probing replicationState = iota
	// replicating: the logs match up to matchIndex; the leader streams
	// entries optimistically, advancing nextIndex as it sends, with at most
	// maxInflight messages unacknowledged.
	replicating
	// snapshotting: the entries the follower needs were compacted away; the
	// leader sends the snapshot (Figure 13) in chunks.
	snapshotting
)

func (s replicationState) String() string {
	return [...]string{"probe", "replicate", "snapshot"}[s]
}

// progress is the leader's view of one peer (Figure 2 nextIndex[] and
// matchIndex[], plus flow control and liveness).
type progress struct {
	match, next uint64
	state       replicationState

	// inflight holds the last index of each unacknowledged AppendEntries
	// sent while replicating, oldest first.
	inflight []uint64
	// probeSent pauses a probing peer until it answers or a heartbeat is due.
	probeSent bool

	// sentCommit is the commit index the peer was last told.
	sentCommit uint64

	// recentActive says the peer answered since the last CheckQuorum check.
	recentActive bool
	// readRound is the highest ReadIndex round the peer has acknowledged.
	readRound uint64

	// catch-up round of a learner (thesis §4.2.1): it is promoted when it
	// reaches roundTarget within an election timeout of roundStart.
	roundTarget uint64
	roundStart  uint64
	// ready: a staged learner whose last catch-up round finished in time
	// (Summary.Ready); heardAt, the tick it last answered.
	ready   bool
	heardAt uint64

	// snapshot transfer in progress: the index it covers and the bytes the
	// follower has acknowledged.
	snapIndex  uint64
	snapOffset uint64
	// snapSentAt is the tick a chunk was last sent, to resend a lost one.
	snapSentAt uint64
}

func (p *progress) becomeProbing() {
	if p.state == snapshotting {
		// The follower has everything up to the snapshot (or will ask again).
		p.next = max(p.match+1, p.snapIndex+1)
	} else {
		p.next = p.match + 1
	}
	p.state = probing
	p.inflight = p.inflight[:0]
	p.probeSent = false
	p.snapIndex, p.snapOffset = 0, 0
}

func (p *progress) becomeReplicating() {
	p.state = replicating
	p.next = p.match + 1
	p.inflight = p.inflight[:0]
	p.probeSent = false
}

func (p *progress) becomeSnapshotting(index uint64) {
	p.state = snapshotting
	p.inflight = p.inflight[:0]
	p.snapIndex = index
	p.snapOffset = 0
}

// paused reports whether the leader should hold back new AppendEntries.
func (p *progress) paused(maxInflight int) bool {
	switch p.state {
	case probing:
		return p.probeSent
	case replicating:
		return len(p.inflight) >= maxInflight
	}
	return true
}

// sent records that an AppendEntries ending at lastIndex went out.
func (p *progress) sent(lastIndex uint64, nEntries int) {
	switch p.state {
	case replicating:
		if nEntries > 0 {
			p.next = lastIndex + 1
			p.inflight = append(p.inflight, lastIndex)
		}
	case probing:
		p.probeSent = true
	}
}

// acked records a successful reply; it reports whether match moved.
func (p *progress) acked(matchIndex uint64) bool {
	i := 0
	for i < len(p.inflight) && p.inflight[i] <= matchIndex {
		i++
	}
	p.inflight = append(p.inflight[:0], p.inflight[i:]...)
	p.probeSent = false
	if matchIndex <= p.match {
		return false
	}
	p.match = matchIndex
	if p.next <= matchIndex {
		p.next = matchIndex + 1
	}
	return true
}

// replyingPeer is the progress of the follower a reply came from, marked as
// heard from (for CheckQuorum), or nil when the reply is for a leader this
// server no longer is, or from a server no longer in the configuration.
func (c *Core) replyingPeer(m Message) *progress {
	if c.role != Leader {
		return nil
	}
	pr := c.prs[m.From]
	if pr != nil {
		pr.recentActive, pr.heardAt = true, c.ticks
	}
	return pr
}
