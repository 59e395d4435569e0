package sip

import (
	"testing"

	"golang.org/x/text/encoding/simplifiedchinese"
)

func FuzzDecodeCommand(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0"?><Notify><CmdType>Keepalive</CmdType><SN>1</SN><DeviceID>34020000001320000001</DeviceID><Status>OK</Status></Notify>`))
	f.Add([]byte(`<?xml version="1.0" encoding="GB2312"?><Response><CmdType>Catalog</CmdType><SN>2</SN><SumNum>1</SumNum><DeviceList Num="1"><Item><DeviceID>1</DeviceID></Item></DeviceList></Response>`))
	f.Add([]byte("<Query><CmdType>\xff\xfe</CmdType></Query>"))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := DecodeCommand(body)
		if err == nil && (c.Kind == "" || c.CmdType == "") {
			t.Fatalf("decoded a command without kind or type: %+v", c)
		}
	})
}

func TestDecodeCommandGB2312(t *testing.T) {
	body, err := simplifiedchinese.GBK.NewEncoder().String(`<?xml version="1.0" encoding="GB2312"?>
<Response><CmdType>Catalog</CmdType><SN>7</SN><DeviceID>34020000001320000001</DeviceID><SumNum>2</SumNum>
<DeviceList Num="1"><Item><DeviceID>34020000001310000001</DeviceID><Name>大门摄像头</Name><Manufacturer>海康</Manufacturer>
<Model>DS-2CD</Model><Status>ON</Status><ParentID>34020000001320000001</ParentID></Item></DeviceList></Response>`)
	if err != nil {
		t.Fatal(err)
	}
	c, err := DecodeCommand([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := Channel{ChannelID: "34020000001310000001", Name: "大门摄像头", Manufacturer: "海康", Model: "DS-2CD", Status: "ON", ParentID: "34020000001320000001"}
	if c.Kind != KindResponse || c.CmdType != CmdCatalog || c.SN != 7 || c.SumNum != 2 || len(c.Items) != 1 || c.Items[0] != want {
		t.Fatalf("decoded %+v", c)
	}
}
