package multi

import "hash/fnv"

// GroupOfKey is the group holding key among groups groups: its FNV-1a
// hash modulo groups. Hashing spreads keys evenly and needs no table;
// ranges (CockroachDB's, TiKV's) would keep neighbouring keys together
// and let a group split, which this sharding does not need.
func GroupOfKey(key string, groups int) GroupID {
	h := fnv.New32a()
	h.Write([]byte(key))
	return GroupID(h.Sum32() % uint32(max(groups, 1)))
}
