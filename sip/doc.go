// Package sip owns the SIP side of the gb28181-2016 video gateways (视频, SPEC §5.3) on this
// node: a SIP server (emiago/sipgo, UDP and TCP) for every enabled GB/T 28181 gateway that
// applies to the node, REGISTER with per-device digest nonces, unregister, keepalives, the
// Catalog query after a registration and the channels its answers report, kept here on the
// node holding the registration; and the INVITE dialogs of video plays (invite.go): the SDP
// offer, the 10 s answer deadline with sipgo's force-cancel (or a CANCEL after a
// provisional answer), ACK, BYE either way, and the calls ended when their camera
// unregisters, goes silent or the gateway stops here (Config.CallEnded tells package video).
//
// It must not touch the replicated state (devices go online and offline through
// session.Manager, which writes presence), HTTP routing (package api asks it for channels
// through a small interface) or the media servers (package media).
//
// sipgo's traps, each handled here: its UDP read loop and TCP accept loop return on the
// first error, so the sockets it is given retry transient errors themselves and end only
// when closed (as listeners.RetryAccept does for TCP listeners); its TCP connections have
// no read timeout, so every accepted connection gets an idle deadline renewed before each
// read; it refuses to write UDP messages over sip.UDPMTUSize-200 bytes, so that is raised
// for Catalog-sized messages; a handler's transaction is terminated when the handler
// returns, so every handler answers before it returns and sends its own requests (the
// Catalog query) afterwards from a goroutine; behind NAT a device is reached at the
// source address of its REGISTER, not at its Contact.
//
// MANSCDP bodies are decoded in manscdp.go, a pure file with a fuzz target: GB2312 (read
// as GB18030, its superset) or UTF-8, whatever the XML declaration claims.
package sip
