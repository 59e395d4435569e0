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
// mochi is used through its exported surface only: its packets, its Client (reading,
// writing, parsing a CONNECT), its packet processing (InjectPacket, but for a QoS 0
// PUBLISH, which is validated with mochi's own checks and handed to the Session
// directly: server.publishQoS0) and a hook, driven by
// our own accept loop and our own per-connection loop (server.serve) instead of its
// listeners and EstablishConnection. The accept loop exists because mochi's returns on
// the first accept error (EMFILE included) and never accepts again, because mochi closes
// only the clients that finished CONNECT when it stops, and because it puts no deadline
// on a connection before its CONNECT. Each connection is tracked by its own *mochi.Client
// (never by client id: when an id reconnects, the old connection ends after the new one
// is admitted), and takeover is ours (server.takeOver), as mochi's was unreliable (mochi
// issues #246 and #483).
//
// # Memory per connection
//
// SPEC §6 B4 allows 10 KiB per idle authenticated connection. mochi's defaults cost 89
// KiB (69 KiB of heap, most of it an 8192-slot outbound channel, and 20 KiB of stacks:
// a read loop waiting deep in attachClient, 16 KiB, and a write loop, 4 KiB) and let a
// 5-byte fixed header claim a 256 MiB packet. Here, measured by MeasureIdleConnections
// from 1,000 to 9,900 connections (the open-file limit), an idle connection costs about
// 7.3 KiB, client socket included:
//   - one goroutine (server.serve), no write loop: nothing is routed, so mochi's outbound
//     queue has no slots and a downlink is written by the sender (Conn.Send);
//   - its stack is 4 KiB once the GC has shrunk it (it halves a stack that uses under a
//     quarter of itself, once per cycle), whatever depth the CONNECT or the handler
//     reached, because the wait for the next packet is shallow (about 1.1 KiB plus the
//     runtime's 800-byte guard, against 2 KiB allowed: keep that loop lean). Under TLS
//     (tls.Conn's Read is 0.8 KiB deeper) and under the race detector (double guard) an
//     idle stack stays at 8 KiB;
//   - about 3.3 KiB of heap, mostly mochi's Client and its maps, our conn and its tap,
//     and the runtime's goroutine descriptor: no read buffer is held while idle
//     (socketReader borrows one from a pool only while bytes are unread), the packet
//     limit is the component's maxMessageSize (checked from the fixed header, before
//     anything is allocated) and sessions are not kept.
//
// A TLS connection costs more (tls.Conn keeps its record buffers): about 16 KiB of heap
// for both ends of a test connection, plus the 8 KiB stack; B4 measures plain MQTT.
package mqtt
