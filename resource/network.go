package resource

import (
	"encoding/hex"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
)

// Network component types (网络组件), JetLinks' names.
const (
	TypeUDP             = "UDP"
	TypeTCPServer       = "TCP_SERVER"
	TypeWebSocketServer = "WEB_SOCKET_SERVER"
	TypeMQTTClient      = "MQTT_CLIENT"
	TypeHTTPServer      = "HTTP_SERVER"
	TypeMQTTServer      = "MQTT_SERVER"
	TypeCoAPServer      = "COAP_SERVER"
)

// NetworkTypes lists every component type, in the manual's order.
var NetworkTypes = []string{TypeUDP, TypeTCPServer, TypeWebSocketServer, TypeMQTTClient, TypeHTTPServer, TypeMQTTServer, TypeCoAPServer}

// TCP_SERVER parser types (粘拆包规则).
const (
	ParserDirect      = "DIRECT"
	ParserDelimited   = "DELIMITED"
	ParserFixedLength = "FIXED_LENGTH"
	ParserLengthField = "LENGTH_FIELD"
	ParserScript      = "SCRIPT"
)

// Defaults and bounds of component settings.
const (
	DefaultBindHost       = "0.0.0.0"
	DefaultMaxMessageSize = 8192
	// MaxMQTTMessageSize is the largest packet MQTT can express (256 MiB - 1).
	MaxMQTTMessageSize = 268435455
	MaxFixedLength     = 1 << 20
	MaxTopics          = 100
)

// NetworkComponent is a listener (or, for MQTT_CLIENT, an outgoing connection) that devices
// reach the platform through (网络组件).
type NetworkComponent struct {
	Meta
	Name string `json:"name"`
	Type string `json:"type"`
	// ShareCluster: one configuration for every node (共享配置) when true (the default),
	// else one entry per node in Cluster (独立配置).
	ShareCluster  *bool           `json:"shareCluster"`
	Configuration *NetworkConfig  `json:"configuration,omitempty"`
	Cluster       []NodeNetConfig `json:"cluster,omitempty"`
	Description   string          `json:"description,omitempty"`
	Switch
}

// NodeNetConfig is one node's configuration of a component that is not shared.
type NodeNetConfig = NodeConfig[NetworkConfig]

// NetworkConfig holds the settings of every component type; which keys a type accepts is
// checked by Validate (JetLinks' key names).
type NetworkConfig struct {
	// Servers (every type but MQTT_CLIENT).
	Host            string `json:"host,omitempty"`
	Port            int    `json:"port,omitempty"`
	PublicHost      string `json:"publicHost,omitempty"`
	PublicPort      int    `json:"publicPort,omitempty"`
	Secure          bool   `json:"secure,omitempty"`
	CertID          string `json:"certId,omitempty"`
	PrivateKeyAlias string `json:"privateKeyAlias,omitempty"`

	// TCP_SERVER.
	ParserType          string        `json:"parserType,omitempty"`
	ParserConfiguration *ParserConfig `json:"parserConfiguration,omitempty"`
	// KeepAliveTimeout closes a TCP connection idle for this many seconds (0: never).
	KeepAliveTimeout int `json:"keepAliveTimeout,omitempty"`

	// MQTT_SERVER and MQTT_CLIENT: the largest packet in bytes.
	MaxMessageSize int `json:"maxMessageSize,omitempty"`

	// MQTT_CLIENT.
	RemoteHost  string   `json:"remoteHost,omitempty"`
	RemotePort  int      `json:"remotePort,omitempty"`
	ClientID    string   `json:"clientId,omitempty"`
	Username    string   `json:"username,omitempty"`
	Password    string   `json:"password,omitempty" secret:"true"`
	TopicPrefix string   `json:"topicPrefix,omitempty"`
	Topics      []string `json:"topics,omitempty"`
}

