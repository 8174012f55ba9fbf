package multinode

// The binary encoding of a multi.Batch, one frame of a node-to-node
// stream (transport.StreamSender):
//
//	version byte (1) | from varint | to varint
//	| heartbeats:     n uvarint, each: group term prev prevTerm commit readRound uvarint, quiesce byte
//	| append replies: n uvarint, each: group term uvarint, success byte, match prev readRound conflictTerm conflictIndex uvarint
//	| messages:       n uvarint, each: group uvarint, length uvarint, transport.AppendMessage bytes
//	| unknown groups: n uvarint, each uvarint
//	| wake:           n uvarint, each uvarint
//
// Decoding checks every count against the bytes left (a corrupt count
// cannot make it allocate without limit), and that every message is from
// the batch's sender to its receiver: a node cannot speak for another
// inside its batch.

import (
	"encoding/binary"
	"errors"

	"raft-consensus/raft/core"
	"raft-consensus/raft/internal/wire"
	"raft-consensus/raft/multi"
	"raft-consensus/raft/transport"
)

const batchVersion = 1

// ErrBadBatch is the error of a frame that is not a well-formed batch.
var ErrBadBatch = errors.New("multinode: malformed batch")

// AppendBatch appends the encoding of b to buf.
func AppendBatch(buf []byte, b *multi.Batch) []byte {
	buf = append(buf, batchVersion)
	buf = binary.AppendVarint(buf, int64(b.From))
	buf = binary.AppendVarint(buf, int64(b.To))
	buf = binary.AppendUvarint(buf, uint64(len(b.Heartbeats)))
	for i := range b.Heartbeats {
		h := &b.Heartbeats[i]
		for _, v := range [...]uint64{uint64(h.Group), h.Term, h.PrevLogIndex, h.PrevLogTerm, h.Commit, h.ReadRound} {
			buf = binary.AppendUvarint(buf, v)
		}
		buf = append(buf, boolByte(h.Quiesce))
	}
	buf = binary.AppendUvarint(buf, uint64(len(b.AppendReplies)))
	for i := range b.AppendReplies {
		r := &b.AppendReplies[i]
		buf = binary.AppendUvarint(buf, uint64(r.Group))
		buf = binary.AppendUvarint(buf, r.Term)
		buf = append(buf, boolByte(r.Success))
		for _, v := range [...]uint64{r.MatchIndex, r.PrevLogIndex, r.ReadRound, r.ConflictTerm, r.ConflictIndex} {
			buf = binary.AppendUvarint(buf, v)
		}
	}
	buf = binary.AppendUvarint(buf, uint64(len(b.Messages)))
	var msg []byte
	for i := range b.Messages {
		gm := &b.Messages[i]
		buf = binary.AppendUvarint(buf, uint64(gm.Group))
		msg = transport.AppendMessage(msg[:0], &gm.Msg)
		buf = binary.AppendUvarint(buf, uint64(len(msg)))
		buf = append(buf, msg...)
	}
	for _, ids := range [][]multi.GroupID{b.UnknownGroups, b.Wake} {
		buf = binary.AppendUvarint(buf, uint64(len(ids)))
		for _, g := range ids {
			buf = binary.AppendUvarint(buf, uint64(g))
		}
	}
	return buf
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// DecodeBatch decodes what AppendBatch wrote, all of buf; entry data
// alias buf. It never panics on bad input.
func DecodeBatch(buf []byte) (*multi.Batch, error) {
	d := wire.Decoder{B: buf}
	if d.Byte() != batchVersion {
		return nil, ErrBadBatch
	}
	b := &multi.Batch{From: multi.NodeID(d.Int()), To: multi.NodeID(d.Int())}
	flag := func() bool {
		switch d.Byte() {
		case 0:
			return false
		case 1:
			return true
		}
		d.Fail()
		return false
	}
	// count reads a count of records of at least min bytes each.
	count := func(min int) int {
		n := d.Uvarint()
		if n > uint64(len(d.B)/min) {
			d.Fail()
			return 0
		}
		return int(n)
	}
	if n := count(7); n > 0 {
		b.Heartbeats = make([]multi.Heartbeat, n)
		for i := range b.Heartbeats {
			h := &b.Heartbeats[i]
			h.Group = multi.GroupID(d.Uvarint())
			h.Term, h.PrevLogIndex, h.PrevLogTerm, h.Commit, h.ReadRound = d.Uvarint(), d.Uvarint(), d.Uvarint(), d.Uvarint(), d.Uvarint()
			h.Quiesce = flag()
		}
	}
	if n := count(8); n > 0 {
		b.AppendReplies = make([]multi.AppendReply, n)
		for i := range b.AppendReplies {
			r := &b.AppendReplies[i]
			r.Group = multi.GroupID(d.Uvarint())
			r.Term = d.Uvarint()
			r.Success = flag()
			r.MatchIndex, r.PrevLogIndex, r.ReadRound, r.ConflictTerm, r.ConflictIndex = d.Uvarint(), d.Uvarint(), d.Uvarint(), d.Uvarint(), d.Uvarint()
		}
	}
	if n := count(3); n > 0 {
		b.Messages = make([]multi.GroupMessage, n)
		for i := range b.Messages {
			gm := &b.Messages[i]
			gm.Group = multi.GroupID(d.Uvarint())
			raw := d.Bytes()
			if d.Failed {
				break
			}
			if err := transport.DecodeMessage(raw, &gm.Msg); err != nil || gm.Msg.From != int(b.From) || gm.Msg.To != int(b.To) ||
				gm.Msg.Type < core.MsgRequestVote || gm.Msg.Type > core.MsgTimeoutNowReply {
				d.Fail()
				break
			}
		}
	}
	for _, ids := range []*[]multi.GroupID{&b.UnknownGroups, &b.Wake} {
		if n := count(1); n > 0 {
			*ids = make([]multi.GroupID, n)
			for i := range *ids {
				(*ids)[i] = multi.GroupID(d.Uvarint())
			}
		}
	}
	if d.Failed || len(d.B) != 0 {
		return nil, ErrBadBatch
	}
	return b, nil
}
