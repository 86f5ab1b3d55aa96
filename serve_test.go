package main

import (
	"net"
	"testing"
)

// TestClientBaseURL: the base URL printed for clients names a loopback
// address they can reach; a wildcard listen (which Go serves with a
// dual-stack socket reporting itself as [::]) gives 127.0.0.1 unless the
// configured address was IPv6.
func TestClientBaseURL(t *testing.T) {
	for _, tc := range []struct {
		ip     net.IP
		listen string
		want   string
	}{
		{net.IPv4(127, 0, 0, 1), "127.0.0.1:8787", "http://127.0.0.1:8787/v1"},
		{net.IPv6unspecified, "0.0.0.0:8787", "http://127.0.0.1:8787/v1"},
		{net.IPv6unspecified, ":8787", "http://127.0.0.1:8787/v1"},
		{net.IPv4zero, "0.0.0.0:8787", "http://127.0.0.1:8787/v1"},
		{net.IPv6unspecified, "[::]:8787", "http://[::1]:8787/v1"},
		{net.IPv6loopback, "[::1]:8787", "http://[::1]:8787/v1"},
		{net.IPv4(10, 1, 2, 3), "10.1.2.3:8787", "http://10.1.2.3:8787/v1"},
	} {
		if got := clientBaseURL(&net.TCPAddr{IP: tc.ip, Port: 8787}, tc.listen); got != tc.want {
			t.Errorf("listen %s (bound %s): %s, want %s", tc.listen, tc.ip, got, tc.want)
		}
	}
}
