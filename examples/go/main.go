// Command maskformer-go is a MaskFormer Serve client in Go: a unary Segment call on one image, and a
// bidirectional SegmentStream over a folder of frames.
//
//	maskformer-go segment IMAGE [-server ADDRESS] [-model NAME] [-deadline 30] [-connect-timeout 15] [-wait-for-server]
//	                            [-tasks semantic,panoptic]
//	maskformer-go stream FOLDER [-server ADDRESS] [-model NAME] [-connect-timeout 15] [-wait-for-server] [-tasks panoptic]
//	                            [-policy queue] [-in-flight N] [-delta [-keyframe-interval N] [-no-check]] [-reconnect-for 60s] [-fps N]
//
// A failed connection (nothing listening, a failed TLS handshake) ends a command at once unless
// -wait-for-server, which tries again until -connect-timeout. A segment call is made again on an UNAVAILABLE
// the server sent (loading, draining), within its deadline (-deadline, 30 s). A stream goes on across the server's drain and reconnects when it ends UNAVAILABLE, sending again the
// frames without a result, until a frame has waited -reconnect-for with no answer. ADDRESS is host:port or
// http(s)://host[:port] (https:// for TLS), default $MASKFORMER_ADDRESS, else 127.0.0.1:5081. Exit codes: 0 success, 1 a
// call or a frame failed (or the answers did not match the frames sent, or stream's folder cannot be read,
// holds a broken frame link or no frame), 2 the server cannot be reached or the command line is wrong.
package main

import (
	"fmt"
	"os"
)

const usage = `usage:
  maskformer-go segment IMAGE [-server ADDRESS] [-model NAME] [-deadline SECONDS] [-connect-timeout SECONDS] [-wait-for-server]
                              [-tasks semantic,panoptic]
  maskformer-go stream FOLDER [-server ADDRESS] [-model NAME] [-connect-timeout SECONDS] [-wait-for-server] [-tasks panoptic]
                              [-policy queue|drop-oldest|latest-only] [-in-flight N] [-delta [-keyframe-interval N] [-no-check]]
                              [-reconnect-for 60s] [-fps N]
ADDRESS: host:port or http(s)://host[:port], https:// for TLS (default $MASKFORMER_ADDRESS, else 127.0.0.1:5081);
a URL without a port takes its scheme's (80, 443), an IPv6 host goes in brackets ([::1]:5081)`

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, usage)
		return 2
	}

	switch args[0] {
	case "segment":
		return segmentCommand(args[1:])
	case "stream":
		return streamCommand(args[1:])
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n%s\n", args[0], usage)
		return 2
	}
}
