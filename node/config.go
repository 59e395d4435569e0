package node

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/linkops/linkops/api"
	"github.com/linkops/linkops/auth"
	"github.com/linkops/linkops/cluster"
)

// Version of this build; set with -ldflags "-X github.com/linkops/linkops/node.Version=…".
var Version = "0.1.0-dev"

// Config is everything `linkops agent` can be told. Each field has one flag, one
// environment variable (LINKOPS_<FLAG NAME>) and one key in the --config file; the default
// is written once, beside the flag, in BindFlags.
type Config struct {
	NodeID          string
	DataDir         string
	HTTPAddr        string
	RaftAddr        string
	GossipAddr      string
	AdvertiseHost   string
	Join            []string
	BootstrapExpect int
	Rack            string
	ClusterKey      string
	AdminPassword   string
	BlobStore       string
	// PublicURL is the base URL devices and browsers reach this node at (firmware download
	// links, cloud callback URLs); "" means http://<advertised http addr>.
	PublicURL string
	// FirmwareMaxBytes bounds an uploaded firmware file (0: api.DefaultFirmwareMaxBytes).
	FirmwareMaxBytes int64
	LogLevel         string
	PprofAddr        string
	TokenTTL         time.Duration
	// Node-local access and system logs: kept this long, and at most this many bytes.
	LogMaxAge      time.Duration
	LogMaxBytes    int64
	RequestTimeout time.Duration
	// AllowRemote lists the networks an MQTT_CLIENT component may connect to.
	AllowRemote []string
	allowRemote []netip.Prefix

	// Raft tuning, mostly for tests; zero keeps the cluster package's defaults.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	HeartbeatTimeout  time.Duration
	ElectionTimeout   time.Duration
	// FastGossip shortens gossip timers (tests on loopback).
	FastGossip bool
}

// DefaultAllowRemote is --allow-remote's default: loopback and the private ranges, so that
// an ops user cannot turn the cluster into a scanner of the internet (SPEC §4.3).
var DefaultAllowRemote = []string{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"}

// BindFlags declares the agent's flags on fs, with their defaults.
func (c *Config) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.NodeID, "node-id", "", "stable id of this node, stored in the data dir (default: the stored id, or the hostname for a new data dir)")
	fs.StringVar(&c.DataDir, "data-dir", "./data", "directory for the raft log, snapshots, node-local logs and local blobs")
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8844", "address of the REST API, console and metrics")
	fs.StringVar(&c.RaftAddr, "raft-addr", "127.0.0.1:8845", "address of the raft transport")
	fs.StringVar(&c.GossipAddr, "gossip-addr", "127.0.0.1:8846", "address of gossip membership (TCP and UDP)")
	fs.StringVar(&c.AdvertiseHost, "advertise-host", "", "host other nodes and clients should use to reach this node (default: the host of each address)")
	fs.StringSliceVar(&c.Join, "join", nil, "comma-separated gossip addresses of cluster members to join")
	fs.IntVar(&c.BootstrapExpect, "bootstrap-expect", 1, "form a new cluster once this many nodes have met")
	fs.StringVar(&c.Rack, "rack", "", "failure-domain label shown in the node list")
	fs.StringVar(&c.ClusterKey, "cluster-key", "", "base64 32-byte key shared by all nodes; encrypts gossip and authenticates internal calls")
	fs.StringVar(&c.AdminPassword, "admin-password", "", "password of the admin user when the cluster is first created (default: generated and printed once)")
	fs.StringVar(&c.BlobStore, "blob-store", "", "firmware blob store: file://DIR or s3://BUCKET?endpoint=HOST:PORT&secure=false&region=R (default: file://<data-dir>/blobs)")
	fs.StringVar(&c.PublicURL, "public-url", "", "base URL devices and browsers use to reach this node: firmware download links, cloud callback URLs (default: http://<advertised http addr>)")
	fs.Int64Var(&c.FirmwareMaxBytes, "firmware-max-bytes", api.DefaultFirmwareMaxBytes, "the largest firmware file accepted, in bytes")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.DurationVar(&c.LogMaxAge, "log-max-age", 7*24*time.Hour, "how long this node keeps its access and system log records")
	fs.Int64Var(&c.LogMaxBytes, "log-max-bytes", 1<<30, "how many bytes of access and system log records this node keeps; the oldest go first")
	fs.StringSliceVar(&c.AllowRemote, "allow-remote", DefaultAllowRemote, "comma-separated CIDRs an MQTT_CLIENT network component may connect to (a host name is resolved and every address checked)")
	fs.StringVar(&c.PprofAddr, "pprof-addr", "", "serve Go's /debug/pprof profiles on this address (off when empty; bind it to loopback)")
	fs.DurationVar(&c.TokenTTL, "token-ttl", auth.DefaultTokenTTL, "how long a login token stays valid")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", api.DefaultRequestTimeout, "how long a request may wait for a leader, a forward or a read barrier before answering 503")
	fs.Uint64Var(&c.SnapshotThreshold, "raft-snapshot-threshold", cluster.DefaultSnapshotThreshold, "raft log entries between snapshots (log compaction)")
	fs.DurationVar(&c.SnapshotInterval, "raft-snapshot-interval", 120*time.Second, "how often raft checks whether --raft-snapshot-threshold entries have accumulated")
	fs.DurationVar(&c.HeartbeatTimeout, "raft-heartbeat-timeout", cluster.DefaultHeartbeatTimeout, "how long a follower waits for the leader before calling an election; raise it on slow or distant networks")
	fs.DurationVar(&c.ElectionTimeout, "raft-election-timeout", cluster.DefaultElectionTimeout, "how long a candidate waits for votes before trying again")
	fs.Uint64Var(&c.TrailingLogs, "raft-trailing-logs", cluster.DefaultTrailingLogs, "raft log entries kept after a snapshot, so a lagging follower can catch up without a snapshot")
}

