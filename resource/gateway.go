package resource

import (
	"fmt"
	"net"
	"regexp"
	"strings"
)

// Gateway providers (设备接入网关), grouped as the manual's cards.
const (
	ProviderMQTTServer    = "mqtt-server-gateway"
	ProviderMQTTClient    = "mqtt-client-gateway"
	ProviderTCPServer     = "tcp-server-gateway"
	ProviderUDP           = "udp-device-gateway"
	ProviderCoAPServer    = "coap-server-gateway"
	ProviderHTTPServer    = "http-server-gateway"
	ProviderWebSocket     = "websocket-server"
	ProviderGB28181       = "gb28181-2016"
	ProviderCtwing        = "Ctwing"
	ProviderOneNet        = "OneNet"
	ProviderModbusTCP     = "modbus-tcp"
	ProviderOfficialEdge  = "official-edge-gateway"
	ChannelNetwork        = "network"
	ChannelSIP            = "sip"
	ChannelCloud          = "cloud"
	ChannelModbus         = "modbus"
	DefaultPollIntervalMs = 1000
	// DefaultKeepOnlineSeconds: how long a connectionless device stays online after its
	// last message.
	DefaultKeepOnlineSeconds = 600
	// Values of GatewayConfig.BinaryDeviceID.
	BinaryDeviceIDTyped   = "typed"
	BinaryDeviceIDUntyped = "untyped"
)

// GatewayProvider says what a provider needs and what it derives.
type GatewayProvider struct {
	Name string
	// Card is the manual's group: custom, video, cloud, channel or official.
	Card string
	// Component is the network component type its channelId must name ("" when none).
	Component string
	// ComponentOptional: official-edge-gateway may run without a component.
	ComponentOptional bool
	// Transport and Channel are derived onto the gateway.
	Transport, Channel string
	// Protocol: "required", "none", or a fixed protocol id.
	Protocol string
}

// GatewayProviders lists every provider in the manual's order.
var GatewayProviders = []GatewayProvider{
	{ProviderMQTTServer, "custom", TypeMQTTServer, false, "MQTT", ChannelNetwork, "required"},
	{ProviderMQTTClient, "custom", TypeMQTTClient, false, "MQTT", ChannelNetwork, "required"},
	{ProviderTCPServer, "custom", TypeTCPServer, false, "TCP", ChannelNetwork, "required"},
	{ProviderUDP, "custom", TypeUDP, false, "UDP", ChannelNetwork, "required"},
	{ProviderCoAPServer, "custom", TypeCoAPServer, false, "CoAP", ChannelNetwork, "required"},
	{ProviderHTTPServer, "custom", TypeHTTPServer, false, "HTTP", ChannelNetwork, "required"},
	{ProviderWebSocket, "custom", TypeWebSocketServer, false, "WebSocket", ChannelNetwork, "required"},
	{ProviderGB28181, "video", "", false, "SIP", ChannelSIP, "none"},
	{ProviderCtwing, "cloud", "", false, "HTTP", ChannelCloud, "required"},
	{ProviderOneNet, "cloud", "", false, "HTTP", ChannelCloud, "required"},
	{ProviderModbusTCP, "channel", "", false, "ModbusTCP", ChannelModbus, "none"},
	{ProviderOfficialEdge, "official", TypeMQTTServer, true, "MQTT", ChannelNetwork, OfficialProtocolID},
}

// ProviderByName finds a provider.
func ProviderByName(name string) (GatewayProvider, bool) {
	for _, p := range GatewayProviders {
		if p.Name == name {
			return p, true
		}
	}
	return GatewayProvider{}, false
}

// Gateway is a device access gateway (设备接入网关): how devices of some products reach the
// platform — a network component plus a protocol, a SIP server, a cloud platform's push
// callbacks, or a Modbus channel.
type Gateway struct {
	Meta
	Name     string `json:"name"`
	Provider string `json:"provider"`
	// Channel and Transport are derived from the provider; read-only.
	Channel       string         `json:"channel"`
	ChannelID     string         `json:"channelId,omitempty"`
	Protocol      string         `json:"protocol,omitempty"`
	Transport     string         `json:"transport"`
	Configuration *GatewayConfig `json:"configuration,omitempty"`
	// CallbackURL is where a cloud platform pushes device data (接口地址); read-only.
	CallbackURL string `json:"callbackUrl,omitempty"`
	Description string `json:"description,omitempty"`
	Switch
}

