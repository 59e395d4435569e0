// Package faults is linkops' fault suite: a three-node cluster of real `linkops agent`
// processes in containers (images built FROM scratch from the static binary), driven by
// concurrent clients while the suite kills, pauses and partitions nodes, and checked for
// linearizability with porcupine.
//
// It holds tests only. Partitions are made with iptables inside a container's network
// namespace (nsenter), so the test client on 127.0.0.1 still reaches every node's published
// API while the nodes cannot reach each other. Traffic stays on this machine: loopback and
// the containers' private bridge network that the suite creates and removes.
package faults
