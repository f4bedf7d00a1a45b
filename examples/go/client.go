package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	pb "github.com/maskformer-serve/maskformer/gen/go/maskformer/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// defaultConnectTimeout bounds the wait for a ready connection: an attempt that neither succeeds nor fails
// (packets dropped), or, with -wait-for-server, a server that is not listening yet.
const defaultConnectTimeout = 15 * time.Second

// streamWindow is the HTTP/2 flow-control window the client grants per stream and per connection. Answers
// with masks are larger than gRPC's 64 KiB default; a window larger than the answers keeps a known Kestrel
// fault (README, Troubleshooting: dotnet/aspnetcore#53736) from leaving a call without its answer.
const streamWindow = 16 << 20

// fail prints err and returns the exit code to end with.
func fail(err error, code int) int {
	fmt.Fprintln(os.Stderr, "error:", err)
	return code
}

func defaultServer() string {
	if address := os.Getenv("MASKFORMER_ADDRESS"); address != "" {
		return address
	}
	return "127.0.0.1:5081"
}

// addressRule is how every refusal of an address begins, in every client here.
const addressRule = "--server (or MASKFORMER_ADDRESS) takes host:port or http(s)://host[:port]; "

// noPortMessage is what every client here says of a host without a port or scheme, in the same words: grpc-go
// would take port 443 (even for cleartext), an http:// URL port 80, neither of them the service's.
func noPortMessage(address string) string {
	return addressRule + address +
		" has no port (the service listens on 5081 unless told otherwise)"
}

// badPortMessage is what every client here says of a port that is not one (empty, not a number, 0, above 65535),
// in the same words, before anything is tried: left to grpc-go it was a late connect error, or another message
// per client.
func badPortMessage(address, port string) string {
	return addressRule + address +
		" has port \"" + port + "\", which is not a number from 1 to 65535"
}

// schemeMessage is what every client here says of a scheme other than http:// and https:// ("grpc://",
// "unix://"), in the same words: each client used to say something else of it, some of them about its port.
func schemeMessage(address, scheme string) string {
	return addressRule + address +
		" has scheme \"" + scheme + "\", which is not http or https"
}

// pathMessage is what every client here says of an address with a path ("host:5081/api"), in the same words:
// a gRPC call's path is its method's (/maskformer.v1.SegmentationService/Segment), so the server's address has
// none.
func pathMessage(address, path string) string {
	return addressRule + address +
		" has path \"" + path + "\", which a gRPC address cannot have"
}

// noHostMessage is what every client here says of an address without a host (":5081", "http://:5081"), in the
// same words.
func noHostMessage(address string) string {
	return addressRule + address + " has no host"
}

// unbracketedHostMessage is what every client here says of a URL whose host has a ':' outside brackets
// ("http://::1:5081"), in the same words: left to each client's parsing it was another message per client, or a
// connection to another address.
func unbracketedHostMessage(address, host string) string {
	return addressRule + address +
		" has host \"" + host + "\": an IPv6 host goes in brackets ([::1]:5081)"
}

// splitHostPort is the host and the text after its colon, and false without one: an IPv6 address takes its
// port after brackets ("[::1]:5081"); without them ("::1") it is a host alone.
func splitHostPort(hostAndPort string) (host, port string, hasPort bool) {
	if strings.HasPrefix(hostAndPort, "[") {
		end := strings.Index(hostAndPort, "]:")
		if end < 0 {
			return hostAndPort, "", false
		}
		return hostAndPort[:end+1], hostAndPort[end+2:], true
	}
	if strings.Count(hostAndPort, ":") != 1 {
		return hostAndPort, "", false
	}
	host, port, _ = strings.Cut(hostAndPort, ":")
	return host, port, true
}

// isPortNumber: 1 to 5 ASCII digits, from 1 to 65535.
func isPortNumber(port string) bool {
	if len(port) == 0 || len(port) > 5 || strings.Trim(port, "0123456789") != "" {
		return false
	}
	number, _ := strconv.Atoi(port)
	return number >= 1 && number <= 65535
}

// splitScheme takes the scheme (before the first "://", when no "/" comes earlier: after one it is in a path)
// from an address, and the rest without slashes at the end, which are no path.
func splitScheme(address string) (scheme, rest string, hasScheme bool) {
	end := strings.Index(address, "://")
	if end < 0 || strings.Index(address, "/") != end+1 {
		return "", strings.TrimRight(address, "/"), false
	}
	return address[:end], strings.TrimRight(address[end+3:], "/"), true
}