// GatewayConfig holds the settings of the providers that need more than a component and
// a protocol; which keys a provider accepts is checked by Validate.
type GatewayConfig struct {
	// gb28181-2016 (信令配置).
	Domain       string          `json:"domain,omitempty"`
	SIPID        string          `json:"sipId,omitempty"`
	ShareCluster *bool           `json:"shareCluster,omitempty"`
	Cluster      []NodeSIPConfig `json:"cluster,omitempty"`
	// gb28181-2016 (bind address) and modbus-tcp (the device's address).
	Host       string `json:"host,omitempty"`
	Port       int    `json:"port,omitempty"`
	PublicHost string `json:"publicHost,omitempty"`
	PublicPort int    `json:"publicPort,omitempty"`
	Password   string `json:"password,omitempty" secret:"true"`

	// Ctwing.
	AppKey    string `json:"appKey,omitempty"`
	AppSecret string `json:"appSecret,omitempty" secret:"true"`
	// OneNet.
	APIKey      string `json:"apiKey,omitempty" secret:"true"`
	NotifyToken string `json:"notifyToken,omitempty" secret:"true"`
	AESKey      string `json:"aesKey,omitempty" secret:"true"`
	// APIURL overrides the cloud platform's API base URL for downlinks.
	APIURL string `json:"apiUrl,omitempty"`

	// KeepOnlineSeconds: HTTP, CoAP and UDP devices are online until silent this long
	// (SPEC §5.2; default DefaultKeepOnlineSeconds).
	KeepOnlineSeconds int `json:"keepOnlineSeconds,omitempty"`
	// BinaryDeviceID is how TCP and UDP devices of the official protocol write the
	// deviceId of a binary message: "typed" (SPEC §5.2, the default) or "untyped" (a
	// bare uint16 length and UTF-8, what jetlinks-official-protocol writes since its 3.0
	// releases). The bytes cannot tell the two apart, so a gateway speaks one.
	BinaryDeviceID string `json:"binaryDeviceId,omitempty"`

	// modbus-tcp.
	UnitID         int           `json:"unitId,omitempty"`
	PollIntervalMs int           `json:"pollIntervalMs,omitempty"`
	Points         []ModbusPoint `json:"points,omitempty"`
}

// NodeSIPConfig is one node's SIP address when a GB28181 gateway is not shared.
type NodeSIPConfig = NodeConfig[SIPNodeConfig]

// SIPNodeConfig is where one node's SIP server listens.
type SIPNodeConfig struct {
	Host       string `json:"host,omitempty"`
	Port       int    `json:"port"`
	PublicHost string `json:"publicHost,omitempty"`
	PublicPort int    `json:"publicPort,omitempty"`
}

// ModbusPoint is one value a Modbus channel polls and reports as a property.
type ModbusPoint struct {
	Property string  `json:"property"`
	Name     string  `json:"name,omitempty"`
	Area     string  `json:"area"` // coil, discrete, holding, input
	Address  int     `json:"address"`
	DataType string  `json:"dataType"`
	Scale    float64 `json:"scale,omitempty"`
}

var (
	sipIDPattern    = regexp.MustCompile(`^([0-9]{16}|[0-9]{20})$`)
	sipDomain       = regexp.MustCompile(`^[A-Za-z0-9.-]{1,64}$`)
	propertyPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
	modbusAreas     = map[string]bool{"coil": true, "discrete": true, "holding": true, "input": true}
	modbusTypes     = map[string]int{"bool": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "int64": 4, "uint64": 4, "float64": 4}
)

// DisplayName is the gateway's name, for search and sorting.
func (g *Gateway) DisplayName() string { return g.Name }

