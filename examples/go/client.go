package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	pb "github.com/maskformer-serve/maskformer/gen/go/maskformer/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
)

// defaultConnectTimeout bounds the wait for a ready connection, so that a wrong address fails fast.
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

// hostPort takes host:port, http://host:port or https://host:port, the forms MASKFORMER_ADDRESS takes across all clients.
func hostPort(address string) string {
	return strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(address, "http://"), "https://"), "/")
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

// connect opens a channel (transportSecurity says over what) and waits until it is ready, at most
// connectTimeout. With MASKFORMER_TOKEN set, every call carries "authorization: Bearer <token>" (a server
// with MaskFormer:Security:TokensFile answers UNAUTHENTICATED without it).
func connect(address string, connectTimeout time.Duration) (*grpc.ClientConn, error) {
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
		grpc.WithBlock(),
		grpc.WithReturnConnectionError(),
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
	conn, err := grpc.DialContext(ctx, hostPort(address), options...)
	if err != nil {
		hint := ""
		if security != nil && listening(address) {
			hint = " (it accepts connections, so the TLS handshake failed: is the server's certificate issued by a CA in " +
				"MASKFORMER_CA_CERT, or the system's, and does the server want a client certificate, MASKFORMER_CLIENT_CERT " +
				"and MASKFORMER_CLIENT_KEY, from a CA it trusts?)"
		}
		return nil, fmt.Errorf("server unreachable: cannot reach the MaskFormer server at %s within %v: %v%s", address, connectTimeout, err, hint)
	}
	return conn, nil
}

// listening says whether something accepts TCP connections at address: a TLS channel that never became
// ready then failed in its handshake, not for want of a server.
func listening(address string) bool {
	conn, err := net.DialTimeout("tcp", hostPort(address), 2*time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// connectionFlags adds the flags every command takes: the server's address and how long to wait for it.
func connectionFlags(flags *flag.FlagSet) (*string, *time.Duration) {
	server := flags.String("server", defaultServer(), "host:port of the server, or https://host:port for TLS (default $MASKFORMER_ADDRESS, else 127.0.0.1:5081)")
	timeout := flags.Duration("connect-timeout", defaultConnectTimeout, "how long to wait for the server")
	return server, timeout
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
// stored beside the frames (stems ending in _semantic or _panoptic, or containing _pred).
func listFrames(folder string) ([]string, error) {
	entries, err := os.ReadDir(folder)
	if err != nil {
		return nil, err
	}
	var frames []string
	for _, entry := range entries {
		name := entry.Name()
		ext := strings.ToLower(filepath.Ext(name))
		stem := strings.TrimSuffix(name, filepath.Ext(name))
		if entry.IsDir() || !imageExtensions[ext] || strings.HasSuffix(stem, "_semantic") || strings.HasSuffix(stem, "_panoptic") || strings.Contains(stem, "_pred") {
			continue
		}
		frames = append(frames, filepath.Join(folder, name))
	}
	sort.Strings(frames)
	return frames, nil
}
