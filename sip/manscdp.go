package sip

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
)

// ErrBadBody: a MANSCDP body that is not XML of a command.
var ErrBadBody = errors.New("not a MANSCDP command")

// MaxBodyBytes bounds a MANSCDP body this package decodes.
const MaxBodyBytes = 256 << 10

// Command kinds: the root element of a MANSCDP body.
const (
	KindNotify   = "Notify"
	KindQuery    = "Query"
	KindResponse = "Response"
	KindControl  = "Control"
)

// Command types this package acts on.
const (
	CmdKeepalive = "Keepalive"
	CmdCatalog   = "Catalog"
)

// Command is one decoded MANSCDP body (GB/T 28181-2016 Annex A).
type Command struct {
	Kind     string
	CmdType  string
	SN       int
	DeviceID string
	Status   string
	// SumNum is how many items a Catalog answer has in all, over every MESSAGE.
	SumNum int
	Items  []Channel
}

// Channel is one entry of a device's catalog (GET /api/v1/devices/{id}/channels).
type Channel struct {
	ChannelID    string `json:"channelId"`
	Name         string `json:"name"`
	Manufacturer string `json:"manufacturer"`
	Model        string `json:"model"`
	Status       string `json:"status"`
	ParentID     string `json:"parentId"`
}

type xmlCommand struct {
	XMLName    xml.Name
	CmdType    string `xml:"CmdType"`
	SN         string `xml:"SN"`
	DeviceID   string `xml:"DeviceID"`
	Status     string `xml:"Status"`
	SumNum     string `xml:"SumNum"`
	DeviceList struct {
		Items []struct {
			DeviceID     string `xml:"DeviceID"`
			Name         string `xml:"Name"`
			Manufacturer string `xml:"Manufacturer"`
			Model        string `xml:"Model"`
			Status       string `xml:"Status"`
			ParentID     string `xml:"ParentID"`
		} `xml:"Item"`
	} `xml:"DeviceList"`
}

var encodingDecl = regexp.MustCompile(`(?i)^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9_-]+)["']`)

// DecodeCommand decodes a MANSCDP body. Devices write GB2312 (often declared, sometimes
// not, sometimes declared UTF-8 and written GB2312): a body that names a GB charset, or
// that is not valid UTF-8, is read as GB18030, which contains GB2312 and GBK.
func DecodeCommand(body []byte) (*Command, error) {
	if len(body) == 0 || len(body) > MaxBodyBytes {
		return nil, ErrBadBody
	}
	gb := !utf8.Valid(body)
	if m := encodingDecl.FindSubmatch(body); m != nil {
		switch strings.ToLower(string(m[1])) {
		case "gb2312", "gbk", "gb18030", "gb_2312-80", "x-gbk":
			gb = true
		}
	}
	if gb {
		out, err := simplifiedchinese.GB18030.NewDecoder().Bytes(body)
		if err != nil {
			return nil, ErrBadBody
		}
		body = out
	}
	dec := xml.NewDecoder(bytes.NewReader(body))
	// The bytes are UTF-8 by now, whatever the declaration still says.
	dec.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	var x xmlCommand
	if err := dec.Decode(&x); err != nil {
		return nil, ErrBadBody
	}
	c := &Command{Kind: x.XMLName.Local, CmdType: strings.TrimSpace(x.CmdType), DeviceID: strings.TrimSpace(x.DeviceID),
		Status: strings.TrimSpace(x.Status)}
	switch c.Kind {
	case KindNotify, KindQuery, KindResponse, KindControl:
	default:
		return nil, ErrBadBody
	}
	if c.CmdType == "" {
		return nil, ErrBadBody
	}
	c.SN, _ = strconv.Atoi(strings.TrimSpace(x.SN))
	c.SumNum, _ = strconv.Atoi(strings.TrimSpace(x.SumNum))
	for _, it := range x.DeviceList.Items {
		id := strings.TrimSpace(it.DeviceID)
		if id == "" {
			continue
		}
		c.Items = append(c.Items, Channel{ChannelID: id, Name: strings.TrimSpace(it.Name),
			Manufacturer: strings.TrimSpace(it.Manufacturer), Model: strings.TrimSpace(it.Model),
			Status: strings.TrimSpace(it.Status), ParentID: strings.TrimSpace(it.ParentID)})
	}
	return c, nil
}

// CatalogQuery is the body of a Catalog query to device deviceID.
func CatalogQuery(sn int, deviceID string) []byte {
	var b bytes.Buffer
	b.WriteString("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<Query>\r\n<CmdType>Catalog</CmdType>\r\n<SN>")
	b.WriteString(strconv.Itoa(sn))
	b.WriteString("</SN>\r\n<DeviceID>")
	_ = xml.EscapeText(&b, []byte(deviceID))
	b.WriteString("</DeviceID>\r\n</Query>\r\n")
	return b.Bytes()
}
