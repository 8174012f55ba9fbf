package storage

// Test-only access to the storage's broken rules, for the mutation tests
// in package storage_test: each switches off one rule, so that the tests
// can show the simulation catches the bug that follows.

// BreakFsync makes DiskStorage acknowledge a Save before its fsync (it
// never syncs).
func BreakFsync(o *DiskOptions) { o.broken.ackBeforeSync = true }

// BreakTornTail makes DiskStorage load the intact records of a torn last
// write as if the write had completed.
func BreakTornTail(o *DiskOptions) { o.broken.tornTailWhole = true }

// BreakSharedSync makes a SharedLog write its records without fsync.
func BreakSharedSync(o *SharedOptions) { o.broken.noSync = true }

// BreakTornByFileEnd makes DiskStorage take a torn last write for a torn
// write only when it ends the file, as before segments were preallocated.
func BreakTornByFileEnd(o *DiskOptions) { o.broken.tornByFileEnd = true }