// hostPort takes host:port, http://host[:port] or https://host[:port], the forms MASKFORMER_ADDRESS takes across
// all clients, to host:port; a URL without a port gets its scheme's (80, 443), as a URL does. checkAddress says
// what it cannot take.
func hostPort(address string) string {
	scheme, rest, hasScheme := splitScheme(address)
	if _, _, hasPort := splitHostPort(rest); !hasPort && hasScheme {
		if scheme == "https" {
			return rest + ":443"
		}
		return rest + ":80"
	}
	return rest
}

// checkAddress refuses, in reading order, what hostPort cannot take: a scheme other than http and https, a path,
// a host without a port or scheme ("127.0.0.1", "[::1]"), no host (":5081"), a URL's host with a ':' outside
// brackets ("http://::1"), and a port that is not a number from 1 to 65535 ("127.0.0.1:abc", "http://127.0.0.1:0").
func checkAddress(address string) error {
	scheme, rest, hasScheme := splitScheme(address)
	if hasScheme && scheme != "http" && scheme != "https" {
		return errors.New(schemeMessage(address, scheme))
	}
	if slash := strings.Index(rest, "/"); slash >= 0 {
		return errors.New(pathMessage(address, rest[slash:]))
	}
	host, port, hasPort := splitHostPort(rest)
	switch {
	case !hasPort && !hasScheme:
		return errors.New(noPortMessage(address))
	case host == "" || host == "[]":
		return errors.New(noHostMessage(address))
	case !hasPort && strings.Contains(host, ":") && !(strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]")):
		return errors.New(unbracketedHostMessage(address, host))
	case hasPort && !isPortNumber(port):
		return errors.New(badPortMessage(address, port))
	}
	return nil
}

// tlsVariables are what every client reads for TLS (PEM files): CA certificates, a client certificate, its key.
var tlsVariables = []string{"MASKFORMER_CA_CERT", "MASKFORMER_CLIENT_CERT", "MASKFORMER_CLIENT_KEY"}

// transportSecurity is how to reach address: nil (cleartext) for host:port or http://, TLS for https://,
// checked against MASKFORMER_CA_CERT's CA certificates instead of the system's when set, presenting
// MASKFORMER_CLIENT_CERT with MASKFORMER_CLIENT_KEY (mutual TLS) when set. An error names settings that do
// not fit together or a file that cannot be read.
func transportSecurity(address string) (credentials.TransportCredentials, error) {
	ca, certificate, key := os.Getenv(tlsVariables[0]), os.Getenv(tlsVariables[1]), os.Getenv(tlsVariables[2])
	if (certificate == "") != (key == "") {
		return nil, errors.New("MASKFORMER_CLIENT_CERT and MASKFORMER_CLIENT_KEY go together; only one is set")
	}
	if !strings.HasPrefix(address, "https://") {
		if ca != "" || certificate != "" {
			return nil, fmt.Errorf("a CA or client certificate needs an https:// server address; %s is cleartext", address)
		}
		return nil, nil
	}
	config := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", ca, err)
		}
		config.RootCAs = x509.NewCertPool()
		if !config.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("MASKFORMER_CA_CERT %s holds no PEM CA certificate", ca)
		}
	}
	if certificate != "" {
		pair, err := tls.LoadX509KeyPair(certificate, key)
		if err != nil {
			return nil, fmt.Errorf("cannot read the client certificate %s with its key %s: %w", certificate, key, err)
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return credentials.NewTLS(config), nil
}

// bearerToken adds "authorization: Bearer <token>" to every call, over TLS or, on a trusted network,
// cleartext (so it does not ask for transport security).
type bearerToken string

func (t bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

func (bearerToken) RequireTransportSecurity() bool { return false }

// connect opens a channel (transportSecurity says over what) and waits until it is ready. The first attempt
// to connect that fails (nothing listens at the address; the TLS handshake failed) returns an error at once,
// naming the address, with grpc-go's reason and what to check (connectHint). With waitForServer, a failed
// attempt is made again, 0.25 s doubling to 4 s later (backoffDelay), until connectTimeout has passed: for a
// server that is still starting, at the cost of waiting that long for one that is not coming. Except when two
// attempts in a row reached a server and failed for a reason waiting cannot change (connectHint: the other
// scheme, a certificate refused): that returns an error at once. connectTimeout also bounds an attempt that
// neither succeeds nor fails. With MASKFORMER_TOKEN set, every call carries "authorization: Bearer <token>" (a
// server with MaskFormer:Security:TokensFile answers UNAUTHENTICATED without it).
func connect(address string, connectTimeout time.Duration, waitForServer bool) (*grpc.ClientConn, error) {
	if err := checkAddress(address); err != nil {
		return nil, err
	}
	security, err := transportSecurity(address)
	if err != nil {
		return nil, err
	}
	transport := grpc.WithInsecure()
	if security != nil {
		transport = grpc.WithTransportCredentials(security)
	}
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	options := []grpc.DialOption{
		transport,
		grpc.WithInitialWindowSize(streamWindow),
		grpc.WithInitialConnWindowSize(streamWindow),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64 << 20)),
		// The channel tries a lost server again within 4 s (gRPC's default waits up to 2 minutes), so that a
		// stream reconnecting to a restarted server finds it soon after it is up.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 250 * time.Millisecond, Multiplier: 2, Jitter: 0.2, MaxDelay: 4 * time.Second},
			MinConnectTimeout: 20 * time.Second,
		}),
	}
	if token := os.Getenv("MASKFORMER_TOKEN"); token != "" {
		options = append(options, grpc.WithPerRPCCredentials(bearerToken(token)))
	}
	timedOut := fmt.Errorf("server unreachable: cannot reach the MaskFormer server at %s within %v", address, connectTimeout)
	permanentBefore := false
	for failures := 0; ; failures++ {
		// A new channel for each attempt, as in the Python and Node examples, whose gRPC channels stay in
		// TRANSIENT_FAILURE across their own attempts (grpc-go 1.33's does not): every failed attempt is seen
		// and diagnosed, and attempts are spaced alike in all three.
		conn, err := grpc.DialContext(ctx, hostPort(address), options...)
		if err != nil && ctx.Err() != nil {
			return nil, timedOut
		}
		if err != nil {
			return nil, fmt.Errorf("server unreachable: cannot reach the MaskFormer server at %s: %v", address, err)
		}
		state := firstAttempt(ctx, conn)
		if state == connectivity.Ready {
			return conn, nil
		}
		reason := ""
		if state == connectivity.TransientFailure {
			reason = connectError(conn)
		}
		conn.Close()
		deadline, _ := ctx.Deadline()
		left := time.Until(deadline)
		if reason == "" || left <= 0 { // the deadline came first
			return nil, timedOut
		}
		probeTimeout := 2 * time.Second
		if left < probeTimeout {
			probeTimeout = left
		}
		hint, permanent := connectHint(address, security != nil, probeTimeout)
		// Twice in a row: a server that began listening between the attempt and the probe would be taken for
		// one that refused the handshake; the next attempt reaches it.
		if !waitForServer || (permanent && permanentBefore) {
			return nil, fmt.Errorf("server unreachable: cannot reach the MaskFormer server at %s: %s%s", address, reason, hint)
		}
		permanentBefore = permanent
		select {
		case <-time.After(backoffDelay(failures)):
		case <-ctx.Done():
		}
	}
}

