// Package media owns linkops' side of the streaming media servers (流媒体服务): a client of
// ZLMediaKit's HTTP API (getServerConfig, openRtpServer, closeRtpServer, getMediaList), the
// health of every enabled server as this node sees it (checked every 10 s and before each
// play), the manual's choice of a server for a play (one healthy enabled server at random),
// the RTP port a stream gets (a port of dynamicRtpPortRange through openRtpServer, the
// single-port proxy on rtpPort with no call, or a port the server picks) and the URLs a
// play answers.
//
// It must not touch SIP (package sip sends the INVITE), HTTP routing or the replicated
// state: it reads the media servers from the store and calls the servers it is told about.
package media
