package listeners

import (
	"context"
	"fmt"
)

// NoGateway is the handler of a component no enabled gateway uses (SPEC §4.3.1): it
// refuses MQTT connections and HTTP and CoAP requests, and admits TCP, UDP and WebSocket
// connections and MQTT_CLIENT's own broker connection, whose messages it drops (the debug stream still shows them, so an ops user
// can check a device's framing before any gateway exists).
type NoGateway struct{}

func (NoGateway) Open(_ context.Context, c Conn) (Session, error) {
	info := c.Info()
	switch {
	case info.Outbound:
		return dropAll{}, nil // MQTT_CLIENT: stay subscribed, so the debug stream shows traffic
	case info.Transport == TransportTCP, info.Transport == TransportUDP, info.Transport == TransportWebSocket:
		return dropAll{}, nil
	}
	return nil, ErrNoGateway
}

type dropAll struct{}

func (dropAll) Receive(context.Context, Frame) (*Reply, error) {
	return nil, fmt.Errorf("%w: %w", ErrDropped, ErrNoGateway)
}

func (dropAll) Closed(string) {}