// ParserConfig configures how a TCP_SERVER splits its byte stream into messages.
type ParserConfig struct {
	// Delimited: escaped text (\r\n) or 0x-prefixed hex.
	Delimited string `json:"delimited,omitempty"`
	// Size of every FIXED_LENGTH message.
	Size int `json:"size,omitempty"`
	// LENGTH_FIELD: the field's offset and width in bytes, and its byte order.
	Offset int  `json:"offset,omitempty"`
	Length int  `json:"length,omitempty"`
	Little bool `json:"little,omitempty"`
	// Script is the JavaScript of a SCRIPT parser.
	Script string `json:"script,omitempty"`
}

// Binding is one socket a component (or a SIP gateway) binds on a node.
type Binding struct {
	// Node is the node id, or "" for every node (a shared configuration).
	Node      string
	Transport string // "tcp" or "udp"
	Host      string
	Port      int
}

// Conflicts reports whether two bindings would fight over the same socket: same transport
// and port on a common node, and the same address or a wildcard on either side (binding
// 0.0.0.0:p and 10.0.0.1:p fails on Linux without SO_REUSEPORT).
func (b Binding) Conflicts(o Binding) bool {
	if b.Transport != o.Transport || b.Port != o.Port {
		return false
	}
	if b.Node != "" && o.Node != "" && b.Node != o.Node {
		return false
	}
	return b.Host == o.Host || isWildcard(b.Host) || isWildcard(o.Host)
}

func isWildcard(host string) bool {
	ip := net.ParseIP(host)
	return host == "" || (ip != nil && ip.IsUnspecified())
}

// Where names the node(s) of a binding for messages.
func (b Binding) Where() string {
	if b.Node == "" {
		return "every node"
	}
	return "node " + b.Node
}

// DisplayName is the component's name, for search and sorting.
func (n *NetworkComponent) DisplayName() string { return n.Name }

// Shared reports whether one configuration serves every node.
func (n *NetworkComponent) Shared() bool { return n.ShareCluster == nil || *n.ShareCluster }

// Placement is where the component runs: its shared configuration, or its cluster[]
// entries.
func (n *NetworkComponent) Placement() PerNode[NetworkConfig] {
	if n.Shared() {
		return SharedConfig(n.Configuration)
	}
	return ByNode(n.Cluster)
}

// NetworkComponents is the network component collection.
var NetworkComponents = Register(&Kind{
	Name:     "network-components",
	New:      func() Object { return new(NetworkComponent) },
	Stateful: true,
	Filters: map[string]func(Object) string{
		"type":  func(o Object) string { return o.(*NetworkComponent).Type },
		"state": func(o Object) string { return o.(*NetworkComponent).State },
	},
	Refs: map[string]func(Object) []string{"certId": func(o Object) []string { return o.(*NetworkComponent).CertIDs() }},
})

// Configs returns every configuration of the component with the dotted path of its field.
func (n *NetworkComponent) Configs() (paths []string, cfgs []*NetworkConfig) {
	if n.Shared() {
		if n.Configuration != nil {
			return []string{"configuration"}, []*NetworkConfig{n.Configuration}
		}
		return nil, nil
	}
	for i := range n.Cluster {
		paths = append(paths, fmt.Sprintf("cluster[%d].configuration", i))
		cfgs = append(cfgs, &n.Cluster[i].Configuration)
	}
	return paths, cfgs
}

// CertIDs lists the certificates the component uses, shared or per node.
func (n *NetworkComponent) CertIDs() []string {
	var ids []string
	_, cfgs := n.Configs()
	for _, c := range cfgs {
		if c.CertID != "" {
			ids = append(ids, c.CertID)
		}
	}
	return ids
}

// Transport is the socket type a component binds ("" for MQTT_CLIENT, which binds nothing).
func NetworkTransport(typ string) string {
	switch typ {
	case TypeUDP, TypeCoAPServer:
		return "udp"
	case TypeTCPServer, TypeWebSocketServer, TypeHTTPServer, TypeMQTTServer:
		return "tcp"
	}
	return ""
}

