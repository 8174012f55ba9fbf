package core

// Test-only access to the core's broken rules, for the mutation tests in
// package core_test: each switches off one safety rule, so that the tests
// can show the simulation catches the bug that follows.

// BreakElectionRestriction makes a core grant votes without the election
// restriction of §5.4.1.
func BreakElectionRestriction(cfg *CoreConfig) { cfg.broken.voteForStaleLogs = true }

// BreakCommitRule makes a leader commit entries of earlier terms by
// counting replicas (no §5.4.2 rule).
func BreakCommitRule(cfg *CoreConfig) { cfg.broken.commitOldTerms = true }

// BreakStaleAppends makes a follower truncate its log after the last entry
// of every AppendEntries it accepts (Figure 2 step 3 says: only on a
// conflict), which loses acknowledged entries when appends arrive out of
// order.
func BreakStaleAppends(cfg *CoreConfig) { cfg.broken.truncateStaleSuffix = true }

// BreakJointQuorum makes a core count only the new voters in a joint
// configuration, so that C_old and C_new can decide apart (Raft paper §6).
func BreakJointQuorum(cfg *CoreConfig) { cfg.broken.newVotersOnly = true }

// BreakVoteFloor makes a replica created empty for a running group vote
// as if it had no floor (InitialState.VoteFloor).
func BreakVoteFloor(cfg *CoreConfig) { cfg.broken.ignoreVoteFloor = true }

// BreakStagedLearners makes a core count staged learners as voters in its
// decisions (Configuration.Staged), before the change promotes them.
func BreakStagedLearners(cfg *CoreConfig) { cfg.broken.stagedVote = true }

// BreakUnstableAtChunkEnd makes a Ready hand out only the unstable entries
// up to the end of a chunk of the log, though its replies acknowledge them
// all.
func BreakUnstableAtChunkEnd(cfg *CoreConfig) { cfg.broken.unstableToChunkEnd = true }

// SetLogChunk makes every log's chunks n entries long, until the returned
// function restores the size; no core may be running meanwhile.
func SetLogChunk(n int) (restore func()) {
	old := logChunk
	logChunk = n
	return func() { logChunk = old }
}
