package kv

// NewStoreApplyingRetries returns a broken Store that applies a client's
// retried write again, for the mutation test in package kv_test.
func NewStoreApplyingRetries() StateMachine {
	s := NewStore()
	s.applyRetries = true
	return s
}

// NewStoreSharingSnapshots returns a broken Store whose snapshots share
// the live data instead of cloning it, for TestStoreSnapshotIsAPointInTimeCopy.
// (The simulation cannot tell: KV commands replayed over a state that
// already holds them leave the same state, so only the test sees it.)
func NewStoreSharingSnapshots() *Store {
	s := NewStore()
	s.sharedSnapshots = true
	return s
}