// Bindings lists the sockets the component binds when it runs.
func (n *NetworkComponent) Bindings() []Binding {
	tr := NetworkTransport(n.Type)
	if tr == "" {
		return nil
	}
	var out []Binding
	for _, p := range n.Placement().All() {
		out = append(out, Binding{Node: p.Node, Transport: tr, Host: p.Config.Host, Port: p.Config.Port})
	}
	return out
}

// Validate checks every field, fills in defaults, and reports every bad field at once.
func (n *NetworkComponent) Validate() Errors {
	var errs Errors
	ValidateID(&errs, n.ID)
	ValidateName(&errs, "name", n.Name)
	ValidateDescription(&errs, "description", n.Description)
	known := false
	for _, t := range NetworkTypes {
		known = known || n.Type == t
	}
	if !known {
		if n.Type == "" {
			errs.Add("type", "is required: one of %s", strings.Join(NetworkTypes, ", "))
		} else {
			errs.Add("type", "%q is not a network component type; use one of %s", n.Type, strings.Join(NetworkTypes, ", "))
		}
	}
	if n.ShareCluster == nil {
		shared := true
		n.ShareCluster = &shared
	}
	if n.Shared() {
		if len(n.Cluster) > 0 {
			errs.Add("cluster", "must be empty when shareCluster is true; the shared configuration serves every node")
		}
		if n.Configuration == nil {
			errs.Add("configuration", "is required when shareCluster is true")
		} else if known {
			n.Configuration.validate(&errs, "configuration", n.Type)
		}
	} else {
		if n.Configuration != nil {
			errs.Add("configuration", "must be empty when shareCluster is false; give each node its settings in cluster[]")
		}
		if len(n.Cluster) == 0 {
			errs.Add("cluster", "needs at least one {serverId, configuration} entry when shareCluster is false")
		}
		seen := map[string]int{}
		for i := range n.Cluster {
			e := &n.Cluster[i]
			path := fmt.Sprintf("cluster[%d]", i)
			validateServerID(&errs, path, e.ServerID, i, seen)
			if known {
				e.Configuration.validate(&errs, path+".configuration", n.Type)
			}
		}
	}
	ValidateState(&errs, &n.Switch)
	return errs
}

