package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Problem is an RFC 9457 error answered by the API.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
	Errors []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

func (p *Problem) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", p.Status, p.Code)
	if p.Detail != "" {
		fmt.Fprintf(&b, ": %s", p.Detail)
	}
	for _, e := range p.Errors {
		fmt.Fprintf(&b, "\n  %s: %s", e.Field, e.Message)
	}
	return b.String()
}

// Client talks to one node's API.
type Client struct {
	Addr  string // http://host:port
	Token string
	HTTP  *http.Client
}

// New returns a client for addr ("host:port" or a URL).
func New(addr, token string) *Client {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return &Client{Addr: strings.TrimRight(addr, "/"), Token: token, HTTP: &http.Client{Timeout: 5 * time.Minute}}
}

// Do sends a request with a JSON body (nil for none) and decodes a JSON answer into out
// (nil to discard). A non-2xx answer is returned as *Problem.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) (http.Header, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	resp, err := c.Raw(ctx, method, path, rd, "application/json", nil)
	if err != nil {
		return nil, err
	}
	defer func() {
		// Read to EOF so the connection can be reused.
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}()
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.Header, fmt.Errorf("decode answer of %s %s: %w", method, path, err)
		}
	}
	return resp.Header, nil
}

// Raw sends a request with any body and returns the response of a 2xx answer, whose body
// the caller must close; other answers become *Problem.
func (c *Client) Raw(ctx context.Context, method, path string, body io.Reader, contentType string, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.Addr+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil && contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	p := &Problem{}
	if json.Unmarshal(b, p) != nil || p.Status == 0 {
		p = &Problem{Status: resp.StatusCode, Code: "http_error", Detail: strings.TrimSpace(string(b))}
	}
	return nil, p
}

// Login exchanges credentials for a token and keeps it in the client.
func (c *Client) Login(ctx context.Context, username, password string) (token string, expires time.Time, err error) {
	var out struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expiresAt"`
	}
	if _, err := c.Do(ctx, http.MethodPost, "/api/v1/auth/login", map[string]string{"username": username, "password": password}, &out); err != nil {
		return "", time.Time{}, err
	}
	c.Token = out.Token
	return out.Token, out.ExpiresAt, nil
}

// Query builds "?k=v&…" from pairs, skipping empty values.
func Query(pairs ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			v.Set(pairs[i], pairs[i+1])
		}
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}
