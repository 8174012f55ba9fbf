package lincheck

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"raft-consensus/raft/kv"
)

// TestVisualizationSaysWhatValuesMean: the page describes a set's answer
// as the value the key had before, and an absent one as no value.
func TestVisualizationSaysWhatValuesMean(t *testing.T) {
	ops := []kv.Operation{
		{ClientID: 1, Input: kv.Command{Op: kv.OpSet, Key: "x", Value: "5", Seq: 1}, Call: 0, Return: time.Millisecond},
		{ClientID: 1, Input: kv.Command{Op: kv.OpSet, Key: "x", Value: "6", Seq: 2}, Call: 2 * time.Millisecond, Return: 3 * time.Millisecond, Output: kv.Result{Value: "5", Found: true}},
		{ClientID: 1, Input: kv.Command{Op: kv.OpGet, Key: "y"}, Call: 4 * time.Millisecond, Return: 5 * time.Millisecond},
		{ClientID: 1, Input: kv.Command{Op: kv.OpDelete, Key: "x", Seq: 3}, Call: 6 * time.Millisecond, Unknown: true},
	}
	res := CheckLinearizable(ops, 5*time.Second)
	if !res.Linearizable() {
		t.Fatalf("a sequential history is %v", res.Result)
	}
	var page bytes.Buffer
	if err := res.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`set(x, \"5\"): x had no value before`, `set(x, \"6\"): x was \"5\" before`, `get(y) → no value`, `delete(x): outcome unknown`} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("the page does not say %s", want)
		}
	}
	if strings.Contains(page.String(), "was not found") {
		t.Error("the page still says \"was not found\"")
	}
}
