package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/fortytw2/leaktest"
)

// TestTour takes the whole tour on several seeds (so on different leaders):
// every step runs without an error of its own, says what it shows with
// the paper's section, and the tour ends with a linearizable history.
func TestTour(t *testing.T) {
	defer leaktest.Check(t)()
	for _, seed := range []int64{1, 2, 3, 4, 5} {
		r, out := newSimREPL(t, seed)
		var all strings.Builder
		for range len(tourSteps) {
			got := run1(r, out, "tour")
			all.WriteString(got)
			if strings.Contains(got, "error: the tour") || strings.Contains(got, "error: internal") {
				t.Fatalf("seed %d: %s", seed, got)
			}
		}
		text := all.String()
		for i, step := range tourSteps {
			if !strings.Contains(text, fmt.Sprintf("step %d of %d: %s", i+1, len(tourSteps), step.title)) {
				t.Errorf("seed %d: step %d (%s) was not shown", seed, i+1, step.title)
			}
		}
		for _, want := range []string{"§5.2", "§5.3", "§5.4", "§6.4", "§4.2.1", "§7", "STALE READ", "y = 2\n", "node 5 added (voter)",
			"node 6 added (voter)", "linearizable\n", "the tour is over"} {
			if !strings.Contains(text, want) {
				t.Errorf("seed %d: the tour never says %q", seed, want)
			}
		}
		// After the heal, the minority's uncommitted z = 9 is gone from every log.
		heal := text[strings.Index(text, "step 6 of"):strings.Index(text, "step 7 of")]
		if strings.Contains(heal, "z=9") {
			t.Errorf("seed %d: z=9 is still in a log after the heal:\n%s", seed, heal)
		}
		if !regexp.MustCompile(`node 6 restored`).MatchString(text) {
			t.Errorf("seed %d: node 6 did not install the snapshot", seed)
		}
		r.Close()
	}
}

// TestTourLeaveAndResume: between steps the user may do anything; "tour
// stop" leaves; "tour" goes on from the step where it stopped.
func TestTourLeaveAndResume(t *testing.T) {
	defer leaktest.Check(t)()
	r, out := newSimREPL(t, 7)
	if got := run1(r, out, "tour stop"); !strings.Contains(got, "no tour is running") {
		t.Fatalf("tour stop before a tour: %q", got)
	}
	run1(r, out, "create 3")
	if got := run1(r, out, "tour"); !strings.Contains(got, "shut this one down first") {
		t.Fatalf("tour over a running cluster: %q", got)
	}
	run1(r, out, "8")
	run1(r, out, "tour")
	run1(r, out, "tour")
	if got := run1(r, out, "tour stop"); !strings.Contains(got, "stops before step 3 of") {
		t.Fatalf("tour stop: %q", got)
	}
	run1(r, out, "set mine 1")
	run1(r, out, "status")
	if got := run1(r, out, "tour"); !strings.Contains(got, "step 3 of") || !strings.Contains(got, "Replication") {
		t.Fatalf("tour after stop: %q", got)
	}
	if got := run1(r, out, "tour bogus"); !strings.HasPrefix(got, "error: usage: tour") {
		t.Fatalf("tour bogus: %q", got)
	}
	run1(r, out, "8")
	if got := run1(r, out, "tour"); !strings.Contains(got, "the tour's cluster is gone") {
		t.Fatalf("tour without its cluster: %q", got)
	}
	if got := run1(r, out, "tour restart"); !strings.Contains(got, "step 1 of") {
		t.Fatalf("tour restart: %q", got)
	}
	// A step whose commands fail says so instead of explaining what did
	// not happen.
	run1(r, out, "tour")
	for _, id := range []string{"0", "1", "2", "3", "4"} {
		run1(r, out, "crash "+id)
	}
	if got := run1(r, out, "tour"); !strings.Contains(got, "error: the tour's step 3 went wrong") || strings.Contains(got, "The client sent") {
		t.Fatalf("a step on a crashed cluster: %q", got)
	}
	if got := run1(r, out, "tour restart"); !strings.Contains(got, "step 1 of") {
		t.Fatalf("tour restart over the tour's crashed cluster: %q", got)
	}
}
