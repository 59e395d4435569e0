// Package mqttclient owns the MQTT_CLIENT component type on the wire: one outgoing MQTT
// 3.1.1 connection (eclipse/paho.mqtt.golang) to a broker the component names, checked
// against --allow-remote, whose subscriptions are the component's messages and whose
// publishes are its downlinks. It must not touch devices, gateways, raft or other
// listener types.
//
// # One Serve, one broker connection
//
// Serve resolves the broker's host, refuses it unless every address is inside
// --allow-remote (Spec.AllowRemote), dials only the addresses it checked (never the name
// again, so a DNS answer that changes in between cannot steer it elsewhere), connects
// with client id <clientId>-<nodeId> (so the nodes of a shared component never take over
// each other's session), hands the connection to env.Open, subscribes to topicPrefix +
// topic for every topic, and only then calls env.Bound with the broker's ip:port. It
// returns nil when ctx ends (after a clean DISCONNECT) and an error in every other case:
// the broker cannot be reached or refuses the CONNECT, the handler refuses the
// connection, the broker refuses a subscription, the connection is lost, or the handler
// closes it.
//
// Reconnecting is therefore the supervisor's job, not paho's: a lost connection ends
// Serve with an error, the status shows `failed` with that error until a new Serve is
// connected again (`running`, with the broker's address), and the supervisor's backoff
// (capped at 5 s) paces the attempts. Each attempt resolves and checks the host again and
// subscribes again (clean session). paho's own AutoReconnect would keep the status
// `running` while nothing is connected, which SPEC §4.3 forbids.
//
// # Key decisions and trade-offs
//
//   - Subscriptions are QoS 0, like downlinks: a message is delivered at most once and
//     never redelivered after a reconnect. In exchange an oversized message can be
//     skipped on the wire without an acknowledgement being owed for it, and nothing is
//     kept per message: a broker must not deliver above the subscription's QoS, so a
//     QoS 1 or 2 PUBLISH is skipped and counted as "garbage" (paho would hold a QoS 2
//     one until a PUBREL that may never come).
//   - maxMessageSize bounds a PUBLISH packet, fixed header included (as for MQTT_SERVER).
//     A filter under paho's reader discards larger packets as they stream in, without
//     buffering them, and counts each as "oversize"; paho never sees them (it would
//     allocate a packet's whole length, up to 256 MiB, before looking at it). Other
//     packets from a broker are a few bytes; one over 64 KiB ends the connection, and
//     so does a SUBACK with more return codes than topics (paho would index past its
//     topics and panic).
//   - With secure, the broker is verified against the certificate's trust bundle, or,
//     when it has none, against the system roots plus the certificate's own chain (so a
//     broker whose certificate, or its CA, was uploaded as the component's certificate
//     verifies). The certificate is presented as a client certificate when the broker
//     asks and the certificate allows client authentication. Both are read from the
//     TLSSource at every connection, so a certificate update applies to the next
//     connection while the current one stays up.
//   - A handler refusal (no enabled gateway) disconnects and fails: there is no device to
//     answer, and a connection kept without a session would never notice a gateway being
//     enabled; the supervisor's retry does.
package mqttclient