// firstAttempt waits until conn's first attempt to connect has ended, READY or TRANSIENT_FAILURE, or ctx has,
// and returns conn's state then. (grpc.WithBlock would wait for READY through every failed attempt;
// FailOnNonTempDialError would not stop at a failed TLS handshake, which grpc-go counts as temporary.)
func firstAttempt(ctx context.Context, conn *grpc.ClientConn) connectivity.State {
	for {
		state := conn.GetState()
		if state == connectivity.Ready || state == connectivity.TransientFailure || !conn.WaitForStateChange(ctx, state) {
			return state
		}
	}
}

// connectError is grpc-go's reason for conn's failed attempt to connect. The connection does not tell it,
// but a call made (without WaitForReady) while it is in TRANSIENT_FAILURE fails at once with it in its message.
func connectError(conn *grpc.ClientConn) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := pb.NewSegmentationServiceClient(conn).ListModels(ctx, &pb.ListModelsRequest{})
	if st := status.Convert(err); err != nil && st.Code() == codes.Unavailable && st.Message() != "" {
		return st.Message()
	}
	return "the connection failed"
}

// probeResult is what probe found at an address.
type probeResult int

const (
	probeNothingListening probeResult = iota
	probeTLS
	probeCleartext
	probeSilent // listening, but closed or silent before two bytes came
)

// probe says what listens at address, from the first two bytes it answers a TLS ClientHello with, as the C#
// CLI's TlsProbe: probeTLS for a TLS record (handshake 0x16 or alert 0x15, then major version 3), probeCleartext
// for anything else (a cleartext HTTP/2 server's frames), probeSilent for a connection closed or silent before
// two bytes came, probeNothingListening when none could be opened; timeout at most in all. Made only after a
// failed connection, since grpc-go's reason does not say: a TLS server ends a cleartext connection without a word.
func probe(address string, timeout time.Duration) probeResult {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", hostPort(address))
	if err != nil {
		return probeNothingListening
	}
	defer conn.Close()
	first := &firstBytes{Conn: conn}
	// Whatever the handshake ends with (another CA, a certificate wanted), the answer's first bytes are kept.
	_ = tls.Client(first, &tls.Config{InsecureSkipVerify: true}).HandshakeContext(ctx)
	switch {
	case len(first.kept) < 2:
		return probeSilent
	case (first.kept[0] == 0x16 || first.kept[0] == 0x15) && first.kept[1] == 3:
		return probeTLS
	}
	return probeCleartext
}