// validate checks the keys of one configuration against the component type.
func (c *NetworkConfig) validate(errs *Errors, path, typ string) {
	f := func(key string) string { return path + "." + key }
	notFor := func(key string, set bool) {
		if set {
			errs.Add(f(key), "is not a setting of %s", typ)
		}
	}
	security := "TLS"
	if typ == TypeUDP || typ == TypeCoAPServer {
		security = "DTLS"
	}
	if typ == TypeMQTTClient {
		for key, set := range map[string]bool{"host": c.Host != "", "port": c.Port != 0, "publicHost": c.PublicHost != "",
			"publicPort": c.PublicPort != 0, "privateKeyAlias": c.PrivateKeyAlias != ""} {
			notFor(key, set)
		}
		validateRemoteHost(errs, f("remoteHost"), c.RemoteHost, "the MQTT broker's host name or IP")
		validatePort(errs, f("remotePort"), c.RemotePort, true)
		if len(c.ClientID) > 256 {
			errs.Add(f("clientId"), "must be at most 256 characters")
		}
		if len(c.Username) > 256 {
			errs.Add(f("username"), "must be at most 256 characters")
		}
		if len(c.Password) > 1024 {
			errs.Add(f("password"), "must be at most 1024 characters")
		}
		if c.TopicPrefix != "" && (!strings.HasSuffix(c.TopicPrefix, "/") || strings.ContainsAny(c.TopicPrefix, "+#")) {
			errs.Add(f("topicPrefix"), "must end with '/' and hold no wildcard, like $share/group/ or $queue/")
		}
		if len(c.Topics) > MaxTopics {
			errs.Add(f("topics"), "must hold at most %d topics", MaxTopics)
		}
		for i, t := range c.Topics {
			if msg := topicFilterError(t); msg != "" {
				errs.Add(fmt.Sprintf("%s[%d]", f("topics"), i), "%s", msg)
			}
		}
		validateMaxMessageSize(errs, f("maxMessageSize"), &c.MaxMessageSize)
	} else {
		for key, set := range map[string]bool{"remoteHost": c.RemoteHost != "", "remotePort": c.RemotePort != 0,
			"clientId": c.ClientID != "", "username": c.Username != "", "password": c.Password != "",
			"topicPrefix": c.TopicPrefix != "", "topics": len(c.Topics) > 0} {
			notFor(key, set)
		}
		if c.Host == "" {
			c.Host = DefaultBindHost
		} else if net.ParseIP(c.Host) == nil {
			errs.Add(f("host"), "%q is not an IP address; give the address of a local interface, or 0.0.0.0 for all", c.Host)
		}
		validatePort(errs, f("port"), c.Port, true)
		if c.PublicHost != "" && !validHost(c.PublicHost) {
			errs.Add(f("publicHost"), "%q is not a valid host name or IP address", c.PublicHost)
		}
		validatePort(errs, f("publicPort"), c.PublicPort, false)
		if len(c.PrivateKeyAlias) > 64 {
			errs.Add(f("privateKeyAlias"), "must be at most 64 characters")
		}
	}
	if c.Secure && c.CertID == "" {
		errs.Add(f("certId"), "is required when secure is true: %s needs a certificate", security)
	} else if c.CertID != "" && !idPattern.MatchString(c.CertID) {
		errs.Add(f("certId"), "must be a certificate id")
	}

	notFor("parserType", typ != TypeTCPServer && c.ParserType != "")
	notFor("parserConfiguration", typ != TypeTCPServer && c.ParserConfiguration != nil)
	notFor("keepAliveTimeout", typ != TypeTCPServer && c.KeepAliveTimeout != 0)
	notFor("maxMessageSize", typ != TypeMQTTServer && typ != TypeMQTTClient && c.MaxMessageSize != 0)
	switch typ {
	case TypeTCPServer:
		c.validateParser(errs, f)
		if c.KeepAliveTimeout < 0 || c.KeepAliveTimeout > 86400 {
			errs.Add(f("keepAliveTimeout"), "must be 0 (never) to 86400 seconds")
		}
	case TypeMQTTServer:
		validateMaxMessageSize(errs, f("maxMessageSize"), &c.MaxMessageSize)
	}
}

func (c *NetworkConfig) validateParser(errs *Errors, f func(string) string) {
	if c.ParserType == "" {
		c.ParserType = ParserDirect
	}
	pc := c.ParserConfiguration
	if pc == nil {
		pc = &ParserConfig{}
	}
	p := func(key string) string { return f("parserConfiguration." + key) }
	needs := map[string]bool{}
	switch c.ParserType {
	case ParserDirect:
	case ParserDelimited:
		needs["delimited"] = true
		if pc.Delimited == "" {
			errs.Add(p("delimited"), "is required for DELIMITED: escaped text like \\r\\n, or hex like 0x0d0a")
		} else if _, err := ParseDelimiter(pc.Delimited); err != nil {
			errs.Add(p("delimited"), "%v", err)
		}
	case ParserFixedLength:
		needs["size"] = true
		if pc.Size < 1 || pc.Size > MaxFixedLength {
			errs.Add(p("size"), "must be from 1 to %d bytes", MaxFixedLength)
		}
	case ParserLengthField:
		needs["offset"], needs["length"], needs["little"] = true, true, true
		if pc.Offset < 0 || pc.Offset > 1024 {
			errs.Add(p("offset"), "must be from 0 to 1024 bytes")
		}
		switch pc.Length {
		case 1, 2, 3, 4, 8:
		default:
			errs.Add(p("length"), "must be 1, 2, 3, 4 or 8 bytes")
		}
	case ParserScript:
		needs["script"] = true
		if strings.TrimSpace(pc.Script) == "" {
			errs.Add(p("script"), "is required for SCRIPT: JavaScript that splits the stream")
		} else if len(pc.Script) > 64<<10 {
			errs.Add(p("script"), "must be at most 64 KiB")
		}
	default:
		errs.Add(f("parserType"), "%q is not a parser type; use DIRECT, DELIMITED, FIXED_LENGTH, LENGTH_FIELD or SCRIPT", c.ParserType)
		return
	}
	for key, set := range map[string]bool{"delimited": pc.Delimited != "", "size": pc.Size != 0, "offset": pc.Offset != 0,
		"length": pc.Length != 0, "little": pc.Little, "script": pc.Script != ""} {
		if set && !needs[key] {
			errs.Add(p(key), "is not a setting of parser %s", c.ParserType)
		}
	}
}

