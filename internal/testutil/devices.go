package testutil

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/protocol"
	"github.com/linkops/linkops/protocol/official"
)

// Product is a product created for device tests, with its official credentials.
type Product struct {
	ID, SecureID, SecureKey, GatewayID string
}

// CreateProductWithDevices creates a product of gateway with the given devices.
func CreateProductWithDevices(t testing.TB, admin *client.Client, id, gatewayID string, devices ...string) Product {
	t.Helper()
	return CreateProductWithKey(t, admin, id, gatewayID, id+"-secure-key-0123", devices...)
}

// Do sends one API request and fails the test on an error; a 503 no_leader (an election
// on a loaded machine: nothing was applied) is asked again.
func Do(t testing.TB, admin *client.Client, method, path string, body, out any) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := admin.Do(context.Background(), method, path, body, out)
		if err == nil {
			return
		}
		if p, ok := err.(*client.Problem); !ok || p.Code != "no_leader" || time.Now().After(deadline) {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// MQTTDevice is a simulated JetLinks device speaking the official protocol over MQTT
// with a real client (paho): it reports, and it answers reads, writes and function calls
// the way a device would, unless Silent.
type MQTTDevice struct {
	ID      string
	Product Product
	Client  paho.Client

	mu sync.Mutex
	// Silent devices never answer downlinks.
	Silent bool
	// Values is what reads answer; writes change it.
	Values map[string]any
	// Received lists every downlink, decoded; Raw their payloads as sent.
	Received []protocol.Message
	Raw      [][]byte
	got      chan protocol.Message
	// onOther receives the downlinks this type does not answer itself (firmware upgrades,
	// pull answers): see OTADevice.
	onOther func(protocol.Message)
}

// MQTTOptions are paho options for an official device; plain selects the plain mode.
func MQTTOptions(addr, deviceID string, p Product, plain bool) *paho.ClientOptions {
	user, pass := official.SignMQTT(p.SecureID, p.SecureKey, time.Now())
	if plain {
		user, pass = p.SecureID, p.SecureKey
	}
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(deviceID).SetUsername(user).SetPassword(pass)
	o.SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(10 * time.Second).SetCleanSession(true)
	o.SetProtocolVersion(4)
	return o
}

// ConnectMQTTDevice connects an official device to the MQTT_SERVER at addr (host:port).
func ConnectMQTTDevice(t testing.TB, addr, deviceID string, p Product) *MQTTDevice {
	t.Helper()
	d, err := DialMQTTDevice(addr, deviceID, p, MQTTOptions(addr, deviceID, p, false))
	if err != nil {
		t.Fatalf("device %s connecting to %s: %v", deviceID, addr, err)
	}
	t.Cleanup(d.Close)
	return d
}

// DialMQTTDevice connects a device with the given options.
func DialMQTTDevice(addr, deviceID string, p Product, o *paho.ClientOptions) (*MQTTDevice, error) {
	d := &MQTTDevice{ID: deviceID, Product: p, Values: map[string]any{}, got: make(chan protocol.Message, 100)}
	o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { d.handle(m.Topic(), m.Payload()) })
	d.Client = paho.NewClient(o)
	tok := d.Client.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		return nil, fmt.Errorf("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	return d, nil
}

// Close disconnects.
func (d *MQTTDevice) Close() {
	if d.Client.IsConnected() {
		d.Client.Disconnect(100)
	}
}

// Report publishes a property report.
func (d *MQTTDevice) Report(t testing.TB, props map[string]any) {
	t.Helper()
	d.Publish(t, protocol.Message{Type: protocol.TypeReportProperty, MessageID: fmt.Sprint(time.Now().UnixNano()), Properties: props})
}

// Publish sends one up message.
func (d *MQTTDevice) Publish(t testing.TB, m protocol.Message) {
	t.Helper()
	m.DeviceID = d.ID
	topic, payload, err := official.EncodeUpJSON(d.Product.ID, m)
	if err != nil {
		t.Fatal(err)
	}
	tok := d.Client.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// handle answers a downlink like a device.
func (d *MQTTDevice) handle(topic string, payload []byte) {
	m, err := official.DecodeDownJSON(topic, payload)
	if err != nil {
		return
	}
	d.mu.Lock()
	d.Received = append(d.Received, m)
	d.Raw = append(d.Raw, append([]byte(nil), payload...))
	silent := d.Silent
	reply := protocol.Message{MessageID: m.MessageID, DeviceID: d.ID, Success: protocol.Bool(true)}
	switch m.Type {
	case protocol.TypeReadProperty:
		reply.Type, reply.Properties = protocol.TypeReadPropertyReply, map[string]any{}
		for _, k := range m.PropertyNames {
			reply.Properties[k] = d.Values[k]
		}
	case protocol.TypeWriteProperty:
		reply.Type = protocol.TypeWritePropertyReply
		for k, v := range m.Properties {
			d.Values[k] = v
		}
		reply.Properties = m.Properties
	case protocol.TypeInvokeFunction:
		reply.Type, reply.Output = protocol.TypeInvokeFunctionReply, map[string]any{"function": m.FunctionID, "inputs": m.Inputs}
	default:
		silent = true
	}
	other := d.onOther
	d.mu.Unlock()
	if other != nil && silent && m.Type != protocol.TypeReadProperty && m.Type != protocol.TypeWriteProperty && m.Type != protocol.TypeInvokeFunction {
		go other(m)
	}
	select {
	case d.got <- m:
	default:
	}
	if silent {
		return
	}
	topic, payload, err = official.EncodeUpJSON(d.Product.ID, reply)
	if err == nil {
		d.Client.Publish(topic, 0, false, payload)
	}
}

// LastRaw is the payload of the last downlink received.
func (d *MQTTDevice) LastRaw() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.Raw) == 0 {
		return nil
	}
	return d.Raw[len(d.Raw)-1]
}

