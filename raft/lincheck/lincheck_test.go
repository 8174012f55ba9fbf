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

// TestFromUnknownStart: over a store that held data before the history,
// a first read may see any value, and every later operation must agree
// with it; from an empty store the same read is a violation.
func TestFromUnknownStart(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	get := func(at int, value string, found bool) kv.Operation {
		return kv.Operation{ClientID: 1, Input: kv.Command{Op: kv.OpGet, Key: "x"}, Call: ms(at), Return: ms(at + 1), Output: kv.Result{Value: value, Found: found}}
	}
	recovered := []kv.Operation{
		get(0, "5", true),
		{ClientID: 1, Input: kv.Command{Op: kv.OpSet, Key: "x", Value: "6", Seq: 1}, Call: ms(2), Return: ms(3), Output: kv.Result{Value: "5", Found: true}},
		get(4, "6", true),
	}
	if res := CheckLinearizable(recovered, 5*time.Second); res.Linearizable() {
		t.Error("from an empty store, a read of a value never written is linearizable")
	}
	if res := CheckLinearizableFromUnknown(recovered, 5*time.Second); !res.Linearizable() {
		t.Errorf("from an unknown store, a history that starts at x = 5 is %v", res.Result)
	}
	for name, bad := range map[string][]kv.Operation{
		"two first values":              {get(0, "5", true), get(2, "7", true)},
		"a set that saw another start":  {get(0, "5", true), {ClientID: 1, Input: kv.Command{Op: kv.OpSet, Key: "x", Value: "6", Seq: 1}, Call: ms(2), Return: ms(3), Output: kv.Result{Value: "4", Found: true}}},
		"a value gone without a delete": {get(0, "5", true), get(2, "", false)},
	} {
		if res := CheckLinearizableFromUnknown(bad, 5*time.Second); res.Linearizable() {
			t.Errorf("%s: linearizable from an unknown store", name)
		}
	}
}