// ParseDelimiter turns a DELIMITED parser's setting into bytes: 0x-prefixed hex, or text
// with the escapes \r \n \t \\ \0 and \xNN.
func ParseDelimiter(s string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("is empty: give escaped text like \\r\\n, or hex like 0x0d0a")
	}
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		b, err := hex.DecodeString(s[2:])
		if err != nil || len(b) == 0 {
			return nil, fmt.Errorf("%q is not valid hex: give an even number of hex digits after 0x", s)
		}
		return b, nil
	}
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			out = append(out, s[i])
			continue
		}
		if i+1 >= len(s) {
			return nil, fmt.Errorf("%q ends with a lone backslash", s)
		}
		i++
		switch s[i] {
		case 'r':
			out = append(out, '\r')
		case 'n':
			out = append(out, '\n')
		case 't':
			out = append(out, '\t')
		case '0':
			out = append(out, 0)
		case '\\':
			out = append(out, '\\')
		case 'x':
			if i+3 > len(s) {
				return nil, fmt.Errorf("%q: \\x needs two hex digits", s)
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return nil, fmt.Errorf("%q: \\x needs two hex digits", s)
			}
			out = append(out, byte(v))
			i += 2
		default:
			return nil, fmt.Errorf("%q: unknown escape \\%c (use \\r \\n \\t \\0 \\\\ or \\xNN)", s, s[i])
		}
	}
	if len(out) > 64 {
		return nil, fmt.Errorf("must be at most 64 bytes")
	}
	return out, nil
}

func validatePort(errs *Errors, field string, port int, required bool) {
	switch {
	case port == 0 && required:
		errs.Add(field, "is required: a port from 1 to 65535")
	case port < 0 || port > 65535:
		errs.Add(field, "must be from 1 to 65535 (got %d)", port)
	}
}

func validateMaxMessageSize(errs *Errors, field string, size *int) {
	if *size == 0 {
		*size = DefaultMaxMessageSize
	}
	if *size < 64 || *size > MaxMQTTMessageSize {
		errs.Add(field, "must be from 64 to %d bytes", MaxMQTTMessageSize)
	}
}

// validateRemoteHost checks a required address of a remote peer.
func validateRemoteHost(errs *Errors, field, host, what string) {
	switch {
	case host == "":
		errs.Add(field, "is required: %s", what)
	case !validHost(host):
		errs.Add(field, "%q is not a valid host name or IP address", host)
	}
}

var hostnamePattern = regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$`)

// validHost accepts an IP address or a DNS host name.
func validHost(h string) bool {
	return net.ParseIP(h) != nil || (len(h) <= 253 && hostnamePattern.MatchString(h))
}

// topicFilterError checks an MQTT topic filter (MQTT 5 §4.7).
func topicFilterError(t string) string {
	if t == "" {
		return "must not be empty"
	}
	if len(t) > 65535 {
		return "is longer than MQTT allows"
	}
	levels := strings.Split(t, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return "'#' must be a whole level and the last one"
		}
		if strings.Contains(l, "+") && l != "+" {
			return "'+' must be a whole level"
		}
	}
	return ""
}