// SetSilent makes the device stop (or resume) answering.
func (d *MQTTDevice) SetSilent(v bool) {
	d.mu.Lock()
	d.Silent = v
	d.mu.Unlock()
}

// NextDownlink waits for the next downlink the device receives.
func (d *MQTTDevice) NextDownlink(t testing.TB) protocol.Message {
	t.Helper()
	select {
	case m := <-d.got:
		return m
	case <-time.After(20 * time.Second):
		t.Fatalf("device %s received no downlink", d.ID)
	}
	return protocol.Message{}
}

// Device is a device answer of the API.
type Device struct {
	ID              string         `json:"id"`
	State           string         `json:"state"`
	ServerID        string         `json:"serverId"`
	Properties      map[string]any `json:"properties"`
	Missing         []string       `json:"missing"`
	Index           uint64         `json:"index"`
	OnlineAt        *time.Time     `json:"onlineAt"`
	LastMessageAt   *time.Time     `json:"lastMessageAt"`
	FirmwareVersion string         `json:"firmwareVersion"`
}

// GetDevice reads a device through c.
func GetDevice(t testing.TB, c *client.Client, id string) Device {
	t.Helper()
	var d Device
	Do(t, c, http.MethodGet, "/api/v1/devices/"+id, nil, &d)
	return d
}

// WaitDevice polls a device through c until ok holds, failing after 30 s with the last
// answer.
func WaitDevice(t testing.TB, c *client.Client, id string, what string, ok func(Device) bool) Device {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		d := GetDevice(t, c, id)
		if ok(d) {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("device %s never became %s through %s: last %+v", id, what, c.Addr, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// DialMQTTDeviceWhenAccepted connects an official device, asking again while it is refused
// (a gateway enabled a moment ago reaches each node's table within a second); it is
// disconnected when the test ends.
func DialMQTTDeviceWhenAccepted(t testing.TB, addr, id string, p Product) *MQTTDevice {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		d, err := DialMQTTDevice(addr, id, p, MQTTOptions(addr, id, p, false))
		if err == nil {
			t.Cleanup(d.Close)
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still refused by %s: %v", id, addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
