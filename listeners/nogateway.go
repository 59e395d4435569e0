package listeners

import (
	"context"
	"fmt"
)

// NoGateway is the handler of a component no enabled gateway uses (SPEC §4.3.1): it
// refuses MQTT connections and HTTP and CoAP requests, and admits TCP, UDP and WebSocket
// connections whose messages it drops (the debug stream still shows them, so an ops user
// can check a device's framing before any gateway exists).
type NoGateway struct{}

func (NoGateway) Open(_ context.Context, c Conn) (Session, error) {
	switch c.Info().Transport {
	case TransportTCP, TransportUDP, TransportWebSocket:
		return dropAll{}, nil
	}
	return nil, ErrNoGateway
}

type dropAll struct{}

func (dropAll) Receive(context.Context, Frame) (*Reply, error) {
	return nil, fmt.Errorf("%w: %w", ErrDropped, ErrNoGateway)
}

func (dropAll) Closed(string) {}
