package sim

// FirstFailure runs seeds from 1 to limit with opts and returns the first
// that fails (ok false if none does): the mutation tests of every layer use
// it to show that the simulation catches a bug planted on purpose.
func FirstFailure(limit int64, opts Options) (res Result, ok bool) {
	for seed := int64(1); seed <= limit; seed++ {
		if r := RunSeed(seed, opts); r.Err != nil {
			return r, true
		}
	}
	return Result{}, false
}
