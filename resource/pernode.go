package resource

// NodeConfig is one node's entry of a configuration that is not shared (独立配置).
type NodeConfig[C any] struct {
	ServerID      string `json:"serverId"`
	Configuration C      `json:"configuration"`
}

// ElementKey matches per-node entries by node when secrets are kept on update.
func (n *NodeConfig[C]) ElementKey() string { return n.ServerID }

// PerNode is "shared or per node" (共享配置 / 独立配置) as one value: either one
// configuration serves every node, or each node named in an entry has its own and the
// others run nothing. It answers the first question every listener asks: what does this
// node run?
type PerNode[C any] struct {
	shared *C
	nodes  []NodeConfig[C]
}

// SharedConfig is a configuration that serves every node (nil: none given).
func SharedConfig[C any](c *C) PerNode[C] {
	if c == nil {
		return PerNode[C]{nodes: []NodeConfig[C]{}}
	}
	return PerNode[C]{shared: c}
}

// ByNode is a configuration given per node.
func ByNode[C any](entries []NodeConfig[C]) PerNode[C] {
	if entries == nil {
		entries = []NodeConfig[C]{}
	}
	return PerNode[C]{nodes: entries}
}

// Shared reports whether one configuration serves every node.
func (p PerNode[C]) Shared() bool { return p.shared != nil }

// For returns the configuration node nodeID runs, and false when it has none (a
// per-node configuration without an entry for it).
func (p PerNode[C]) For(nodeID string) (*C, bool) {
	if p.shared != nil {
		return p.shared, true
	}
	for i := range p.nodes {
		if p.nodes[i].ServerID == nodeID {
			return &p.nodes[i].Configuration, true
		}
	}
	return nil, false
}

// Placed is one configuration and where it applies: Node is "" for every node.
type Placed[C any] struct {
	Node   string
	Config *C
}

// All lists every configuration with the node it applies to.
func (p PerNode[C]) All() []Placed[C] {
	if p.shared != nil {
		return []Placed[C]{{Config: p.shared}}
	}
	out := make([]Placed[C], len(p.nodes))
	for i := range p.nodes {
		out[i] = Placed[C]{Node: p.nodes[i].ServerID, Config: &p.nodes[i].Configuration}
	}
	return out
}
