package modbus

import (
	"errors"
	"math"
	"testing"

	"github.com/linkops/linkops/resource"
)

func pt(area, dataType string, scale float64) resource.ModbusPoint {
	return resource.ModbusPoint{Property: "p", Area: area, DataType: dataType, Scale: scale}
}

func TestDecodeRegisters(t *testing.T) {
	f32 := math.Float32bits(3.25)
	f64 := math.Float64bits(-1234.5678)
	cases := []struct {
		name string
		p    resource.ModbusPoint
		regs []uint16
		want any
	}{
		{"bool on", pt("holding", "bool", 0), []uint16{7}, true},
		{"bool off", pt("input", "bool", 0), []uint16{0}, false},
		{"int16 negative", pt("holding", "int16", 0), []uint16{0xFFFE}, -2.0},
		{"int16 scale 0.1", pt("holding", "int16", 0.1), []uint16{215}, 21.5},
		{"int16 negative scaled", pt("holding", "int16", 0.1), []uint16{0xFF38}, -20.0},
		{"uint16", pt("input", "uint16", 0), []uint16{0xFFFE}, 65534.0},
		{"uint16 scale 10", pt("input", "uint16", 10), []uint16{3}, 30.0},
		{"int32 high word first", pt("holding", "int32", 0), []uint16{0x0001, 0x0002}, 65538.0},
		{"int32 negative", pt("holding", "int32", 0), []uint16{0xFFFF, 0xFFFF}, -1.0},
		{"uint32", pt("holding", "uint32", 0), []uint16{0x8000, 0x0000}, 2147483648.0},
		{"float32 high word first", pt("input", "float32", 0), []uint16{uint16(f32 >> 16), uint16(f32)}, 3.25},
		{"float32 scaled", pt("input", "float32", 2), []uint16{uint16(f32 >> 16), uint16(f32)}, 6.5},
		{"int64 exact", pt("holding", "int64", 0), []uint16{0x7FFF, 0xFFFF, 0xFFFF, 0xFFFF}, int64(math.MaxInt64)},
		{"int64 negative scaled", pt("holding", "int64", 0.01), []uint16{0xFFFF, 0xFFFF, 0xFFFF, 0xFF9C}, -1.0},
		{"uint64 exact", pt("holding", "uint64", 0), []uint16{0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF}, uint64(math.MaxUint64)},
		{"uint64 scaled", pt("holding", "uint64", 0.5), []uint16{0, 0, 0, 9}, 4.5},
		{"float64", pt("holding", "float64", 0), []uint16{uint16(f64 >> 48), uint16(f64 >> 32), uint16(f64 >> 16), uint16(f64)}, -1234.5678},
	}
	for _, c := range cases {
		got, err := DecodeRegisters(c.p, c.regs)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s: got %v (%T), want %v (%T)", c.name, got, got, c.want, c.want)
		}
	}
	if _, err := DecodeRegisters(pt("holding", "float32", 0), []uint16{1}); !errors.Is(err, ErrShort) {
		t.Errorf("one register for a float32: %v, want ErrShort", err)
	}
}

func TestEncodeRegisters(t *testing.T) {
	f32 := math.Float32bits(7.5)
	cases := []struct {
		name string
		p    resource.ModbusPoint
		v    any
		want []uint16
	}{
		{"int16 ÷ scale rounds to nearest", pt("holding", "int16", 0.1), 23.46, []uint16{235}},
		{"int16 rounds half away from zero", pt("holding", "int16", 0.1), -0.05, []uint16{0xFFFF}},
		{"int16 negative", pt("holding", "int16", 0), -2.0, []uint16{0xFFFE}},
		{"uint16 from a string", pt("holding", "uint16", 0), "65535", []uint16{0xFFFF}},
		{"int32 high word first", pt("holding", "int32", 0), 65538.0, []uint16{1, 2}},
		{"uint32 scaled", pt("holding", "uint32", 0.5), 3.0, []uint16{0, 6}},
		{"float32 high word first", pt("holding", "float32", 0), 7.5, []uint16{uint16(f32 >> 16), uint16(f32)}},
		{"int64", pt("holding", "int64", 0), -1.0, []uint16{0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF}},
		{"uint64", pt("holding", "uint64", 0), 65536.0, []uint16{0, 0, 1, 0}},
		{"bool", pt("holding", "bool", 0), true, []uint16{1}},
	}
	for _, c := range cases {
		got, err := EncodeRegisters(c.p, c.v)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: got %v, want %v", c.name, got, c.want)
				break
			}
		}
	}
	if _, err := EncodeRegisters(pt("holding", "int16", 0), 40000.0); !errors.Is(err, ErrBadValue) {
		t.Errorf("40000 into an int16: %v, want ErrBadValue", err)
	}
	if _, err := EncodeRegisters(pt("holding", "uint16", 0), -1.0); !errors.Is(err, ErrBadValue) {
		t.Errorf("-1 into a uint16: %v, want ErrBadValue", err)
	}
	if _, err := EncodeRegisters(pt("holding", "int16", 0), "warm"); !errors.Is(err, ErrBadValue) {
		t.Errorf("a word into an int16: %v, want ErrBadValue", err)
	}
	if _, err := EncodeRegisters(pt("input", "int16", 0), 1.0); !errors.Is(err, ErrReadOnly) {
		t.Errorf("writing an input register: %v, want ErrReadOnly", err)
	}
	if _, err := EncodeCoil(pt("discrete", "bool", 0), true); !errors.Is(err, ErrReadOnly) {
		t.Errorf("writing a discrete input: %v, want ErrReadOnly", err)
	}
	if v, err := EncodeCoil(pt("coil", "bool", 0), 1.0); err != nil || !v {
		t.Errorf("coil from 1: %v, %v", v, err)
	}
	if _, err := EncodeCoil(pt("coil", "bool", 0), 2.0); !errors.Is(err, ErrBadValue) {
		t.Errorf("coil from 2: %v, want ErrBadValue", err)
	}
}
