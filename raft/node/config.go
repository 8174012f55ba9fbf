package node

import (
	"fmt"
	"time"

	"raft-consensus/raft/core"
	"raft-consensus/raft/storage"
	"raft-consensus/raft/trace"
	"raft-consensus/raft/transport"
)

// Config configures a RaftNode.
type Config struct {
	// ID is this server's id (0, 1, 2, …).
	ID int
	// Members are the founding voters, the same list on every founding
	// member. A server that will be added to a running cluster leaves it
	// empty: it learns the configuration from the leader.
	Members []int
	// VoteFloor, for a server that will be added with an empty log, is
	// its vote floor (core.InitialState.VoteFloor; SetVoteFloor sets it
	// later).
	VoteFloor core.VoteFloor

	// ElectionTimeoutMin and ElectionTimeoutMax bound the randomized
	// election timeout (§5.2; the paper's 150–300 ms by default).
	ElectionTimeoutMin time.Duration
	ElectionTimeoutMax time.Duration
	// HeartbeatInterval is the leader's heartbeat period (default 50 ms).
	HeartbeatInterval time.Duration
	// TickInterval is the resolution of the node's clock (default 10 ms);
	// the timeouts above are rounded to whole ticks.
	TickInterval time.Duration

	// MaxEntriesPerAppend and MaxBytesPerAppend cap one AppendEntries
	// (defaults 4096 entries, 4 MiB).
	MaxEntriesPerAppend int
	MaxBytesPerAppend   int
	// MaxInflight caps unacknowledged AppendEntries per follower (default 8).
	MaxInflight int
	// Pipeline is how many RPCs may be in flight to one peer at a time
	// (default DefaultPipeline); 1 waits for each reply before sending the
	// next. It needs a transport.Pipeliner (the TCP transport is one).
	// PipelineAfter is how long the latest RPC must have waited for its
	// reply before another starts behind it (default
	// DefaultPipelineAfter): replies that come faster leave one RPC in
	// flight, which carries more per call.
	Pipeline      int
	PipelineAfter time.Duration
	// SnapshotChunkBytes is the size of one InstallSnapshot chunk (64 KiB).
	SnapshotChunkBytes int

	// DisablePreVote and DisableCheckQuorum switch off the two robustness
	// extensions, which are on by default (thesis §9.6, §6.2).
	DisablePreVote     bool
	DisableCheckQuorum bool

	// RPCTimeout bounds one RPC to a peer (default ElectionTimeoutMax).
	RPCTimeout time.Duration

	// Storage keeps the durable state (default: a fresh MemoryStorage).
	Storage storage.Storage
	// AsyncLeaderWrites makes a leader write its new entries to Storage on
	// a separate goroutine, in parallel with replicating them (thesis
	// §10.2.1), with one sync for every batch that queued meanwhile; they
	// count toward a majority once durable. Worth it when Save syncs to a
	// disk; with MemoryStorage the hand-off costs more than it saves.
	AsyncLeaderWrites bool
	// LeaderSyncGap is how long the leader's log writer rests after each
	// write before it starts the next (default DefaultLeaderSyncGap;
	// negative: none, back to back). Commit needs a majority of durable
	// copies, and with three servers on one disk the followers' syncs are
	// the ones a commit waits for: a leader that syncs less often leaves
	// them the disk, and more entries share each of its own syncs. Its
	// copy counts once durable, as always, so this changes when, never
	// whether.
	LeaderSyncGap time.Duration
	// Transport carries RPCs to the other servers (required with peers).
	Transport transport.Transport
	// Tracer, if set, receives every protocol event.
	Tracer trace.Tracer
	// OnViolation, if set, hears of a broken invariant of the protocol (a
	// bug), after which the node stops; if nil, the node panics.
	OnViolation func(core.InvariantViolation)
	// Seed seeds the election timeout randomization (default: the id and
	// the clock).
	Seed int64

	// broken: see DriverConfig.
	broken brokenDriver
}

// Pipelining defaults: RPCs in flight per peer, and how long the latest
// waits for its reply before another may follow it.
const (
	DefaultPipeline      = 4
	DefaultPipelineAfter = 500 * time.Microsecond
)

