package session

import (
	"encoding/json"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// PropertiesFlushInterval is how often reported values are written to disk: a crash loses
// at most this much of what devices reported to this node.
const PropertiesFlushInterval = time.Second

// Value is one property's latest value and when it was reported.
type Value struct {
	Value any       `json:"value"`
	At    time.Time `json:"at"`
}

// Record is what this node knows of one device's reports.
type Record struct {
	Properties      map[string]Value `json:"properties,omitempty"`
	LastMessageAt   time.Time        `json:"lastMessageAt,omitempty"`
	FirmwareVersion string           `json:"firmwareVersion,omitempty"`
	FirmwareAt      time.Time        `json:"firmwareAt,omitempty"`
}

// Merge folds another node's record into r: each property keeps its latest value.
func (r *Record) Merge(o Record) {
	for k, v := range o.Properties {
		if cur, ok := r.Properties[k]; !ok || v.At.After(cur.At) {
			if r.Properties == nil {
				r.Properties = map[string]Value{}
			}
			r.Properties[k] = v
		}
	}
	if o.LastMessageAt.After(r.LastMessageAt) {
		r.LastMessageAt = o.LastMessageAt
	}
	if o.FirmwareAt.After(r.FirmwareAt) {
		r.FirmwareVersion, r.FirmwareAt = o.FirmwareVersion, o.FirmwareAt
	}
}

// Latest is the newest report time of any property (zero when none).
func (r *Record) Latest() time.Time {
	var t time.Time
	for _, v := range r.Properties {
		if v.At.After(t) {
			t = v.At
		}
	}
	return t
}

// Properties is this node's store of the latest values devices reported here: in memory,
// written behind to a bbolt file so that they survive a restart.
type Properties struct {
	log       *slog.Logger
	db        *bolt.DB
	closeOnce sync.Once
	closeErr  error

	// Every message a device sends updates its record, from as many goroutines as there
	// are connections: the records are split by device over shards with a lock each, so
	// that devices do not queue behind one another's updates.
	shards [propertyShards]propertyShard
}

// propertyShards is how many locks the records are split over: enough that the cores a
// node has rarely want the same one at once.
const propertyShards = 64

type propertyShard struct {
	mu    sync.RWMutex
	byID  map[string]*Record
	dirty map[string]struct{}
	// Pads the shard to its own cache lines, so that updates on one do not slow the next.
	_ [64]byte
}

var (
	propertiesBucket = []byte("devices")
	shardSeed        = maphash.MakeSeed()
)

// NewMemoryProperties keeps values in memory only (tests, and a Manager without a store).
func NewMemoryProperties() *Properties {
	p := &Properties{log: slog.Default()}
	for i := range p.shards {
		p.shards[i].byID = map[string]*Record{}
		p.shards[i].dirty = map[string]struct{}{}
	}
	return p
}

func (p *Properties) shard(deviceID string) *propertyShard {
	return &p.shards[maphash.String(shardSeed, deviceID)%propertyShards]
}

// OpenProperties opens (or creates) the store in path and loads what it holds.
func OpenProperties(path string, log *slog.Logger) (*Properties, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("open device properties %s: %w", path, err)
	}
	p := NewMemoryProperties()
	p.log, p.db = log, db
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(propertiesBucket)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var r Record
			if json.Unmarshal(v, &r) != nil {
				log.Warn("skipping an unreadable device properties record", "device", string(k))
				return nil
			}
			id := string(k)
			p.shard(id).byID[id] = &r
			return nil
		})
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("load device properties %s: %w", path, err)
	}
	return p, nil
}

// Update records reported values.
func (p *Properties) Update(deviceID string, values map[string]any, at time.Time) {
	sh := p.shard(deviceID)
	sh.mu.Lock()
	sh.update(deviceID, values, at)
	sh.mu.Unlock()
}

// report is Update then Seen, under one lock: what Manager.Receive does for a message that
// reports values.
func (p *Properties) report(deviceID string, values map[string]any, at, seen time.Time) {
	sh := p.shard(deviceID)
	sh.mu.Lock()
	sh.update(deviceID, values, at)
	sh.seen(deviceID, seen)
	sh.mu.Unlock()
}

