#!/usr/bin/env python3
"""Writes cluster5.log: a SYNTHETIC trace of a 5-node Raft cluster.

The raft package does not emit traces yet, so the README pictures and the
renderer's end-to-end tests use this stand-in. It is a small discrete-event
model (not a Raft implementation to trust): pre-vote and election, no-op and
client writes committed by majority, heartbeats every 50 ms, a crash and
restart with log repair, a partition that isolates the leader, a new leader in
the majority, check-quorum step-down, heal with log truncation, a disconnect,
a drop rate with a lost heartbeat. Network delay 5-12 ms. Deterministic (seed).

    python3 gen_cluster5.py > cluster5.log
"""
import heapq
import itertools
import random

rnd = random.Random(7)
BASE = (14 * 3600 + 3 * 60 + 21) * 1_000_000  # 14:03:21 in µs
N = 5
queue, seq, lines = [], itertools.count(), []


def at(t, fn):
    heapq.heappush(queue, (t, next(seq), fn))


def log(t, n, m):
    lines.append((t, next(seq), str(n), m))


class Node:
    def __init__(self, i):
        self.id, self.role, self.term, self.voted = i, "follower", 0, None
        self.log = []  # [(term, what)]
        self.commit, self.leader, self.crashed = 0, None, False
        self.votes, self.heard = set(), -10**9
        self.next, self.match, self.acked = {}, {}, {}
        self.pending = {}  # index → client op text


nodes = [Node(i) for i in range(N)]
groups = None  # partition: list of sets
disconnected = set()
drop = 0.0


def reachable(a, b):
    if a in disconnected or b in disconnected:
        return False
    if groups is None:
        return True
    return any(a in g and b in g for g in groups)


def send(t, a, b, text, payload):
    log(t, a, "send " + text)
    if nodes[a].crashed or not reachable(a, b) or rnd.random() < drop:
        return
    d = rnd.randint(5000, 12000)
    at(t + d, lambda t: deliver(t, b, text, payload))


def deliver(t, n, text, p):
    node = nodes[n]
    if node.crashed or not reachable(p["from"], n):
        return
    log(t, n, "recv " + text)
    HANDLERS[p["type"]](t + rnd.randint(40, 120), node, p)


def set_term(t, node, term):
    if term > node.term:
        log(t, node.id, f"term {node.term} → {term}")
        node.term, node.voted = term, None
        if node.role != "follower":
            become(t, node, "follower")


def become(t, node, role):
    log(t, node.id, f"{node.role} → {role} in term {node.term}")
    node.role = role


def last(node):
    return len(node.log), (node.log[-1][0] if node.log else 0)


# --- replication ---------------------------------------------------------


def replicate(t, leader, f):
    nxt = leader.next.get(f, len(leader.log) + 1)
    prev = nxt - 1
    pterm = leader.log[prev - 1][0] if prev > 0 else 0
    ents = leader.log[prev:]
    text = (f"AppendEntries {leader.id}→{f} term={leader.term} prev={prev}/{pterm} "
            f"entries={len(ents)} commit={leader.commit}")
    send(t, leader.id, f, text, dict(type="ae", frm=leader.id, **{"from": leader.id}, term=leader.term,
                                     prev=prev, pterm=pterm, ents=list(ents), commit=leader.commit))
    leader.next[f] = prev + len(ents) + 1  # optimistic, as pipelining leaders do


def heartbeat(t, leader, term):
    if leader.crashed or leader.role != "leader" or leader.term != term:
        return
    for f in range(N):
        if f != leader.id:
            replicate(t + f * 15, leader, f)
    at(t + 50_000, lambda t: heartbeat(t, leader, term))