// DefaultLeaderSyncGap is the leader's log writer's rest between writes
// (Config.LeaderSyncGap).
const DefaultLeaderSyncGap = 500 * time.Microsecond

// WithDefaults returns c with every zero field set to its default, or why
// c is invalid.
func (c Config) WithDefaults() (Config, error) {
	// The core's defaults are in ticks of defaultTick.
	const defaultTick = 10 * time.Millisecond
	if c.ElectionTimeoutMin == 0 {
		c.ElectionTimeoutMin = core.DefaultElectionTicksMin * defaultTick
	}
	if c.ElectionTimeoutMax == 0 {
		c.ElectionTimeoutMax = c.ElectionTimeoutMin * core.DefaultElectionTicksMax / core.DefaultElectionTicksMin
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = core.DefaultHeartbeatTicks * defaultTick
	}
	if c.TickInterval == 0 {
		c.TickInterval = defaultTick
	}
	if c.MaxEntriesPerAppend == 0 {
		c.MaxEntriesPerAppend = core.DefaultMaxEntriesPerAppend
	}
	if c.MaxBytesPerAppend == 0 {
		c.MaxBytesPerAppend = core.DefaultMaxBytesPerAppend
	}
	if c.Pipeline == 0 {
		c.Pipeline = DefaultPipeline
	}
	if c.PipelineAfter == 0 {
		c.PipelineAfter = DefaultPipelineAfter
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = core.DefaultMaxInflight
	}
	switch {
	case c.LeaderSyncGap == 0:
		c.LeaderSyncGap = DefaultLeaderSyncGap
	case c.LeaderSyncGap < 0:
		c.LeaderSyncGap = -1 // none; kept negative so that it stays so
	}
	if c.SnapshotChunkBytes == 0 {
		c.SnapshotChunkBytes = core.DefaultSnapshotChunkBytes
	}
	if c.RPCTimeout == 0 {
		c.RPCTimeout = c.ElectionTimeoutMax
	}
	if c.Storage == nil {
		c.Storage = storage.NewMemoryStorage()
	}
	if c.Seed == 0 {
		c.Seed = time.Now().UnixNano() + int64(c.ID)*7919
	}
	switch {
	case c.ID < 0:
		return c, fmt.Errorf("node id %d is negative", c.ID)
	case c.Pipeline < 0:
		return c, fmt.Errorf("pipeline depth %d is negative", c.Pipeline)
	case c.PipelineAfter < 0:
		return c, fmt.Errorf("pipeline wait %v is negative", c.PipelineAfter)
	case c.TickInterval <= 0:
		return c, fmt.Errorf("tick interval %v must be positive", c.TickInterval)
	case c.ElectionTimeoutMax <= c.ElectionTimeoutMin:
		return c, fmt.Errorf("election timeout range [%v, %v) is empty", c.ElectionTimeoutMin, c.ElectionTimeoutMax)
	case c.HeartbeatInterval >= c.ElectionTimeoutMin:
		return c, fmt.Errorf("heartbeat interval %v must be below the election timeout %v", c.HeartbeatInterval, c.ElectionTimeoutMin)
	}
	return c, nil
}

// coreConfig converts durations to ticks.
func (c Config) coreConfig() core.CoreConfig {
	ticks := func(d time.Duration) int { return max(1, int((d+c.TickInterval/2)/c.TickInterval)) }
	return core.CoreConfig{
		ID:                  c.ID,
		ElectionTicksMin:    ticks(c.ElectionTimeoutMin),
		ElectionTicksMax:    ticks(c.ElectionTimeoutMax),
		HeartbeatTicks:      ticks(c.HeartbeatInterval),
		PreVote:             !c.DisablePreVote,
		CheckQuorum:         !c.DisableCheckQuorum,
		MaxEntriesPerAppend: c.MaxEntriesPerAppend,
		MaxBytesPerAppend:   c.MaxBytesPerAppend,
		MaxInflight:         c.MaxInflight,
		SnapshotChunkBytes:  c.SnapshotChunkBytes,
		Seed:                c.Seed,
		OnViolation:         c.OnViolation,
	}
}
