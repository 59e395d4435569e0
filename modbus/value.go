package modbus

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/linkops/linkops/resource"
)

// Errors of decoding and encoding point values.
var (
	// ErrReadOnly: the point is a discrete input or an input register.
	ErrReadOnly = errors.New("the point is read-only")
	// ErrBadValue: the written value is not one the point's data type holds.
	ErrBadValue = errors.New("the value does not fit the point's data type")
	// ErrShort: the device answered fewer registers than the data type spans.
	ErrShort = errors.New("too few registers for the data type")
)

// Areas of a point.
const (
	AreaCoil     = "coil"
	AreaDiscrete = "discrete"
	AreaHolding  = "holding"
	AreaInput    = "input"
)

// Registers is how many 16-bit registers a data type spans (bits are one coil).
func Registers(dataType string) int {
	switch dataType {
	case "int32", "uint32", "float32":
		return 2
	case "int64", "uint64", "float64":
		return 4
	}
	return 1
}

// scaleOf is the point's scale (default 1).
func scaleOf(p resource.ModbusPoint) float64 {
	if p.Scale == 0 {
		return 1
	}
	return p.Scale
}

// Writable reports whether a point can be written (holding registers and coils).
func Writable(p resource.ModbusPoint) bool { return p.Area == AreaHolding || p.Area == AreaCoil }

// wide joins registers high word first.
func wide(regs []uint16) uint64 {
	var v uint64
	for _, r := range regs {
		v = v<<16 | uint64(r)
	}
	return v
}

// DecodeRegisters turns the registers of a holding or input point into its value: raw ×
// scale, a bool for dataType bool.
func DecodeRegisters(p resource.ModbusPoint, regs []uint16) (any, error) {
	n := Registers(p.DataType)
	if len(regs) < n {
		return nil, fmt.Errorf("%w: %s needs %d, got %d", ErrShort, p.DataType, n, len(regs))
	}
	regs = regs[:n]
	var raw float64
	switch p.DataType {
	case "bool":
		return regs[0] != 0, nil
	case "int16":
		raw = float64(int16(regs[0]))
	case "uint16":
		raw = float64(regs[0])
	case "int32":
		raw = float64(int32(uint32(wide(regs))))
	case "uint32":
		raw = float64(uint32(wide(regs)))
	case "float32":
		raw = float64(math.Float32frombits(uint32(wide(regs))))
	case "int64":
		v := int64(wide(regs))
		if scaleOf(p) == 1 {
			return v, nil // exact, beyond float64's 53 bits
		}
		raw = float64(v)
	case "uint64":
		v := wide(regs)
		if scaleOf(p) == 1 {
			return v, nil
		}
		raw = float64(v)
	case "float64":
		raw = math.Float64frombits(wide(regs))
	default:
		return nil, fmt.Errorf("%w: unknown data type %q", ErrBadValue, p.DataType)
	}
	return scaled(raw, scaleOf(p)), nil
}

// scaled is raw × scale without the binary noise of the product (215 × 0.1 is 21.5).
func scaled(raw, scale float64) float64 {
	if scale == 1 || math.IsNaN(raw) || math.IsInf(raw, 0) {
		return raw
	}
	v, _ := strconv.ParseFloat(strconv.FormatFloat(raw*scale, 'g', 15, 64), 64)
	return v
}

// number reads a written value as a float64 (JSON numbers, numeric strings, bools).
func number(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case float32:
		return float64(x), nil
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case uint64:
		return float64(x), nil
	case json.Number:
		return x.Float64()
	case string:
		return strconv.ParseFloat(x, 64)
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	}
	return 0, fmt.Errorf("%w: %T is not a number", ErrBadValue, v)
}

// EncodeCoil is the state a written value sets a coil to (a bool, or 0 and 1).
func EncodeCoil(p resource.ModbusPoint, v any) (bool, error) {
	if !Writable(p) {
		return false, ErrReadOnly
	}
	if b, ok := v.(bool); ok {
		return b, nil
	}
	f, err := number(v)
	if err != nil || (f != 0 && f != 1) {
		return false, fmt.Errorf("%w: a coil takes true or false", ErrBadValue)
	}
	return f == 1, nil
}

// EncodeRegisters is what a written value stores in a holding point: value ÷ scale,
// rounded to the nearest integer for integer types, high word first.
func EncodeRegisters(p resource.ModbusPoint, v any) ([]uint16, error) {
	if p.Area != AreaHolding {
		return nil, ErrReadOnly
	}
	if p.DataType == "bool" {
		b, err := EncodeCoil(resource.ModbusPoint{Area: AreaCoil}, v)
		if err != nil {
			return nil, err
		}
		if b {
			return []uint16{1}, nil
		}
		return []uint16{0}, nil
	}
	f, err := number(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadValue, err)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		if p.DataType != "float32" && p.DataType != "float64" {
			return nil, fmt.Errorf("%w: %v", ErrBadValue, f)
		}
	}
	raw := f / scaleOf(p)
	integer := func(lo, hi float64) (float64, error) {
		r := math.Round(raw)
		if r < lo || r > hi {
			return 0, fmt.Errorf("%w: %v ÷ %v = %v is outside %s", ErrBadValue, f, scaleOf(p), r, p.DataType)
		}
		return r, nil
	}
	switch p.DataType {
	case "int16":
		r, err := integer(math.MinInt16, math.MaxInt16)
		return []uint16{uint16(int16(r))}, err
	case "uint16":
		r, err := integer(0, math.MaxUint16)
		return []uint16{uint16(r)}, err
	case "int32":
		r, err := integer(math.MinInt32, math.MaxInt32)
		return split(uint64(uint32(int32(r))), 2), err
	case "uint32":
		r, err := integer(0, math.MaxUint32)
		return split(uint64(r), 2), err
	case "float32":
		return split(uint64(math.Float32bits(float32(raw))), 2), nil
	case "int64":
		r, err := integer(math.MinInt64, math.MaxInt64)
		return split(uint64(int64(r)), 4), err
	case "uint64":
		r, err := integer(0, math.MaxUint64)
		return split(uint64(r), 4), err
	case "float64":
		return split(math.Float64bits(raw), 4), nil
	}
	return nil, fmt.Errorf("%w: unknown data type %q", ErrBadValue, p.DataType)
}

// split is v as n registers, high word first.
func split(v uint64, n int) []uint16 {
	out := make([]uint16, n)
	for i := n - 1; i >= 0; i-- {
		out[i] = uint16(v)
		v >>= 16
	}
	return out
}
