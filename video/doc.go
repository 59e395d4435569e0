// Package video owns video play and stop for GB/T 28181 cameras (SPEC §5.3) on the node
// holding a camera's registration: it picks a media server (package media), opens the
// stream's RTP port, asks the camera for the stream (package sip sends the INVITE), closes
// the port again when the camera does not answer or refuses, and remembers the streams
// playing from this node until they are stopped or end.
//
// The API routes a play to the node holding the registration, so this package only ever
// serves cameras registered here. Streams are node-local, like the SIP dialogs they stand
// on: a node that restarts has no dialog left to end, and its cameras register again.
//
// Stream ids: with a dynamic port range or a port the server picks, the stream id is
// `<deviceId>_<channelId>`, passed to openRtpServer. With ZLMediaKit's single-port RTP
// proxy (rtpPort set) nothing is opened and ZLMediaKit names the stream by its SSRC in
// eight hex digits, so that is the stream id the URLs carry.
//
// SSRCs: 0, digits 4–8 of the SIP domain, then a four-digit sequence that each node starts
// at random and skips past the SSRCs of the streams it is playing. Two nodes can still
// pick the same SSRC for two streams on the same single-port server (about one chance in
// 10,000 per pair of concurrent plays); a dynamic port range avoids it entirely.
//
// It must not touch the replicated state, HTTP routing or SIP messages directly.
package video
