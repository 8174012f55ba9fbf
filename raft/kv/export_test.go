package kv

// NewStoreApplyingRetries returns a broken Store that applies a client's
// retried write again, for the mutation test in package kv_test.
func NewStoreApplyingRetries() StateMachine {
	s := NewStore()
	s.applyRetries = true
	return s
}
