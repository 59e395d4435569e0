package testutil

import (
	"io"
	"log"
	"math"
	"net"
	"strconv"
	"sync"
	"testing"

	mb "github.com/simonvetter/modbus"
)

// ModbusServer is a test's Modbus TCP device: a real simonvetter/modbus server on loopback
// whose handler keeps holding registers, input registers and coils in maps (discrete
// inputs read false).
type ModbusServer struct {
	t    testing.TB
	Port int

	mu      sync.Mutex
	holding map[uint16]uint16
	input   map[uint16]uint16
	coils   map[uint16]bool
	srv     *mb.ModbusServer
}

// StartModbusServer serves on 127.0.0.1:port until Stop or the end of the test.
func StartModbusServer(t testing.TB, port int) *ModbusServer {
	p := &ModbusServer{t: t, Port: port, holding: map[uint16]uint16{}, input: map[uint16]uint16{}, coils: map[uint16]bool{}}
	p.Start()
	t.Cleanup(p.Stop)
	return p
}

// Addr is host:port of the server.
func (p *ModbusServer) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port)) }

// Start listens again (after Stop) on the same port.
func (p *ModbusServer) Start() {
	p.t.Helper()
	srv, err := mb.NewServer(&mb.ServerConfiguration{URL: "tcp://" + p.Addr(), MaxClients: 10, Timeout: 60e9,
		Logger: log.New(io.Discard, "", 0)}, p)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.srv = srv
	p.mu.Unlock()
}

// Stop closes the listener and every client connection.
func (p *ModbusServer) Stop() {
	p.mu.Lock()
	srv := p.srv
	p.srv = nil
	p.mu.Unlock()
	if srv != nil {
		_ = srv.Stop()
	}
}

// SetHolding sets one holding register.
func (p *ModbusServer) SetHolding(addr, v uint16) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holding[addr] = v
}

// Holding reads one holding register.
func (p *ModbusServer) Holding(addr uint16) uint16 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.holding[addr]
}

// SetFloat32Input sets two input registers to a float32, high word first.
func (p *ModbusServer) SetFloat32Input(addr uint16, f float32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := math.Float32bits(f)
	p.input[addr], p.input[addr+1] = uint16(b>>16), uint16(b) // high word first
}

// SetCoil sets one coil.
func (p *ModbusServer) SetCoil(addr uint16, v bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.coils[addr] = v
}

// Coil reads one coil.
func (p *ModbusServer) Coil(addr uint16) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.coils[addr]
}

// HandleCoils serves coil reads and writes (mb.RequestHandler).
func (p *ModbusServer) HandleCoils(req *mb.CoilsRequest) ([]bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]bool, req.Quantity)
	for i := range out {
		a := req.Addr + uint16(i)
		if req.IsWrite {
			p.coils[a] = req.Args[i]
		}
		out[i] = p.coils[a]
	}
	return out, nil
}

// HandleDiscreteInputs reads false.
func (p *ModbusServer) HandleDiscreteInputs(req *mb.DiscreteInputsRequest) ([]bool, error) {
	return make([]bool, req.Quantity), nil
}

// HandleHoldingRegisters serves holding register reads and writes.
func (p *ModbusServer) HandleHoldingRegisters(req *mb.HoldingRegistersRequest) ([]uint16, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]uint16, req.Quantity)
	for i := range out {
		a := req.Addr + uint16(i)
		if req.IsWrite {
			p.holding[a] = req.Args[i]
		}
		out[i] = p.holding[a]
	}
	return out, nil
}

// HandleInputRegisters serves input register reads.
func (p *ModbusServer) HandleInputRegisters(req *mb.InputRegistersRequest) ([]uint16, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]uint16, req.Quantity)
	for i := range out {
		out[i] = p.input[req.Addr+uint16(i)]
	}
	return out, nil
}