def on_ae(t, node, p):
    set_term(t, node, p["term"])
    if node.role != "follower":
        become(t, node, "follower")
    node.heard = t
    if node.leader != p["frm"]:
        node.leader = p["frm"]
        log(t, node.id, f"leader is {p['frm']} in term {node.term}")
    prev, pterm = p["prev"], p["pterm"]
    reply = f"AppendReply {node.id}→{p['frm']} term={node.term}"
    if prev > len(node.log) or (prev > 0 and node.log[prev - 1][0] != pterm):
        hint = min(prev, len(node.log))
        hterm = node.log[hint - 1][0] if hint > 0 else 0
        log(t, node.id, f"rejected AppendEntries from {p['frm']}: no entry {prev}/{pterm} (hint {hint}/{hterm})")
        send(t + 30, node.id, p["frm"], f"{reply} reject prev={prev} conflict={hint}/{hterm}",
             {"type": "ar", "from": node.id, "ok": False, "conflict": hint, "cterm": hterm})
        return
    ents, first = p["ents"], None
    for k, e in enumerate(ents):
        i = prev + k + 1
        if i <= len(node.log) and node.log[i - 1][0] != e[0]:
            log(t, node.id, f"truncating log from {i} (had {len(node.log)} entries)")
            del node.log[i - 1:]
        if i > len(node.log):
            node.log.append(e)
            first = first or i
    if first:
        log(t, node.id, f"appended entries {first}..{prev + len(ents)} from {p['frm']}")
    match = prev + len(ents)
    new_commit = min(p["commit"], match)
    if new_commit > node.commit:
        log(t + 10, node.id, f"commit index {node.commit} → {new_commit}")
        log(t + 20, node.id, f"applied {node.commit + 1}..{new_commit}")
        node.commit = new_commit
    send(t + 30, node.id, p["frm"], f"{reply} ok match={match}", {"type": "ar", "from": node.id, "ok": True, "match": match})


def on_ar(t, leader, p):
    if leader.role != "leader":
        return
    f = p["from"]
    leader.acked[f] = t
    if not p["ok"]:
        h = p["conflict"]
        same = 0 < h <= len(leader.log) and leader.log[h - 1][0] == p["cterm"]
        leader.next[f] = h + 1 if same else max(h, 1)
        replicate(t + 20, leader, f)
        return
    leader.match[f] = p["match"]
    leader.next[f] = p["match"] + 1
    for idx in range(len(leader.log), leader.commit, -1):
        votes = 1 + sum(1 for m in leader.match.values() if m >= idx)
        if votes * 2 > N and leader.log[idx - 1][0] == leader.term:
            log(t, leader.id, f"commit index {leader.commit} → {idx}")
            log(t + 15, leader.id, f"applied {leader.commit + 1}..{idx}")
            for i in range(leader.commit + 1, idx + 1):
                if i in leader.pending:
                    log(t + 25, leader.id, f"client {leader.pending.pop(i)} → ok at index {i}")
            leader.commit = idx
            break


# --- elections -------------------------------------------------------------


def timeout(t, node, ticks):
    if node.crashed or node.role == "leader":
        return
    log(t, node.id, f"election timeout after {ticks} ticks in term {node.term}")
    become(t + 10, node, "pre-candidate")
    li, lt = last(node)
    log(t + 20, node.id, f"starting pre-vote for term {node.term + 1} (last log {li}/{lt})")
    node.votes = {node.id}
    for f in range(N):
        if f != node.id:
            send(t + 40 + f * 12, node.id, f, f"PreVote {node.id}→{f} term={node.term + 1} last={li}/{lt}",
                 {"type": "rv", "from": node.id, "pre": True, "term": node.term + 1, "li": li, "lt": lt})


def on_rv(t, node, p):
    pre = p["pre"]
    if not pre:
        set_term(t, node, p["term"])
    li, lt = last(node)
    uptodate = (p["lt"], p["li"]) >= (lt, li)
    kind = "pre-vote" if pre else "vote"
    if pre:
        ok = uptodate and p["term"] > node.term and node.role != "leader" and t - node.heard > 150_000
        why = "we are the leader" if node.role == "leader" else "we heard from the leader recently"
    else:
        ok = uptodate and p["term"] == node.term and node.voted in (None, p["from"])
        why = "already voted"
        if ok:
            node.voted = p["from"]
    if ok:
        log(t, node.id, f"granted {kind} to {p['from']} for term {p['term']}")
    else:
        log(t, node.id, f"refused {kind} to {p['from']} for term {p['term']} ({why})")
    term = p["term"] if pre else node.term
    send(t + 25, node.id, p["from"],
         f"VoteReply {node.id}→{p['from']} term={term} granted={'true' if ok else 'false'} prevote={'true' if pre else 'false'}",
         {"type": "vr", "from": node.id, "pre": pre, "ok": ok, "term": term})


def on_vr(t, node, p):
    want = "pre-candidate" if p["pre"] else "candidate"
    if node.role != want or not p["ok"]:
        return
    node.votes.add(p["from"])
    if len(node.votes) * 2 <= N:
        return
    if p["pre"]:
        log(t, node.id, f"pre-vote won with {len(node.votes)} of {N}")
        log(t + 10, node.id, f"term {node.term} → {node.term + 1}")
        node.term += 1
        become(t + 10, node, "candidate")
        node.voted, node.votes = node.id, {node.id}
        li, lt = last(node)
        log(t + 20, node.id, f"starting election for term {node.term} (last log {li}/{lt})")
        for f in range(N):
            if f != node.id:
                send(t + 40 + f * 12, node.id, f, f"RequestVote {node.id}→{f} term={node.term} last={li}/{lt}",
                     {"type": "rv", "from": node.id, "pre": False, "term": node.term, "li": li, "lt": lt})
    else:
        log(t, node.id, f"won the election for term {node.term}")
        become(t + 5, node, "leader")
        node.leader = node.id
        node.log.append((node.term, "no-op"))
        node.next = {f: len(node.log) for f in range(N)}  # last index + 1 before the no-op
        node.match, node.acked = {}, {}
        heartbeat(t + 30, node, node.term)


