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

// badPort is what every client here says of a port that is not a number from 1 to 65535.
func badPort(address, port string) string {
	return "--server (or MASKFORMER_ADDRESS) takes host:port or http(s)://host[:port]; " + address +
		" has port \"" + port + "\", which is not a number from 1 to 65535"
}

func TestPortNotFrom1To65535IsRefusedSayingSo(t *testing.T) {
	for address, port := range map[string]string{
		"127.0.0.1:": "", "127.0.0.1:abc": "abc", "127.0.0.1:0": "0", "127.0.0.1:70000": "70000", "127.0.0.1:-1": "-1",
		"[::1]:": "", "[::1]:abc": "abc", "http://127.0.0.1:": "", "http://127.0.0.1:abc": "abc",
		"http://127.0.0.1:0": "0", "https://127.0.0.1:70000/": "70000", "https://[::1]:0": "0",
	} {
		if err := checkAddress(address); err == nil || err.Error() != badPort(address, port) {
			t.Errorf("checkAddress(%q) = %v, want %q", address, err, badPort(address, port))
		}
	}
	for _, address := range []string{"127.0.0.1:1", "https://[::1]:65535/"} {
		if err := checkAddress(address); err != nil {
			t.Errorf("checkAddress(%q): %v", address, err)
		}
	}
}

// Waiting for a server for 60 s: a command that tried the address would take that long.
func TestPortNotFrom1To65535ExitsTwoAtOnceSayingSo(t *testing.T) {
	binary := buildClient(t)
	for _, run := range []struct {
		args         []string
		server, port string
	}{
		{[]string{"segment", heldoutImage}, "127.0.0.1:", ""},
		{[]string{"segment", heldoutImage}, "127.0.0.1:0", "0"},
		{[]string{"stream", clipFolder}, "http://127.0.0.1:abc", "abc"},
	} {
		assertRefusedAtOnce(t, binary, run.args, run.server, badPort(run.server, run.port))
	}
}

// refused is what every client here says of an address with a path, another scheme or no host: problem.
func refused(address, problem string) string {
	return "--server (or MASKFORMER_ADDRESS) takes host:port or http(s)://host[:port]; " + address + " " + problem
}

func TestPathSchemeOrNoHostIsRefusedSayingSo(t *testing.T) {
	for address, problem := range map[string]string{
		"http://127.0.0.1:5081/api":   `has path "/api", which a gRPC address cannot have`,
		"127.0.0.1:5081/x":            `has path "/x", which a gRPC address cannot have`,
		"https://[::1]:5081/a/b/":     `has path "/a/b", which a gRPC address cannot have`,
		"http://segment.example/api":  `has path "/api", which a gRPC address cannot have`,
		"ftp://127.0.0.1:5081":        `has scheme "ftp", which is not http or https`,
		"grpc://127.0.0.1:5081":       `has scheme "grpc", which is not http or https`,
		"unix:///tmp/maskformer.sock": `has scheme "unix", which is not http or https`,
		"HTTP://127.0.0.1:5081":       `has scheme "HTTP", which is not http or https`,
		":5081":                       "has no host",
		"http://:5081":                "has no host",
		"[]:5081":                     "has no host",
		"http://":                     "has no host",
		"http://::1:5081":             `has host "::1:5081": an IPv6 host goes in brackets ([::1]:5081)`,
		"https://::1":                 `has host "::1": an IPv6 host goes in brackets ([::1]:5081)`,
		"http://fe80::1/":             `has host "fe80::1": an IPv6 host goes in brackets ([::1]:5081)`,
		"http://[::1":                 `has host "[::1": an IPv6 host goes in brackets ([::1]:5081)`,
	} {
		if err := checkAddress(address); err == nil || err.Error() != refused(address, problem) {
			t.Errorf("checkAddress(%q) = %v, want %q", address, err, refused(address, problem))
		}
	}
}

// Waiting for a server for 60 s: a command that tried the address would take that long.
func TestPathSchemeOrNoHostExitsTwoAtOnceSayingSo(t *testing.T) {
	binary := buildClient(t)
	for _, run := range []struct {
		args            []string
		server, problem string
	}{
		{[]string{"segment", heldoutImage}, "http://127.0.0.1:5081/api", `has path "/api", which a gRPC address cannot have`},
		{[]string{"stream", clipFolder}, "grpc://127.0.0.1:5081", `has scheme "grpc", which is not http or https`},
		{[]string{"segment", heldoutImage}, ":5081", "has no host"},
	} {
		assertRefusedAtOnce(t, binary, run.args, run.server, refused(run.server, run.problem))
	}
}

// Waiting for a server for 60 s: a command that tried the host at some port would take that long.
func TestHostWithoutAPortExitsTwoAtOnceSayingSo(t *testing.T) {
	binary := buildClient(t)
	for _, server := range []string{"127.0.0.1", "[::1]"} {
		for _, args := range [][]string{{"segment", heldoutImage}, {"stream", clipFolder}} {
			assertRefusedAtOnce(t, binary, args, server, noPort(server))
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

// assertRefusedAtOnce runs the client with -server server, waiting for a server for 60 s, and checks it
// exits 2 with want well before that.
func assertRefusedAtOnce(t *testing.T, binary string, args []string, server, want string) {
	t.Helper()
	started := time.Now()
	code, stdout, stderr := runClientEnv(t, binary, withoutClientVariables(),
		append(args, "-server", server, "-wait-for-server", "-connect-timeout", atOnceConnectTimeout)...)
	elapsed := time.Since(started)
	if code != 2 || strings.TrimSpace(stderr) != "error: "+want {
		t.Fatalf("%s -server %s: exit code %d, stdout %q, stderr %q: want 2 and %q", args[0], server, code, stdout, stderr, want)
	}
	if elapsed > atOnce {
		t.Fatalf("%s -server %s took %v to fail", args[0], server, elapsed)
	}
}