func (sh *propertyShard) update(deviceID string, values map[string]any, at time.Time) {
	r := sh.record(deviceID)
	if r.Properties == nil {
		r.Properties = make(map[string]Value, len(values))
	}
	for k, v := range values {
		if cur, ok := r.Properties[k]; ok && cur.At.After(at) {
			continue
		}
		r.Properties[k] = Value{Value: v, At: at}
	}
	sh.dirty[deviceID] = struct{}{}
}

// SetFirmware records the firmware version a device reported.
func (p *Properties) SetFirmware(deviceID, version string, at time.Time) {
	sh := p.shard(deviceID)
	sh.mu.Lock()
	r := sh.record(deviceID)
	r.FirmwareVersion, r.FirmwareAt = version, at
	sh.dirty[deviceID] = struct{}{}
	sh.mu.Unlock()
}

// Seen records that a device sent something.
func (p *Properties) Seen(deviceID string, at time.Time) {
	sh := p.shard(deviceID)
	sh.mu.Lock()
	sh.seen(deviceID, at)
	sh.mu.Unlock()
}

func (sh *propertyShard) seen(deviceID string, at time.Time) {
	r := sh.record(deviceID)
	if at.After(r.LastMessageAt) {
		r.LastMessageAt = at
	}
	// Not marked dirty on its own: lastMessageAt is written with the next report, so
	// keepalives never cost a disk write.
}

func (sh *propertyShard) record(deviceID string) *Record {
	r := sh.byID[deviceID]
	if r == nil {
		r = &Record{}
		sh.byID[deviceID] = r
	}
	return r
}

// Get returns copies of the records of the devices this node knows of.
func (p *Properties) Get(deviceIDs []string) map[string]Record {
	out := make(map[string]Record, len(deviceIDs))
	for _, id := range deviceIDs {
		sh := p.shard(id)
		sh.mu.RLock()
		r := sh.byID[id]
		if r == nil {
			sh.mu.RUnlock()
			continue
		}
		cp := *r
		cp.Properties = make(map[string]Value, len(r.Properties))
		for k, v := range r.Properties {
			cp.Properties[k] = v
		}
		sh.mu.RUnlock()
		out[id] = cp
	}
	return out
}

// Delete forgets a device (deleted from the registry).
func (p *Properties) Delete(deviceID string) {
	sh := p.shard(deviceID)
	sh.mu.Lock()
	delete(sh.byID, deviceID)
	sh.dirty[deviceID] = struct{}{}
	sh.mu.Unlock()
}

// Flush writes the changed records to disk.
func (p *Properties) Flush() error {
	if p.db == nil {
		return nil
	}
	var batch map[string][]byte
	for i := range p.shards {
		sh := &p.shards[i]
		sh.mu.Lock()
		if len(sh.dirty) == 0 {
			sh.mu.Unlock()
			continue
		}
		if batch == nil {
			batch = make(map[string][]byte, len(sh.dirty)*propertyShards)
		}
		for id := range sh.dirty {
			if r := sh.byID[id]; r != nil {
				b, err := json.Marshal(r)
				if err != nil {
					p.log.Warn("device properties not storable", "device", id, "error", err)
					continue
				}
				batch[id] = b
			} else {
				batch[id] = nil
			}
		}
		sh.dirty = map[string]struct{}{}
		sh.mu.Unlock()
	}
	if len(batch) == 0 {
		return nil
	}
	return p.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(propertiesBucket)
		for id, v := range batch {
			var err error
			if v == nil {
				err = b.Delete([]byte(id))
			} else {
				err = b.Put([]byte(id), v)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// Run flushes every PropertiesFlushInterval until stop is closed, then once more.
func (p *Properties) Run(stop <-chan struct{}) {
	t := time.NewTicker(PropertiesFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			if err := p.Flush(); err != nil {
				p.log.Error("writing device properties failed", "error", err)
			}
			return
		case <-t.C:
			if err := p.Flush(); err != nil {
				p.log.Error("writing device properties failed", "error", err)
			}
		}
	}
}

// Close flushes and closes the file; later calls return the first one's result.
func (p *Properties) Close() error {
	if p.db == nil {
		return nil
	}
	p.closeOnce.Do(func() {
		err := p.Flush()
		if cerr := p.db.Close(); err == nil {
			err = cerr
		}
		p.closeErr = err
	})
	return p.closeErr
}