// Gateways is the gateway collection.
var Gateways = Register(&Kind{
	Name:     "gateways",
	New:      func() Object { return new(Gateway) },
	Stateful: true,
	Filters: map[string]func(Object) string{
		"provider":  func(o Object) string { return o.(*Gateway).Provider },
		"state":     func(o Object) string { return o.(*Gateway).State },
		"channelId": func(o Object) string { return o.(*Gateway).ChannelID },
		"protocol":  func(o Object) string { return o.(*Gateway).Protocol },
	},
	Refs: map[string]func(Object) []string{
		"channelId": func(o Object) []string { return nonEmpty(o.(*Gateway).ChannelID) },
		"protocol":  func(o Object) []string { return nonEmpty(o.(*Gateway).Protocol) },
	},
})

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// KeepOnline is how long a connectionless device of the gateway stays online.
func (g *Gateway) KeepOnline() int {
	if g.Configuration != nil && g.Configuration.KeepOnlineSeconds > 0 {
		return g.Configuration.KeepOnlineSeconds
	}
	return DefaultKeepOnlineSeconds
}

// CallbackPath is where a cloud gateway's pushes arrive, on any node.
func CallbackPath(gatewayID string) string { return "/api/v1/callbacks/" + gatewayID }

// SIPPlacement is where a GB28181 gateway's SIP server runs: the shared address of its
// configuration, or its cluster[] entries.
func (c *GatewayConfig) SIPPlacement() PerNode[SIPNodeConfig] {
	if c.ShareCluster == nil || *c.ShareCluster {
		return SharedConfig(&SIPNodeConfig{Host: c.Host, Port: c.Port, PublicHost: c.PublicHost, PublicPort: c.PublicPort})
	}
	return ByNode(c.Cluster)
}

// Bindings lists the SIP sockets (UDP and TCP) a GB28181 gateway binds when it runs.
func (g *Gateway) Bindings() []Binding {
	if g.Provider != ProviderGB28181 || g.Configuration == nil {
		return nil
	}
	var out []Binding
	for _, p := range g.Configuration.SIPPlacement().All() {
		out = append(out, Binding{Node: p.Node, Transport: "udp", Host: p.Config.Host, Port: p.Config.Port},
			Binding{Node: p.Node, Transport: "tcp", Host: p.Config.Host, Port: p.Config.Port})
	}
	return out
}

// Validate checks every field for the gateway's provider, derives transport, channel and
// callbackUrl, and reports every bad field at once.
func (g *Gateway) Validate() Errors {
	var errs Errors
	ValidateID(&errs, g.ID)
	ValidateName(&errs, "name", g.Name)
	ValidateDescription(&errs, "description", g.Description)
	ValidateState(&errs, &g.Switch)
	p, ok := ProviderByName(g.Provider)
	if !ok {
		names := make([]string, len(GatewayProviders))
		for i, p := range GatewayProviders {
			names[i] = p.Name
		}
		if g.Provider == "" {
			errs.Add("provider", "is required: one of %s", strings.Join(names, ", "))
		} else {
			errs.Add("provider", "%q is not a gateway provider; use one of %s", g.Provider, strings.Join(names, ", "))
		}
		return errs
	}
	g.Transport, g.Channel, g.CallbackURL = p.Transport, p.Channel, ""

	switch {
	case p.Component == "" && g.ChannelID != "":
		errs.Add("channelId", "is not used by provider %s", p.Name)
	case p.Component != "" && g.ChannelID == "" && !p.ComponentOptional:
		errs.Add("channelId", "is required: the id of a %s network component", p.Component)
	case g.ChannelID != "" && !idPattern.MatchString(g.ChannelID):
		errs.Add("channelId", "must be a network component id")
	}
	switch p.Protocol {
	case "required":
		if g.Protocol == "" {
			errs.Add("protocol", "is required: the id of the protocol that decodes this gateway's messages")
		} else if !idPattern.MatchString(g.Protocol) {
			errs.Add("protocol", "must be a protocol id")
		}
	case "none":
		if g.Protocol != "" {
			errs.Add("protocol", "is not used by provider %s", p.Name)
		}
	default:
		if g.Protocol == "" {
			g.Protocol = p.Protocol
		} else if g.Protocol != p.Protocol {
			errs.Add("protocol", "is fixed to %q for provider %s", p.Protocol, p.Name)
		}
	}

	c := g.Configuration
	if c == nil {
		c = &GatewayConfig{}
	}
	allowed := map[string]bool{}
	req := func(field, value, what string) {
		if value == "" {
			errs.Add("configuration."+field, "is required: %s", what)
		} else if len(value) > 1024 {
			errs.Add("configuration."+field, "must be at most 1024 characters")
		}
		allowed[field] = true
	}
	switch g.Provider {
	case ProviderGB28181:
		c.validateSIP(&errs, allowed)
	case ProviderCtwing:
		req("appKey", c.AppKey, "the APP Key of the Ctwing application")
		req("appSecret", c.AppSecret, "the appSecret of the Ctwing application")
		c.validateAPIURL(&errs, allowed)
		g.CallbackURL = CallbackPath(g.ID)
	case ProviderOneNet:
		req("apiKey", c.APIKey, "the API key of the OneNet product")
		req("notifyToken", c.NotifyToken, "the token OneNet signs its pushes with")
		req("aesKey", c.AESKey, "the key OneNet encrypts its pushes with")
		c.validateAPIURL(&errs, allowed)
		g.CallbackURL = CallbackPath(g.ID)
	case ProviderModbusTCP:
		c.validateModbus(&errs, allowed)
	case ProviderHTTPServer, ProviderCoAPServer, ProviderUDP, ProviderTCPServer:
		if g.Provider != ProviderTCPServer {
			allowed["keepOnlineSeconds"] = true
			if c.KeepOnlineSeconds < 0 || c.KeepOnlineSeconds > 86400*30 {
				errs.Add("configuration.keepOnlineSeconds", "must be from 1 to 2592000 seconds (0 or absent: %d)", DefaultKeepOnlineSeconds)
			}
		}
		if g.Provider == ProviderTCPServer || g.Provider == ProviderUDP {
			allowed["binaryDeviceId"] = true
			if c.BinaryDeviceID != "" && c.BinaryDeviceID != BinaryDeviceIDTyped && c.BinaryDeviceID != BinaryDeviceIDUntyped {
				errs.Add("configuration.binaryDeviceId", "must be %q (SPEC §5.2, the default) or %q (jetlinks-official-protocol 3.x devices)", BinaryDeviceIDTyped, BinaryDeviceIDUntyped)
			}
		}
	}
	anySet := false
	for key, set := range c.setKeys() {
		if set && !allowed[key] {
			errs.Add("configuration."+key, "is not a setting of provider %s", g.Provider)
		}
		anySet = anySet || set
	}
	g.Configuration = c
	if len(allowed) == 0 || !anySet {
		// No settings: no configuration object in answers, as before any was allowed.
		g.Configuration = nil
	}
	return errs
}