// firstBytes is a connection that keeps the first two bytes read from it.
type firstBytes struct {
	net.Conn
	kept []byte
}

func (f *firstBytes) Read(b []byte) (int, error) {
	n, err := f.Conn.Read(b)
	if keep := 2 - len(f.kept); keep > 0 {
		if keep > n {
			keep = n
		}
		f.kept = append(f.kept, b[:keep]...)
	}
	return n, err
}

// outOfDate says how the PEM client certificate at path certificate is out of date, or "" when it is not (or
// cannot be read). Read when a connection failed, not before: a server that asks for no client certificate
// answers a client holding an expired one.
func outOfDate(certificate string) string {
	if certificate == "" {
		return ""
	}
	data, err := os.ReadFile(certificate)
	if err != nil {
		return ""
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return ""
	}
	parsed, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return ""
	}
	const utc = "2006-01-02 15:04:05Z"
	switch now := time.Now(); {
	case now.After(parsed.NotAfter):
		return fmt.Sprintf("MASKFORMER_CLIENT_CERT %s expired at %s; renew it", certificate, parsed.NotAfter.UTC().Format(utc))
	case now.Before(parsed.NotBefore):
		return fmt.Sprintf("MASKFORMER_CLIENT_CERT %s is not valid before %s; is this machine's clock right?", certificate, parsed.NotBefore.UTC().Format(utc))
	}
	return ""
}

// connectHint is what to check after a failed connection to address, as the C# CLI says it, as " (...)" to end
// the error with ("" when nothing answers there), and whether waiting cannot change it. The other scheme when the
// server answers a TLS ClientHello (probe, probeTimeout at most) other than the address says; else, over TLS, an
// out-of-date client certificate, or what to check.
//
// Waiting cannot help once a server answered the ClientHello, unless both it and the address are cleartext: the
// schemes differ, or a TLS server refused the handshake (its certificate not trusted, or ours), which stays so
// however often it is tried. Nothing listening, or a connection that said nothing (a proxy in front of a server
// not up yet), may yet become a server.
func connectHint(address string, overTLS bool, probeTimeout time.Duration) (hint string, permanent bool) {
	found := probe(address, probeTimeout)
	permanent = found == probeTLS || (overTLS && found == probeCleartext)
	switch {
	case !overTLS && found == probeTLS:
		return fmt.Sprintf(" (the server there seems to speak TLS, it answered a TLS handshake: use https://%s, with MASKFORMER_CA_CERT for a private CA)", hostPort(address)), permanent
	case !overTLS || found == probeNothingListening:
		return "", permanent
	case found == probeCleartext:
		return fmt.Sprintf(" (the server there seems to speak cleartext, it answered a TLS handshake with something else: use http://%s)", hostPort(address)), permanent
	}
	if outdated := outOfDate(os.Getenv(tlsVariables[1])); outdated != "" {
		return " (the TLS handshake failed: a server that asks for a client certificate refuses one out of date: " + outdated + ")", permanent
	}
	return " (it accepts connections, so the TLS handshake failed: is the server's certificate issued by a CA in " +
		"MASKFORMER_CA_CERT, or the system's, and does the server want a client certificate, MASKFORMER_CLIENT_CERT " +
		"and MASKFORMER_CLIENT_KEY, from a CA it trusts?)", permanent
}

// connection is how a command reaches its server (connectionFlags).
type connection struct {
	server        string
	model         string
	timeout       seconds
	waitForServer bool
}

func (c *connection) connect() (*grpc.ClientConn, error) {
	return connect(c.server, time.Duration(c.timeout), c.waitForServer)
}

// connectionFlags adds the flags every command takes: the server's address, the model, how long to wait for
// the server and whether to wait for one that is not listening yet.
func connectionFlags(flags *flag.FlagSet) *connection {
	c := &connection{timeout: seconds(defaultConnectTimeout)}
	flags.StringVar(&c.server, "server", defaultServer(), "the server, host:port or http(s)://host[:port], https:// for TLS; a URL without a port takes its scheme's (80, 443), an IPv6 host goes in brackets ([::1]:5081) (default $MASKFORMER_ADDRESS, else 127.0.0.1:5081)")
	flags.StringVar(&c.model, "model", "", "the model to use (default: the server's default model)")
	flags.Var(&c.timeout, "connect-timeout", "the longest wait for a connection, in seconds or as a duration")
	flags.BoolVar(&c.waitForServer, "wait-for-server", false, "try a failed connection again until -connect-timeout (a server still starting) instead of failing at once")
	return c
}

