// Package ota owns remote upgrade (远程升级) on this node and, on the leader, the campaigns:
// firmware files streamed into the blob store while hashed (and fetched from a peer when a
// node's own store lacks one), signed device download links, the device side of the
// firmware topics (pull answers, progress batched into raft), and the task engine, a leader
// routine that records every decision through raft before acting on it.
//
// It must not touch HTTP routing or problem answers (package api serves what it offers),
// nor write the state except through proposed commands (fsm.OTAType). The blob stores
// themselves are package ota/blob, which knows nothing of firmware.
package ota