func (c *GatewayConfig) setKeys() map[string]bool {
	return map[string]bool{"domain": c.Domain != "", "sipId": c.SIPID != "", "shareCluster": c.ShareCluster != nil,
		"cluster": len(c.Cluster) > 0, "host": c.Host != "", "port": c.Port != 0, "publicHost": c.PublicHost != "",
		"publicPort": c.PublicPort != 0, "password": c.Password != "", "appKey": c.AppKey != "", "appSecret": c.AppSecret != "",
		"apiKey": c.APIKey != "", "notifyToken": c.NotifyToken != "", "aesKey": c.AESKey != "", "apiUrl": c.APIURL != "",
		"keepOnlineSeconds": c.KeepOnlineSeconds != 0, "binaryDeviceId": c.BinaryDeviceID != "", "unitId": c.UnitID != 0, "pollIntervalMs": c.PollIntervalMs != 0, "points": len(c.Points) > 0}
}

func (c *GatewayConfig) validateAPIURL(errs *Errors, allowed map[string]bool) {
	allowed["apiUrl"] = true
	if c.APIURL != "" && !strings.HasPrefix(c.APIURL, "http://") && !strings.HasPrefix(c.APIURL, "https://") {
		errs.Add("configuration.apiUrl", "must be an http:// or https:// URL")
	}
}

