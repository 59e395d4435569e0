package resource_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"reflect"
	"testing"

	"github.com/linkops/linkops/resource"
)

// FuzzResourceBodies decodes arbitrary JSON into every kind of resource, as the API does
// with a request body, then validates it and prepares it for a response. None of that
// panics; Redacted leaves the stored object as it was and clears every secret, at any
// depth, of the copy it returns; validating twice gives the same answer.
func FuzzResourceBodies(f *testing.F) {
	for _, body := range []string{
		`{"id":"c1","name":"web","cert":"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n","key":"k"}`,
		`{"id":"u1","username":"alice","password":"secret-pw","role":"viewer"}`,
		`{"id":"n1","name":"tcp","type":"TCP_SERVER","configuration":{"host":"0.0.0.0","port":8000,"parserType":"DELIMITED","parserConfiguration":{"delimited":"0x0d0a"}}}`,
		`{"id":"n2","name":"mc","type":"MQTT_CLIENT","configuration":{"remoteHost":"10.0.0.1","remotePort":1883,"clientId":"c","username":"u","password":"p"}}`,
		`{"id":"n3","name":"m","type":"MQTT_SERVER","shareCluster":false,"cluster":[{"serverId":"node1","configuration":{"port":1883,"secure":true,"certId":"c1"}}]}`,
		`{"id":"g1","name":"g","provider":"gb28181-2016","configuration":{"domain":"3402000000","sipId":"34020000002000000001","host":"0.0.0.0","port":5060,"password":"sip-pw"}}`,
		`{"id":"g2","name":"ct","provider":"Ctwing","protocol":"official","configuration":{"appKey":"k","appSecret":"s"}}`,
		`{"id":"g3","name":"on","provider":"OneNet","protocol":"official","configuration":{"apiKey":"a","notifyToken":"t","aesKey":"0123456789abcdef"}}`,
		`{"id":"g4","name":"mb","provider":"modbus-tcp","configuration":{"host":"10.0.0.2","port":502,"unitId":1,"pollIntervalMs":1000,"points":[{"id":"t","address":1,"type":"int16"}]}}`,
		`{"id":"m1","name":"zlm","provider":"zlmedia","configuration":{"secret":"s","apiHost":"10.0.0.3","apiPort":80,"rtpIp":"10.0.0.3","rtpPort":10000,"dynamicRtpPortRange":[30000,30500]}}`,
		`{"id":"p1","name":"p","gatewayId":"g1","secureKey":"sk"}`,
		`{"id":"d1","name":"d","productId":"p1"}`,
		`{"id":"pr","name":"pr","type":"local","configuration":{"location":"/opt/codec"}}`,
		`{"cluster":[null,{}],"configuration":null,"points":[[]]}`,
	} {
		for i := range resource.Kinds() {
			f.Add(uint8(i), []byte(body))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		kinds := resource.Kinds()
		kind := kinds[int(which)%len(kinds)]
		obj := kind.New()
		if json.Unmarshal(body, obj) != nil {
			return
		}
		first := validate(obj)
		if second := validate(obj); !reflect.DeepEqual(first, second) {
			t.Fatalf("%s: validating twice gave %v, then %v", kind.Name, first, second)
		}
		before, err := json.Marshal(obj)
		if err != nil {
			t.Fatalf("%s: a decoded object does not encode: %v", kind.Name, err)
		}
		red := resource.Redacted(obj)
		if after, _ := json.Marshal(obj); !bytes.Equal(before, after) {
			t.Fatalf("%s: Redacted changed the stored object:\nbefore %s\nafter  %s", kind.Name, before, after)
		}
		if path := secretLeft(reflect.ValueOf(red), kind.Name); path != "" {
			t.Fatalf("Redacted left a secret at %s in %s", path, body)
		}
	})
}

// validate runs the API's validation of obj, whatever its kind.
func validate(obj resource.Object) resource.Errors {
	switch o := obj.(type) {
	case *resource.Certificate:
		return o.ValidateAgainst(nil)
	case *resource.User:
		return o.Validate(true)
	case *resource.Device:
		return o.Validate("")
	case interface{ Validate() resource.Errors }:
		return o.Validate()
	}
	return nil
}

// secretLeft returns the path of a non-zero field tagged secret:"true" anywhere in v, or "".
func secretLeft(v reflect.Value, path string) string {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return ""
		}
		return secretLeft(v.Elem(), path)
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			if p := secretLeft(v.Index(i), path+"[]"); p != "" {
				return p
			}
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			if p := secretLeft(it.Value(), path+"{}"); p != "" {
				return p
			}
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			sf := v.Type().Field(i)
			if !sf.IsExported() {
				continue
			}
			if sf.Tag.Get("secret") == "true" {
				if !v.Field(i).IsZero() {
					return path + "." + sf.Name
				}
				continue
			}
			if p := secretLeft(v.Field(i), path+"."+sf.Name); p != "" {
				return p
			}
		}
	}
	return ""
}

// The fuzz target's oracle finds secrets where they are: at the top, inside a
// configuration, and inside a per-node entry of a list.
func TestSecretLeftFindsSecrets(t *testing.T) {
	for body, kind := range map[string]*resource.Kind{
		`{"password":"pw"}`: resource.Users,
		`{"provider":"Ctwing","configuration":{"appSecret":"s"}}`:                              resource.Gateways,
		`{"type":"MQTT_CLIENT","cluster":[{"serverId":"a","configuration":{"password":"p"}}]}`: resource.NetworkComponents,
	} {
		obj := kind.New()
		if err := json.Unmarshal([]byte(body), obj); err != nil {
			t.Fatal(err)
		}
		if secretLeft(reflect.ValueOf(obj), kind.Name) == "" {
			t.Errorf("no secret found in %s %s", kind.Name, body)
		}
		if p := secretLeft(reflect.ValueOf(resource.Redacted(obj)), kind.Name); p != "" {
			t.Errorf("Redacted %s %s still has %s", kind.Name, body, p)
		}
	}
}

// FuzzCertificatePEM mutates the DER inside real certificates and keys of every supported
// key type. Validation never panics, and what it accepts works: the pair loads as a TLS
// certificate (what a listener does with it), and the derived fields are filled in.
func FuzzCertificatePEM(f *testing.F) {
	pki, err := buildPKI()
	if err != nil {
		f.Fatal(err)
	}
	for _, l := range pki.leaves {
		certDER, _ := pem.Decode([]byte(l.certPEM))
		keyDER, _ := pem.Decode([]byte(l.keyPEM))
		f.Add(certDER.Bytes, keyDER.Bytes, keyDER.Type)
	}
	f.Fuzz(func(t *testing.T, certDER, keyDER []byte, keyType string) {
		c := &resource.Certificate{Name: "fuzz",
			Cert: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER})),
			Key:  string(pem.EncodeToMemory(&pem.Block{Type: keyType, Bytes: keyDER}))}
		if len(c.ValidateAgainst(nil)) > 0 {
			return
		}
		if _, err := tls.X509KeyPair([]byte(c.Cert), []byte(c.Key)); err != nil {
			t.Fatalf("accepted a pair that TLS refuses: %v", err)
		}
		if c.FingerprintSHA256 == "" || c.NotAfter.IsZero() {
			t.Fatalf("accepted without derived fields: %+v", c)
		}
	})
}