// seconds is a flag's length of time: a number of seconds (0.5, 30), as the Python and Node examples take
// it, or a Go duration (500ms, 30s); above 0.
type seconds time.Duration

func (s *seconds) String() string { return time.Duration(*s).String() }

func (s *seconds) Set(value string) error {
	d, err := time.ParseDuration(value)
	if err != nil {
		n, nerr := strconv.ParseFloat(value, 64)
		if nerr != nil {
			return fmt.Errorf("%q is neither a number of seconds nor a duration", value)
		}
		d = time.Duration(n * float64(time.Second))
	}
	if d <= 0 {
		return fmt.Errorf("%q: give a time above 0", value)
	}
	*s = seconds(d)
	return nil
}

// parseTasks reads a comma-separated list of semantic, instance and panoptic.
func parseTasks(list string) ([]pb.SegmentationTask, error) {
	var tasks []pb.SegmentationTask
	for _, name := range strings.Split(list, ",") {
		switch strings.TrimSpace(name) {
		case "semantic":
			tasks = append(tasks, pb.SegmentationTask_SEGMENTATION_TASK_SEMANTIC)
		case "instance":
			tasks = append(tasks, pb.SegmentationTask_SEGMENTATION_TASK_INSTANCE)
		case "panoptic":
			tasks = append(tasks, pb.SegmentationTask_SEGMENTATION_TASK_PANOPTIC)
		default:
			return nil, fmt.Errorf("unknown task %q (semantic, instance, panoptic)", name)
		}
	}
	return tasks, nil
}

// parseFlags parses a command's flags, which may come before or after its one positional argument
// (what names it in the error).
func parseFlags(flags *flag.FlagSet, args []string, what string) (string, error) {
	var positional []string
	for len(args) > 0 {
		if err := flags.Parse(args); err != nil {
			return "", err
		}
		args = flags.Args()
		if len(args) > 0 {
			positional = append(positional, args[0])
			args = args[1:]
		}
	}
	if len(positional) != 1 {
		return "", fmt.Errorf("%s takes one %s, got %d arguments", flags.Name(), what, len(positional))
	}
	return positional[0], nil
}

var imageExtensions = map[string]bool{".png": true, ".jpg": true, ".jpeg": true, ".bmp": true, ".gif": true, ".tga": true, ".tif": true, ".tiff": true, ".webp": true}

// listFrames returns the images of a folder sorted by name, leaving out ground truth and predictions
// stored beside the frames (stems ending in _semantic or _panoptic, or containing _pred), and folders (a
// named pipe is a frame: the tests' camera). A frame's name whose file cannot be found (a broken symbolic
// link) is an error naming it. Every error reads "cannot read FOLDER: ...", as the Python and Node examples'.
func listFrames(folder string) ([]string, error) {
	entries, err := os.ReadDir(folder)
	if err != nil {
		// Its path is folder, which the message names already.
		var pathError *fs.PathError
		if errors.As(err, &pathError) {
			err = pathError.Err
		}
		return nil, fmt.Errorf("cannot read %s: %w", folder, err)
	}
	var frames []string
	for _, entry := range entries {
		name := entry.Name()
		ext := strings.ToLower(filepath.Ext(name))
		stem := strings.TrimSuffix(name, filepath.Ext(name))
		if !imageExtensions[ext] || strings.HasSuffix(stem, "_semantic") || strings.HasSuffix(stem, "_panoptic") || strings.Contains(stem, "_pred") {
			continue
		}
		path := filepath.Join(folder, name)
		// Followed through symbolic links: a broken one is refused here, naming it, before a frame is sent,
		// rather than ending the stream where it comes; one to a folder is no frame.
		info, err := os.Stat(path)
		if errors.Is(err, fs.ErrNotExist) {
			if target, lerr := os.Readlink(path); lerr == nil {
				return nil, fmt.Errorf("cannot read %s: %s is a broken symbolic link (to %s)", folder, path, target)
			}
			return nil, fmt.Errorf("cannot read %s: %s is gone", folder, path)
		}
		if err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", folder, err)
		}
		if info.IsDir() {
			continue
		}
		frames = append(frames, path)
	}
	sort.Strings(frames)
	return frames, nil
}
