package transport

import (
	"bytes"
	"math"
	"math/rand"
	"net/rpc"
	"reflect"
	"testing"

	"raft-consensus/raft/core"
)

// randomMessage fills every field of a Message, so that a field added to
// Message but forgotten by the codec fails TestCodecRoundTrip.
func randomMessage(r *rand.Rand) core.Message {
	var m core.Message
	v := reflect.ValueOf(&m).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Bool:
			f.SetBool(r.Intn(2) == 1)
		case reflect.Int:
			f.SetInt(int64(r.Intn(10)) - 1)
		case reflect.Uint8:
			f.SetUint(uint64(r.Intn(9)))
		case reflect.Uint64:
			f.SetUint(r.Uint64() >> uint(r.Intn(64)))
		case reflect.Slice, reflect.Pointer:
			// set below
		default:
			panic("randomMessage: unhandled field " + v.Type().Field(i).Name)
		}
	}
	for i := range r.Intn(4) {
		e := core.Entry{Index: m.PrevLogIndex + 1 + uint64(i), Term: r.Uint64(), Type: core.EntryType(r.Intn(3))}
		if n := r.Intn(100); n > 0 {
			e.Data = make([]byte, n)
			r.Read(e.Data)
		}
		m.Entries = append(m.Entries, e)
	}
	if r.Intn(2) == 1 {
		m.Snapshot = &core.SnapshotMeta{LastIncludedIndex: r.Uint64(), LastIncludedTerm: r.Uint64(), Size: r.Uint64()}
		if n := r.Intn(8); n > 0 {
			m.Snapshot.App = make([]byte, n)
			r.Read(m.Snapshot.App)
		}
		for range r.Intn(4) {
			m.Snapshot.Config.Voters = append(m.Snapshot.Config.Voters, r.Intn(16))
		}
		for range r.Intn(3) {
			m.Snapshot.Config.Learners = append(m.Snapshot.Config.Learners, r.Intn(16))
		}
		for range r.Intn(3) {
			m.Snapshot.Config.Outgoing = append(m.Snapshot.Config.Outgoing, r.Intn(16))
		}
		if len(m.Snapshot.Config.Learners) > 0 && r.Intn(2) == 1 {
			m.Snapshot.Config.Staged = m.Snapshot.Config.Learners[:1+r.Intn(len(m.Snapshot.Config.Learners))]
		}
	}
	if n := r.Intn(50); n > 0 {
		m.Data = make([]byte, n)
		r.Read(m.Data)
	}
	return m
}

func TestCodecRoundTrip(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	extremes := []core.Message{
		{},
		{Type: core.MsgAppendEntries, From: math.MaxInt, To: math.MinInt, Term: math.MaxUint64, Entries: []core.Entry{{Index: math.MaxUint64, Term: 1}}},
		{Type: core.MsgInstallSnapshot, Snapshot: &core.SnapshotMeta{}, Done: true},
	}
	for i := range 2000 {
		var m core.Message
		if i < len(extremes) {
			m = extremes[i]
		} else {
			m = randomMessage(r)
		}
		b := appendMessage(nil, &m)
		var got core.Message
		if err := decodeMessage(b, &got); err != nil {
			t.Fatalf("decoding %+v: %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
		}
		// Every strict prefix is malformed.
		for cut := range len(b) {
			if cut%7 != 0 && cut != len(b)-1 {
				continue
			}
			if err := decodeMessage(b[:cut], &got); err == nil {
				t.Fatalf("%d of %d bytes of %+v decoded without error", cut, len(b), m)
			}
		}
	}
}

// TestCodecRPC runs requests and responses, errors included, through the
// codecs as net/rpc drives them.
func TestCodecRPC(t *testing.T) {
	cc, sc := benchCodecs()
	r := rand.New(rand.NewSource(2))
	for i, method := range []string{"Raft.AppendEntries", "Raft.RequestVote", "Raft.Unknown", "Raft.TimeoutNow", "Raft.InstallSnapshot"} {
		args, reply := randomMessage(r), randomMessage(r)
		if err := cc.WriteRequest(&rpc.Request{ServiceMethod: method, Seq: uint64(i) << 40}, &args); err != nil {
			t.Fatal(err)
		}
		var req rpc.Request
		var gotArgs core.Message
		if err := sc.ReadRequestHeader(&req); err != nil {
			t.Fatal(err)
		}
		if err := sc.ReadRequestBody(&gotArgs); err != nil {
			t.Fatal(err)
		}
		if req.ServiceMethod != method || req.Seq != uint64(i)<<40 || !reflect.DeepEqual(gotArgs, args) {
			t.Fatalf("request %s: got %+v %+v", method, req, gotArgs)
		}
		errStr := ""
		var body any = &reply
		if i == 2 {
			errStr, body = "rpc: can't find method "+method, struct{}{}
		}
		if err := sc.WriteResponse(&rpc.Response{ServiceMethod: method, Seq: req.Seq, Error: errStr}, body); err != nil {
			t.Fatal(err)
		}
		var resp rpc.Response
		var gotReply core.Message
		if err := cc.ReadResponseHeader(&resp); err != nil {
			t.Fatal(err)
		}
		if resp.Error != errStr || resp.Seq != req.Seq || resp.ServiceMethod != method {
			t.Fatalf("response %s: header %+v", method, resp)
		}
		if errStr != "" {
			if err := cc.ReadResponseBody(nil); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := cc.ReadResponseBody(&gotReply); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(gotReply, reply) {
			t.Fatalf("response %s: got %+v, want %+v", method, gotReply, reply)
		}
	}
}

func TestCodecRejectsHugeFrame(t *testing.T) {
	in := bytes.NewBuffer([]byte{0xff, 0xff, 0xff, 0x7f})
	c := newWireCodec(loopConn{r: in, w: new(bytes.Buffer)})
	var req rpc.Request
	if err := c.ReadRequestHeader(&req); err != errFrameTooLarge {
		t.Fatalf("got %v, want %v", err, errFrameTooLarge)
	}
}

// FuzzDecodeMessage: any input decodes or fails cleanly, and what decodes
// encodes back to the same bytes.
func FuzzDecodeMessage(f *testing.F) {
	r := rand.New(rand.NewSource(3))
	for range 20 {
		m := randomMessage(r)
		f.Add(appendMessage(nil, &m))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m core.Message
		if err := decodeMessage(b, &m); err != nil {
			return
		}
		again := appendMessage(nil, &m)
		var m2 core.Message
		if err := decodeMessage(again, &m2); err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("re-encoding %+v: %v, %+v", m, err, m2)
		}
	})
}