def client_set(t, node, key, val):
    if node.role != "leader":
        log(t, node.id, f"client set {key}={val} → not leader, redirect to {node.leader}")
        return
    node.log.append((node.term, f"set {key}={val}"))
    node.pending[len(node.log)] = f"set {key}={val}"
    log(t, node.id, f"client set {key}={val} → proposed at index {len(node.log)}")
    for f in range(N):
        if f != node.id:
            replicate(t + 20 + f * 10, node, f)


def check_quorum(t, node):
    if node.role != "leader":
        return
    recent = sum(1 for f, a in node.acked.items() if t - a < 150_000)
    if (recent + 1) * 2 <= N:
        log(t, node.id, f"check quorum failed: stepping down in term {node.term}")
        become(t + 10, node, "follower")
        for i, op in sorted(node.pending.items()):
            log(t + 30, node.id, f"client {op} → lost leadership before commit, retrying")
        node.pending = {}


HANDLERS = {"ae": on_ae, "ar": on_ar, "rv": on_rv, "vr": on_vr}


def fault(t, n, what):
    log(t, n, "fault: " + what)


def script():
    global groups, drop
    ms = 1000
    at(0, lambda t: log(t, "sim", "fault: delay 5ms-12ms"))
    at(152 * ms, lambda t: timeout(t, nodes[2], 17))
    at(258 * ms, lambda t: client_set(t, nodes[2], "x", 1))

    def crash(t):
        fault(t, 4, "crash")
        nodes[4].crashed = True
    at(331 * ms, crash)
    at(402 * ms, lambda t: client_set(t, nodes[2], "y", 2))

    def restart(t):
        fault(t, 4, "restart")
        n = nodes[4]
        n.crashed, n.role, n.commit, n.leader = False, "follower", 0, None
    at(487 * ms, restart)

    def part(t):
        global groups
        log(t, "sim", "fault: partition 2 3 | 0 1 4")
        groups = [{2, 3}, {0, 1, 4}]
    at(560 * ms, part)
    at(596 * ms, lambda t: client_set(t, nodes[2], "z", 3))
    at(703 * ms, lambda t: timeout(t, nodes[0], 19))
    at(718 * ms, lambda t: timeout(t, nodes[3], 16))
    at(741 * ms, lambda t: check_quorum(t, nodes[2]))
    at(790 * ms, lambda t: client_set(t, nodes[0], "z", 4))

    def heal(t):
        global groups
        log(t, "sim", "fault: heal")
        groups = None
    at(842 * ms, heal)

    def disc(t):
        fault(t, 1, "disconnect")
        disconnected.add(1)
    at(905 * ms, disc)
    at(918 * ms, lambda t: log(t, 3, "snapshot through 3/1 (512 bytes); log now 4..5"))

    def dropping(t):
        global drop
        log(t, "sim", "fault: drop rate 0.10")
        drop = 0.10
    at(930 * ms, dropping)

    def reconn(t):
        fault(t, 1, "reconnect")
        disconnected.discard(1)
    at(1004 * ms, reconn)
    at(1049 * ms, lambda t: client_set(t, nodes[0], "w", 5))
    at(1130 * ms, lambda t: None)


def main():
    script()
    while queue:
        t, _, fn = heapq.heappop(queue)
        if t > 1_140_000:
            break
        fn(t)
    print("=== RUN   TestPartitionedLeaderRecovers")
    tlogs = {560_500: "    cluster_test.go:88: partitioning the leader 2 away with 3",
             842_500: "    cluster_test.go:97: healing the partition"}
    for t, _, n, m in sorted(lines):
        for tl in sorted(tlogs):
            if tl <= t:
                print(tlogs.pop(tl))
        us = BASE + t
        s = us // 1_000_000
        print(f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}.{us % 1_000_000:06d} [{n}] {m}")
    print("--- PASS: TestPartitionedLeaderRecovers (1.14s)")
    print("PASS")
    print("ok  \traft-consensus/raft\t1.163s")


if __name__ == "__main__":
    main()
