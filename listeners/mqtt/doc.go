// Package mqtt owns the MQTT_SERVER listener: one embedded mochi-mqtt broker per component
// (MQTT 3.1, 3.1.1 and 5.0, TLS when secure) whose CONNECTs go to the Handler and whose
// PUBLISHes become Frames; it must not know what a device, a gateway or a protocol is, nor
// touch any other component's sockets.
//
// # What the broker is and is not
//
// The broker is an entry point, not a router: a device's PUBLISH goes to its Session and
// to nobody else (no retained messages, no wills, no $SYS topics), and a downlink
// (Conn.Send) is written to that one client at QoS 0 whether or not it subscribed. So one
// device can never read another's traffic, and the memory of a connection does not depend
// on what the others do.
//
// mochi is used through its exported surface only: EstablishConnection, driven by our own
// accept loop, and a hook. The accept loop exists because mochi's returns on the first
// accept error (EMFILE included) and never accepts again, because mochi closes only the
// clients that finished CONNECT when it stops, and because it puts no deadline on a
// connection before its CONNECT. Each connection is tracked by its own *mochi.Client
// (never by client id: when an id reconnects, mochi ends the old connection after the new
// one is admitted, mochi issues #246 and #483).
//
// # Memory per connection
//
// mochi's defaults cost 89 KiB per idle connection (measured: 69 KiB of heap, most of it
// an 8192-slot outbound channel, and 20 KiB of stacks) and let a 5-byte fixed header
// claim a 256 MiB packet. Here the packet limit is the component's maxMessageSize
// (checked from the fixed header, before anything is allocated), sessions are not kept,
// the queues are small and the read buffer is 1 KiB: an idle connection costs about
// 5 KiB of heap. The stacks stay: mochi runs two goroutines per client (its read loop,
// 16 KiB once a CONNECT has been handled, and an idle write loop, 4 KiB), about 25 KiB in
// all, flat from 1,000 to 10,000 connections (MeasureIdleConnections). Reaching 10 KiB
// needs our own read loop on mochi's packets package: no write-loop goroutine, and a
// goroutine that parks shallow enough between packets for the GC to shrink its stack.
package mqtt