func (c *GatewayConfig) validateSIP(errs *Errors, allowed map[string]bool) {
	for _, k := range []string{"domain", "sipId", "shareCluster", "cluster", "host", "port", "publicHost", "publicPort", "password"} {
		allowed[k] = true
	}
	if !sipIDPattern.MatchString(c.SIPID) {
		errs.Add("configuration.sipId", "must be 16 or 20 digits (GB/T 28181-2016)")
	}
	if c.Domain == "" && len(c.SIPID) >= 10 {
		c.Domain = c.SIPID[:10] // the usual SIP domain: the first 10 digits of the SIP ID
	}
	if !sipDomain.MatchString(c.Domain) {
		errs.Add("configuration.domain", "must be 1-64 letters, digits, '.' or '-' (usually the first 10 digits of sipId)")
	}
	if len(c.Password) > 256 {
		errs.Add("configuration.password", "must be at most 256 characters")
	}
	if c.ShareCluster == nil {
		shared := true
		c.ShareCluster = &shared
	}
	addr := func(path string, host *string, port, publicPort int, publicHost string) {
		if *host == "" {
			*host = DefaultBindHost
		} else if net.ParseIP(*host) == nil {
			errs.Add(path+"host", "%q is not an IP address; give a local interface's address, or 0.0.0.0 for all", *host)
		}
		validatePort(errs, path+"port", port, true)
		if publicHost != "" && !validHost(publicHost) {
			errs.Add(path+"publicHost", "%q is not a valid host name or IP address", publicHost)
		}
		validatePort(errs, path+"publicPort", publicPort, false)
	}
	if *c.ShareCluster {
		if len(c.Cluster) > 0 {
			errs.Add("configuration.cluster", "must be empty when shareCluster is true")
		}
		addr("configuration.", &c.Host, c.Port, c.PublicPort, c.PublicHost)
		return
	}
	if c.Host != "" || c.Port != 0 || c.PublicHost != "" || c.PublicPort != 0 {
		errs.Add("configuration.host", "host, port, publicHost and publicPort go in cluster[] when shareCluster is false")
	}
	if len(c.Cluster) == 0 {
		errs.Add("configuration.cluster", "needs at least one {serverId, configuration} entry when shareCluster is false")
	}
	seen := map[string]int{}
	for i := range c.Cluster {
		e := &c.Cluster[i]
		path := fmt.Sprintf("configuration.cluster[%d]", i)
		validateServerID(errs, path, e.ServerID, i, seen)
		ec := &e.Configuration
		addr(path+".configuration.", &ec.Host, ec.Port, ec.PublicPort, ec.PublicHost)
	}
}

func (c *GatewayConfig) validateModbus(errs *Errors, allowed map[string]bool) {
	for _, k := range []string{"host", "port", "unitId", "pollIntervalMs", "points"} {
		allowed[k] = true
	}
	validateRemoteHost(errs, "configuration.host", c.Host, "the Modbus TCP device's host name or IP")
	if c.Port == 0 {
		c.Port = 502
	}
	validatePort(errs, "configuration.port", c.Port, true)
	if c.UnitID < 0 || c.UnitID > 255 {
		errs.Add("configuration.unitId", "must be from 0 to 255")
	}
	if c.PollIntervalMs == 0 {
		c.PollIntervalMs = DefaultPollIntervalMs
	}
	if c.PollIntervalMs < 100 || c.PollIntervalMs > 3600000 {
		errs.Add("configuration.pollIntervalMs", "must be from 100 to 3600000 milliseconds")
	}
	if len(c.Points) > 1000 {
		errs.Add("configuration.points", "must hold at most 1000 points")
	}
	seen := map[string]bool{}
	for i, pt := range c.Points {
		path := fmt.Sprintf("configuration.points[%d].", i)
		if !propertyPattern.MatchString(pt.Property) {
			errs.Add(path+"property", "must be a property id: a letter or '_' then up to 63 letters, digits or '_'")
		} else if seen[pt.Property] {
			errs.Add(path+"property", "%q is polled twice", pt.Property)
		}
		seen[pt.Property] = true
		if !modbusAreas[pt.Area] {
			errs.Add(path+"area", "must be coil, discrete, holding or input")
		}
		regs, ok := modbusTypes[pt.DataType]
		switch {
		case !ok:
			errs.Add(path+"dataType", "must be one of bool, int16, uint16, int32, uint32, float32, int64, uint64, float64")
		case (pt.Area == "coil" || pt.Area == "discrete") && pt.DataType != "bool":
			errs.Add(path+"dataType", "must be bool for %s points", pt.Area)
		case pt.Address < 0 || pt.Address+regs-1 > 65535:
			errs.Add(path+"address", "must be from 0 to %d for %s", 65536-regs, pt.DataType)
		}
		if len(pt.Name) > MaxNameLen {
			errs.Add(path+"name", "must be at most %d characters", MaxNameLen)
		}
	}
}