// LoadEnvAndFile fills every flag not given on the command line from LINKOPS_<NAME> and
// then from the JSON config file named by configFile (keys are flag names). Command-line
// flags win over the environment, which wins over the file.
func LoadEnvAndFile(fs *pflag.FlagSet, configFile string) error {
	var file map[string]any
	if configFile != "" {
		b, err := os.ReadFile(configFile)
		if err != nil {
			return fmt.Errorf("read config file: %w", err)
		}
		if err := json.Unmarshal(b, &file); err != nil {
			return fmt.Errorf("config file %s is not a JSON object of flag names to values: %w", configFile, err)
		}
		for k := range file {
			if fs.Lookup(k) == nil {
				return fmt.Errorf("config file %s: unknown setting %q", configFile, k)
			}
		}
	}
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "config" {
			return
		}
		env := "LINKOPS_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", env, err))
			}
			return
		}
		v, ok := file[f.Name]
		if !ok {
			return
		}
		var s string
		switch t := v.(type) {
		case string:
			s = t
		case []any:
			parts := make([]string, len(t))
			for i, p := range t {
				parts[i] = fmt.Sprint(p)
			}
			s = strings.Join(parts, ",")
		default:
			s = fmt.Sprint(t)
		}
		if err := fs.Set(f.Name, s); err != nil {
			errs = append(errs, fmt.Errorf("config file %q: %w", f.Name, err))
		}
	})
	return errors.Join(errs...)
}

// validate checks the configuration and fills derived defaults.
func (c *Config) validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir must not be empty"))
	}
	for name, addr := range map[string]string{"--http-addr": c.HTTPAddr, "--raft-addr": c.RaftAddr, "--gossip-addr": c.GossipAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: want HOST:PORT: %v", name, addr, err))
		}
	}
	if c.BootstrapExpect < 1 {
		errs = append(errs, fmt.Errorf("--bootstrap-expect must be at least 1 (got %d)", c.BootstrapExpect))
	}
	if c.ClusterKey != "" {
		k, err := base64.StdEncoding.DecodeString(c.ClusterKey)
		if err != nil || len(k) != 32 {
			errs = append(errs, errors.New("--cluster-key must be 32 bytes in base64 (make one with: head -c32 /dev/urandom | base64)"))
		}
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if c.TokenTTL <= 0 {
		errs = append(errs, errors.New("--token-ttl must be positive"))
	}
	if c.LogMaxAge < 0 || c.LogMaxBytes < 0 {
		errs = append(errs, errors.New("--log-max-age and --log-max-bytes must not be negative"))
	}
	if c.AllowRemote == nil {
		c.AllowRemote = DefaultAllowRemote
	}
	c.allowRemote = nil
	for _, cidr := range c.AllowRemote {
		p, err := netip.ParsePrefix(strings.TrimSpace(cidr))
		if err != nil {
			errs = append(errs, fmt.Errorf("--allow-remote %q is not a CIDR like 10.0.0.0/8: %v", cidr, err))
			continue
		}
		c.allowRemote = append(c.allowRemote, p.Masked())
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("--public-url %q: %v", c.PublicURL, err))
		case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil:
			errs = append(errs, fmt.Errorf("--public-url %q: want an absolute http:// or https:// URL, like https://iot.example.com", c.PublicURL))
		case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
			errs = append(errs, fmt.Errorf("--public-url %q: must not have a query or fragment (paths are appended to it)", c.PublicURL))
		default:
			c.PublicURL = strings.TrimRight(c.PublicURL, "/")
		}
	}
	switch {
	case c.FirmwareMaxBytes == 0: // a Config built in code (tests) rather than from the flags
		c.FirmwareMaxBytes = api.DefaultFirmwareMaxBytes
	case c.FirmwareMaxBytes < 0:
		errs = append(errs, fmt.Errorf("--firmware-max-bytes must be above 0 (got %d)", c.FirmwareMaxBytes))
	}
	if c.BlobStore == "" {
		c.BlobStore = "file://" + filepath.Join(c.DataDir, "blobs")
	}
	return errors.Join(errs...)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// advertise returns the address peers should use for a bind address.
func (c *Config) advertise(bind string) (string, error) {
	host, port, err := net.SplitHostPort(bind)
	if err != nil {
		return "", err
	}
	if c.AdvertiseHost != "" {
		return net.JoinHostPort(c.AdvertiseHost, port), nil
	}
	ip := net.ParseIP(host)
	if host != "" && (ip == nil || !ip.IsUnspecified()) {
		return bind, nil
	}
	guess, err := firstPrivateIP()
	if err != nil {
		return "", fmt.Errorf("%s binds every interface and no --advertise-host is set: %w", bind, err)
	}
	return net.JoinHostPort(guess, port), nil
}

// firstPrivateIP finds an address to advertise when binding 0.0.0.0, as Consul does.
func firstPrivateIP() (string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsPrivate() {
			return n.IP.String(), nil
		}
	}
	return "", errors.New("no private IPv4 address found; set --advertise-host")
}
