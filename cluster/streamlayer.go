package cluster

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// handshakeTimeout bounds the cluster-key challenge on a new raft connection.
const handshakeTimeout = 5 * time.Second

// authStreamLayer is raft's TCP stream layer with a challenge-response on every
// connection: the acceptor sends a random nonce and the dialer must answer with its
// HMAC-SHA256 under the cluster key. A node without the key cannot send raft RPCs (votes,
// entries, snapshots) to the cluster, and a recorded handshake cannot be replayed.
type authStreamLayer struct {
	net.Listener
	advertise net.Addr
	key       []byte
	log       *slog.Logger
	refused   func()
}

func newAuthStreamLayer(bind string, advertise net.Addr, key []byte, log *slog.Logger, refused func()) (*authStreamLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	if advertise == nil {
		advertise = ln.Addr()
	}
	return &authStreamLayer{Listener: ln, advertise: advertise, key: key, log: log, refused: refused}, nil
}

// Addr is the address other nodes dial.
func (l *authStreamLayer) Addr() net.Addr { return l.advertise }

// Dial connects to a peer and answers its challenge.
func (l *authStreamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", string(addr), timeout)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(handshakeTimeout))
	nonce := make([]byte, 32)
	if _, err := io.ReadFull(conn, nonce); err != nil {
		conn.Close()
		return nil, fmt.Errorf("raft handshake with %s: %w (does it use the same --cluster-key?)", addr, err)
	}
	if _, err := conn.Write(l.mac(nonce)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("raft handshake with %s: %w", addr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, nil
}

// Accept returns the next connection whose dialer proved it holds the cluster key.
// Connections that fail the challenge are closed and logged; Accept goes on.
func (l *authStreamLayer) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if err := l.challenge(conn); err != nil {
			l.log.Warn("refused a raft connection", "remote", conn.RemoteAddr().String(), "error", err)
			if l.refused != nil {
				l.refused()
			}
			conn.Close()
			continue
		}
		return conn, nil
	}
}

func (l *authStreamLayer) challenge(conn net.Conn) error {
	_ = conn.SetDeadline(time.Now().Add(handshakeTimeout))
	defer conn.SetDeadline(time.Time{})
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	if _, err := conn.Write(nonce); err != nil {
		return err
	}
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(conn, got); err != nil {
		return fmt.Errorf("no answer to the cluster-key challenge: %w", err)
	}
	if !hmac.Equal(got, l.mac(nonce)) {
		return errors.New("wrong answer to the cluster-key challenge: the peer has another --cluster-key")
	}
	return nil
}

func (l *authStreamLayer) mac(nonce []byte) []byte {
	m := hmac.New(sha256.New, l.key)
	m.Write([]byte("linkops raft\x00"))
	m.Write(nonce)
	return m.Sum(nil)
}
