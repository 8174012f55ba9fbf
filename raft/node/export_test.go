package node

// Test-only access to the driver's broken rules, for the mutation tests in
// package node_test: each switches off one rule, so that the tests can
// show the simulation catches the bug that follows.

// BreakReplyBeforeSave makes the driver send a reply as soon as it has
// stepped the request, before the Save of what the reply depends on.
func BreakReplyBeforeSave(c *DriverConfig) { c.broken.replyBeforeSave = true }

// BreakFollowerWrites makes a follower write through the log writer, as a
// leader does, and acknowledge entries before they are durable.
func BreakFollowerWrites(c *DriverConfig) { c.broken.followerAsyncWrites = true }

// BreakLeaderSelfCount makes the leader count its own entries toward a
// majority as soon as it hands them to the writer, before they are durable.
func BreakLeaderSelfCount(c *DriverConfig) { c.broken.selfAckEarly = true }
