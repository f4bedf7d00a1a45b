package main

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
)

// noPort is what every client here says of a host without a port or scheme.
func noPort(address string) string {
	return "--server (or MASKFORMER_ADDRESS) takes host:port or http(s)://host[:port]; " + address +
		" has no port (the service listens on 5081 unless told otherwise)"
}

func TestURLWithoutAPortTakesItsSchemesAndHostPortIsKept(t *testing.T) {
	for address, want := range map[string]string{
		"http://segment.example":       "segment.example:80",
		"https://segment.example/":     "segment.example:443",
		"https://segment.example:8443": "segment.example:8443",
		"http://[::1]":                 "[::1]:80",
		"[::1]:5081":                   "[::1]:5081",
		"127.0.0.1:5081":               "127.0.0.1:5081",
	} {
		if got := hostPort(address); got != want {
			t.Errorf("hostPort(%q) = %q, want %q", address, got, want)
		}
		if err := checkAddress(address); err != nil {
			t.Errorf("checkAddress(%q): %v", address, err)
		}
	}
	for _, address := range []string{"127.0.0.1", "localhost/", "[::1]", "::1"} {
		if err := checkAddress(address); err == nil || err.Error() != noPort(address) {
			t.Errorf("checkAddress(%q) = %v, want %q", address, err, noPort(address))
		}
	}
}

// Waiting for a server for 60 s: a command that tried the host at some port would take that long.
func TestHostWithoutAPortExitsTwoAtOnceSayingSo(t *testing.T) {
	binary := buildClient(t)
	for _, server := range []string{"127.0.0.1", "[::1]"} {
		for _, args := range [][]string{{"segment", heldoutImage}, {"stream", clipFolder}} {
			started := time.Now()
			code, stdout, stderr := runClientEnv(t, binary, withoutClientVariables(),
				append(args, "-server", server, "-wait-for-server", "-connect-timeout", atOnceConnectTimeout)...)
			elapsed := time.Since(started)
			if code != 2 || strings.TrimSpace(stderr) != "error: "+noPort(server) {
				t.Fatalf("%s -server %s: exit code %d, stdout %q, stderr %q: want 2 and %q", args[0], server, code, stdout, stderr, noPort(server))
			}
			if elapsed > atOnce {
				t.Fatalf("%s -server %s took %v to fail", args[0], server, elapsed)
			}
		}
	}
}

func TestIPv6AddressInBracketsReachesItsServer(t *testing.T) {
	listener, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	server := grpc.NewServer()
	go server.Serve(listener)
	defer server.Stop()
	port := listener.Addr().(*net.TCPAddr).Port
	for _, address := range []string{fmt.Sprintf("[::1]:%d", port), fmt.Sprintf("http://[::1]:%d", port)} {
		conn, err := connect(address, 60*time.Second, false)
		if err != nil {
			t.Fatalf("%s: %v", address, err)
		}
		conn.Close()
	}
}
