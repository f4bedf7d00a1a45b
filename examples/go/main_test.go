package main

import (
	"bytes"
	"errors"
	"fmt"
	"image/png"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	pb "github.com/maskformer-serve/maskformer/gen/go/maskformer/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The tests run against a live server whose default model is tiny-shapes, at $MASKFORMER_ADDRESS;
// without it every test fails (none is skipped).
const (
	heldoutImage = "../../models/tiny-shapes/heldout/0000.png"
	clipFolder   = "../../models/tiny-shapes/clip"
)

func serverAddress(t *testing.T) string {
	t.Helper()
	address := os.Getenv("MASKFORMER_ADDRESS")
	if address == "" {
		t.Fatal("MASKFORMER_ADDRESS is not set: start the server and set it to its host:port")
	}
	return address
}

func dial(t *testing.T) pb.SegmentationServiceClient {
	t.Helper()
	conn, err := connect(serverAddress(t), defaultConnectTimeout, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewSegmentationServiceClient(conn)
}

// The command as install.sh builds it, built once for every test that runs it.
var (
	buildOnce   sync.Once
	buildDir    string
	buildOutput []byte
	buildErr    error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// buildClient builds the command as install.sh does, so that the tests run what a user runs.
func buildClient(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "maskformer-go-test"); buildErr == nil {
			buildOutput, buildErr = exec.Command("go", "build", "-o", filepath.Join(buildDir, "maskformer-go"), ".").CombinedOutput()
		}
	})
	if buildErr != nil {
		t.Fatalf("go build: %v\n%s", buildErr, buildOutput)
	}
	return filepath.Join(buildDir, "maskformer-go")
}

// runClient runs the built command against the test server, without the token and TLS variables, and
// returns its exit code, standard output and standard error.
func runClient(t *testing.T, binary string, args ...string) (int, string, string) {
	t.Helper()
	return runClientEnv(t, binary, append(withoutClientVariables(), "MASKFORMER_ADDRESS="+serverAddress(t)), args...)
}

// withoutClientVariables is this process's environment less MASKFORMER_TOKEN and the TLS variables.
func withoutClientVariables() []string {
	var env []string
	for _, variable := range os.Environ() {
		name := strings.SplitN(variable, "=", 2)[0]
		if name != "MASKFORMER_TOKEN" && name != tlsVariables[0] && name != tlsVariables[1] && name != tlsVariables[2] {
			env = append(env, variable)
		}
	}
	return env
}

// runClientEnv runs the command with the given environment; returns its exit code, stdout and stderr.
func runClientEnv(t *testing.T, binary string, env []string, args ...string) (int, string, string) {
	t.Helper()
	command := exec.Command(binary, args...)
	command.Env = env
	var stdout, stderr bytes.Buffer
	command.Stdout, command.Stderr = &stdout, &stderr
	err := command.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), stdout.String(), stderr.String()
	default:
		t.Fatalf("running %s: %v", binary, err)
		return -1, "", ""
	}
}

func TestSegmentLabelMapMatchesItsClassAreas(t *testing.T) {
	client := dial(t)
	encoded, err := os.ReadFile(heldoutImage)
	if err != nil {
		t.Fatal(err)
	}
	input, err := png.DecodeConfig(bytes.NewReader(encoded))
	if err != nil {
		t.Fatal(err)
	}

	response, err := segment(client, encoded, []pb.SegmentationTask{pb.SegmentationTask_SEGMENTATION_TASK_SEMANTIC, pb.SegmentationTask_SEGMENTATION_TASK_PANOPTIC})
	if err != nil {
		t.Fatal(err)
	}
	if int(response.GetWidth()) != input.Width || int(response.GetHeight()) != input.Height {
		t.Fatalf("answer is %dx%d, the image %dx%d", response.GetWidth(), response.GetHeight(), input.Width, input.Height)
	}
	if response.GetModel() != "tiny-shapes" {
		t.Fatalf("model %q, want the default tiny-shapes", response.GetModel())
	}

	labelMap := response.GetSemantic().GetLabelMap()
	if labelMap.GetEncoding() != pb.LabelMapEncoding_LABEL_MAP_ENCODING_PNG || int(labelMap.GetWidth()) != input.Width || int(labelMap.GetHeight()) != input.Height {
		t.Fatalf("label map %s %dx%d, want a PNG of the image's size", labelMap.GetEncoding(), labelMap.GetWidth(), labelMap.GetHeight())
	}
	ids, err := labelIDs(labelMap.GetData(), false, labelMap.GetBitsPerPixel())
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != input.Width*input.Height {
		t.Fatalf("label map has %d pixels, the image %d", len(ids), input.Width*input.Height)
	}
	areas := map[uint32]uint64{}
	for _, id := range ids {
		areas[uint32(id)]++
	}
	classes := response.GetSemantic().GetClasses()
	if len(classes) != len(areas) || len(classes) < 2 {
		t.Fatalf("%d classes listed, %d in the map", len(classes), len(areas))
	}
	for i, class := range classes {
		if i > 0 && class.GetLabelId() <= classes[i-1].GetLabelId() {
			t.Fatalf("classes not in label order: %v", classes)
		}
		if areas[class.GetLabelId()] != class.GetArea() || class.GetLabelName() == "" {
			t.Fatalf("class %d %q: area %d listed, %d in the map", class.GetLabelId(), class.GetLabelName(), class.GetArea(), areas[class.GetLabelId()])
		}
	}

	segments := response.GetPanoptic().GetSegments()
	if len(segments) == 0 {
		t.Fatal("no panoptic segments")
	}
	for i, s := range segments {
		if s.GetId() != uint32(i+1) || s.GetTrackId() != 0 || s.GetArea() == 0 {
			t.Fatalf("segment %d: id %d, track %d, area %d (want ids from 1, track 0 on a unary call, an area)", i, s.GetId(), s.GetTrackId(), s.GetArea())
		}
	}
}

func TestSegmentCommandPrintsTheAnswer(t *testing.T) {
	binary := buildClient(t)
	response, err := segment(dial(t), mustRead(t, heldoutImage), []pb.SegmentationTask{pb.SegmentationTask_SEGMENTATION_TASK_SEMANTIC})
	if err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := runClient(t, binary, "segment", heldoutImage)
	if code != 0 {
		t.Fatalf("exit code %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{"model:   tiny-shapes", "size:    123x183", "classes:", "panoptic segments ("} {
		if !strings.Contains(stdout, want) {
			t.Fatalf("output lacks %q:\n%s", want, stdout)
		}
	}
	for _, class := range response.GetSemantic().GetClasses() {
		if !strings.Contains(stdout, " "+class.GetLabelName()+" ") {
			t.Fatalf("output lacks class %q:\n%s", class.GetLabelName(), stdout)
		}
	}
}

func TestStreamAnswersEveryFrameOnceInOrderWithTracks(t *testing.T) {
	frames, err := listFrames(clipFolder)
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 16 {
		t.Fatalf("%d frames in %s, want 16 (ground truth left out)", len(frames), clipFolder)
	}
	config := &pb.StreamConfig{
		Tasks:          []pb.SegmentationTask{pb.SegmentationTask_SEGMENTATION_TASK_PANOPTIC},
		OverloadPolicy: pb.OverloadPolicy_OVERLOAD_POLICY_QUEUE,
	}
	var out bytes.Buffer
	summary, err := streamFrames(dial(t), config, frames, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !summary.ordered || summary.results != 16 || summary.errors != 0 || summary.skipped != 0 {
		t.Fatalf("summary %+v, want 16 results in order\n%s", summary, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	tracked := 0
	for i, line := range lines {
		if !strings.HasPrefix(line, "frame ") || !strings.Contains(line, filepath.Base(frames[i])) || strings.Contains(line, "#0") {
			t.Fatalf("line %d %q: want frame %s with every segment tracked (no #0)", i, line, filepath.Base(frames[i]))
		}
		tracked += strings.Count(line, "#")
	}
	// No thing segment at all would pass the check above with nothing tracked.
	if tracked == 0 {
		t.Fatalf("no tracked segment in the whole clip:\n%s", out.String())
	}
}

func TestStreamCommandEndsWithItsCounts(t *testing.T) {
	binary := buildClient(t)
	code, stdout, stderr := runClient(t, binary, "stream", clipFolder, "-tasks", "semantic,instance,panoptic", "-policy", "queue")
	if code != 0 {
		t.Fatalf("exit code %d\n%s%s", code, stdout, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if last := lines[len(lines)-1]; last != "sent 16, results 16, errors 0, skipped 0" {
		t.Fatalf("last line %q\n%s", last, stdout)
	}
	if !strings.Contains(lines[0], "instances") || !strings.Contains(lines[0], "classes ") {
		t.Fatalf("first frame's line lacks instances or classes: %q", lines[0])
	}
}

func TestDeltaStreamRebuildsToTheCompleteAnswers(t *testing.T) {
	frames, err := listFrames(clipFolder)
	if err != nil {
		t.Fatal(err)
	}
	// Frame 6 sent twice in a row: the repeat changes nothing, so its maps come as deltas without
	// patches and its tracked masks by track id alone.
	frames = append(frames[:6:6], frames[5:]...)
	client := dial(t)
	tasks := []pb.SegmentationTask{pb.SegmentationTask_SEGMENTATION_TASK_SEMANTIC, pb.SegmentationTask_SEGMENTATION_TASK_INSTANCE, pb.SegmentationTask_SEGMENTATION_TASK_PANOPTIC}
	config := &pb.StreamConfig{Tasks: tasks, OverloadPolicy: pb.OverloadPolicy_OVERLOAD_POLICY_QUEUE, Delta: &pb.DeltaOptions{Enabled: true}}
	summary, rebuilt, err := streamWithDeltas(client, config, frames, io.Discard, true)
	if err != nil {
		t.Fatal(err)
	}
	var answers []*pb.SegmentResponse
	complete, err := streamFrames(client, &pb.StreamConfig{Tasks: tasks, OverloadPolicy: pb.OverloadPolicy_OVERLOAD_POLICY_QUEUE}, frames, io.Discard, collect(&answers))
	if err != nil {
		t.Fatal(err)
	}
	if len(rebuilt) != 17 || len(answers) != 17 || !summary.ordered || !complete.ordered {
		t.Fatalf("%d rebuilt and %d complete answers for 17 frames", len(rebuilt), len(answers))
	}
	equal, compared, differences := checkRebuilt(rebuilt, answers)
	if equal != 17 || compared != 17 {
		t.Fatalf("%d of %d rebuilt frames equal the complete answers: %v", equal, compared, differences)
	}

	// Each rebuilt frame keeps the result as it came, delta and all.
	first, repeat := rebuilt[0].result, rebuilt[6].result
	if first.GetSemantic().GetLabelMap() == nil || first.GetPanoptic().GetSegmentIdPng() == nil {
		t.Fatal("the first result is not complete")
	}
	semanticDelta, panopticDelta := repeat.GetSemantic().GetLabelMapDelta(), repeat.GetPanoptic().GetSegmentIdDelta()
	if semanticDelta == nil || panopticDelta == nil || len(semanticDelta.GetPatches())+len(panopticDelta.GetPatches()) != 0 || semanticDelta.GetBaseFrameId() != 6 {
		t.Fatalf("the repeated frame's maps: %v, %v; want deltas on frame 6 without patches", semanticDelta, panopticDelta)
	}
	unchanged := 0
	for _, instance := range repeat.GetInstance().GetInstances() {
		if instance.GetMaskUnchanged() {
			unchanged++
		}
	}
	if unchanged == 0 || summary.bytes >= complete.bytes {
		t.Fatalf("%d masks by track id on the repeated frame, %d bytes with deltas against %d without", unchanged, summary.bytes, complete.bytes)
	}
}

func TestStreamCommandWithDeltasChecksEveryFrame(t *testing.T) {
	binary := buildClient(t)
	code, stdout, stderr := runClient(t, binary, "stream", clipFolder, "-delta", "-tasks", "semantic,instance,panoptic")
	if code != 0 {
		t.Fatalf("exit code %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{"[complete]\n", "[delta]\n", "check: 16 of 16 rebuilt frames equal the complete answers\n", "% saved)\nsent 16, results 16, errors 0, skipped 0\n"} {
		if !strings.Contains(stdout, want) {
			t.Fatalf("output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestCorruptImageIsInvalidArgumentNamingTheField(t *testing.T) {
	client := dial(t)
	for _, data := range [][]byte{[]byte("not an image at all"), mustRead(t, heldoutImage)[:100]} {
		_, err := segment(client, data, nil)
		if status.Code(err) != codes.InvalidArgument || badRequestField(err) != "image.encoded" {
			t.Fatalf("got %v (field %q), want INVALID_ARGUMENT with a BadRequest naming image.encoded", err, badRequestField(err))
		}
	}

	binary := buildClient(t)
	path := filepath.Join(t.TempDir(), "corrupt.png")
	if err := os.WriteFile(path, []byte("\x89PNG\r\n\x1a\nshort"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runClient(t, binary, "segment", path)
	if code != 1 || !strings.Contains(stderr, "InvalidArgument") {
		t.Fatalf("exit code %d, stderr %q: want 1 and the status", code, stderr)
	}
}

// timedClient is runClient, and how long the command took.
func timedClient(t *testing.T, binary string, args ...string) (int, string, string, time.Duration) {
	t.Helper()
	started := time.Now()
	code, stdout, stderr := runClient(t, binary, args...)
	return code, stdout, stderr, time.Since(started)
}

// A failure "at once" is timed against a connect timeout far longer than the bound: a command that waited for
// the timeout instead would take 60 s, while a loaded machine (CI runs the suites beside servers) may take
// seconds to start a process.
const (
	atOnceConnectTimeout = "60"
	atOnce               = 20 * time.Second
)

// timedAtOnce is timedClient with -connect-timeout atOnceConnectTimeout.
func timedAtOnce(t *testing.T, binary string, args ...string) (int, string, string, time.Duration) {
	t.Helper()
	return timedClient(t, binary, append(args, "-connect-timeout", atOnceConnectTimeout)...)
}

// A connection refused ends the command at once, long before -connect-timeout.
func TestUnreachableServerFailsAtOnceNamingTheAddress(t *testing.T) {
	binary := buildClient(t)
	server := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	for _, args := range [][]string{{"segment", heldoutImage}, {"stream", clipFolder}} {
		code, _, stderr, elapsed := timedAtOnce(t, binary, append(args, "-server", server)...)
		if code != 2 || !strings.Contains(stderr, "cannot reach the MaskFormer server at "+server+": ") || !strings.Contains(stderr, "connection refused") {
			t.Fatalf("%s: exit code %d, stderr %q: want 2, the address and the refused connection", args[0], code, stderr)
		}
		if elapsed > atOnce {
			t.Fatalf("%s took %v to fail", args[0], elapsed)
		}
	}
}

func TestWaitForServerTriesAgainUntilTheConnectTimeout(t *testing.T) {
	binary := buildClient(t)
	server := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	code, _, stderr, elapsed := timedClient(t, binary, "segment", heldoutImage, "-server", server, "--wait-for-server", "--connect-timeout", "2")
	if code != 2 || !strings.Contains(stderr, "cannot reach the MaskFormer server at "+server+" within 2s") {
		t.Fatalf("exit code %d, stderr %q: want 2 and the wait", code, stderr)
	}
	// Under the default -connect-timeout (15 s), with room for a loaded machine: the 2 s was kept.
	if elapsed < 1900*time.Millisecond || elapsed > 12*time.Second {
		t.Fatalf("took %v, want about 2 s", elapsed)
	}
}

func TestTLSToACleartextServerFailsAtOnceSayingItSpeaksCleartext(t *testing.T) {
	binary := buildClient(t)
	server := "https://" + hostPort(serverAddress(t))
	hint := "the server there seems to speak cleartext, it answered a TLS handshake with something else: use http://" + hostPort(serverAddress(t)) + ")"
	for _, args := range [][]string{{"segment", heldoutImage}, {"stream", clipFolder}} {
		code, _, stderr, elapsed := timedAtOnce(t, binary, append(args, "-server", server)...)
		if code != 2 || !strings.Contains(stderr, "cannot reach the MaskFormer server at "+server+": ") || !strings.Contains(stderr, hint) {
			t.Fatalf("%s: exit code %d, stderr %q: want 2, the address and %q", args[0], code, stderr, hint)
		}
		if elapsed > atOnce {
			t.Fatalf("%s took %v to fail", args[0], elapsed)
		}
	}
}

// Waiting cannot change the server's scheme: the same error and hint as without -wait-for-server.
func TestWaitForServerEndsAtOnceOnTLSToACleartextServer(t *testing.T) {
	binary := buildClient(t)
	server := "https://" + hostPort(serverAddress(t))
	hint := "the server there seems to speak cleartext, it answered a TLS handshake with something else: use http://" + hostPort(serverAddress(t)) + ")"
	code, _, stderr, elapsed := timedAtOnce(t, binary, "segment", heldoutImage, "-server", server, "-wait-for-server")
	if code != 2 || !strings.Contains(stderr, "cannot reach the MaskFormer server at "+server+": ") || !strings.Contains(stderr, hint) {
		t.Fatalf("exit code %d, stderr %q: want 2, the address and %q", code, stderr, hint)
	}
	if elapsed > atOnce {
		t.Fatalf("took %v to fail", elapsed)
	}
}

func TestSegmentModelAndDeadline(t *testing.T) {
	binary := buildClient(t)
	for _, c := range []struct {
		args         []string
		code         int
		stdout, want string
	}{
		{[]string{"--model", "tiny-shapes", "--deadline", "60"}, 0, "model:   tiny-shapes ", ""},
		{[]string{"--model", "no-such-model"}, 1, "", "error: Segment failed with NotFound: Model 'no-such-model' is not served."},
		{[]string{"--deadline", "0.001"}, 1, "", "error: Segment failed with DeadlineExceeded"},
	} {
		code, stdout, stderr := runClient(t, binary, append([]string{"segment", heldoutImage}, c.args...)...)
		if code != c.code || !strings.Contains(stdout, c.stdout) || !strings.Contains(stderr, c.want) {
			t.Fatalf("%v: exit code %d\n%s%s: want %d, %q and %q", c.args, code, stdout, stderr, c.code, c.stdout, c.want)
		}
	}
}

func TestStreamUnknownModelEveryFrameNotFoundNoCheck(t *testing.T) {
	code, stdout, stderr := runClient(t, buildClient(t), "stream", clipFolder, "-delta", "--model", "no-such-model")
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if code != 1 || strings.Count(stdout, "error NotFound: Model 'no-such-model' is not served.") != 16 ||
		strings.Contains(stdout, "check:") || lines[len(lines)-1] != "sent 16, results 0, errors 16, skipped 0" {
		t.Fatalf("exit code %d\n%s%s: want 1, every frame NotFound, no check", code, stdout, stderr)
	}
}

func TestStreamRefusesABrokenSymlinkNamingItBeforeSending(t *testing.T) {
	folder := t.TempDir()
	for _, name := range []string{"a.png", "c.png"} {
		if err := os.WriteFile(filepath.Join(folder, name), mustRead(t, heldoutImage), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(folder, "missing.png"), filepath.Join(folder, "b.png")); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runClient(t, buildClient(t), "stream", folder)
	want := "b.png is a broken symbolic link (to " + filepath.Join(folder, "missing.png") + ")"
	if code != 1 || !strings.Contains(stderr, want) || strings.Contains(stdout, "frame ") {
		t.Fatalf("exit code %d\n%s%s: want 1 (the input failed, not the command line), %q and nothing sent", code, stdout, stderr, want)
	}
}

// A folder that cannot be read is said as the Python and Node examples say it: "cannot read FOLDER: ...".
func TestStreamFolderMissingOrWithoutFramesExitsOne(t *testing.T) {
	empty := t.TempDir()
	for folder, want := range map[string]string{
		empty:                             "error: no frames in " + empty,
		filepath.Join(empty, "not-there"): "error: cannot read " + filepath.Join(empty, "not-there") + ": no such file or directory",
		heldoutImage:                      "error: cannot read " + heldoutImage + ": not a directory",
	} {
		code, stdout, stderr := runClient(t, buildClient(t), "stream", folder)
		if code != 1 || strings.TrimSpace(stderr) != want || strings.Contains(stdout, "frame ") {
			t.Fatalf("stream %s: exit code %d\n%s%s: want 1 (the input failed, not the command line), %q and nothing sent", folder, code, stdout, stderr, want)
		}
	}
}

// badRequestField is the field the error's google.rpc.BadRequest detail names, if any.
func badRequestField(err error) string {
	for _, detail := range status.Convert(err).Details() {
		if badRequest, ok := detail.(*errdetails.BadRequest); ok && len(badRequest.GetFieldViolations()) > 0 {
			return badRequest.GetFieldViolations()[0].GetField()
		}
	}
	return ""
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestSegmentCommandSendsMaskformerToken runs against a second server that needs a bearer token
// (tools/test-all.sh starts one): without MASKFORMER_TOKEN the call is UNAUTHENTICATED, with it answered.
func TestSegmentCommandSendsMaskformerToken(t *testing.T) {
	server, token := os.Getenv("MASKFORMER_TOKEN_SERVER"), os.Getenv("MASKFORMER_TOKEN_SERVER_TOKEN")
	if server == "" || token == "" {
		t.Fatal("MASKFORMER_TOKEN_SERVER and MASKFORMER_TOKEN_SERVER_TOKEN are not set: start a server with " +
			"--MaskFormer:Security:TokensFile=FILE (FILE holding the token) and set both (tools/test-all.sh does)")
	}
	binary := buildClient(t)
	run := func(extra ...string) (int, string, string) {
		return runClientEnv(t, binary, append(withoutClientVariables(), extra...), "segment", heldoutImage, "-server", server)
	}

	code, stdout, stderr := run()
	if code != 1 || !strings.Contains(stderr, "Unauthenticated") {
		t.Fatalf("without a token: exit code %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = run("MASKFORMER_TOKEN=" + token)
	if code != 0 || !strings.Contains(stdout, "classes:") {
		t.Fatalf("with the token: exit code %d\n%s%s", code, stdout, stderr)
	}
}

// tlsServer is the third server tools/test-all.sh starts, with TLS that wants a client certificate from its
// own CA, and the folder of tools/make-test-certs.sh's files for it.
func tlsServer(t *testing.T) (string, string) {
	t.Helper()
	server, folder := os.Getenv("MASKFORMER_TLS_SERVER"), os.Getenv("MASKFORMER_TLS_FILES")
	if server == "" || folder == "" {
		t.Fatal("MASKFORMER_TLS_SERVER and MASKFORMER_TLS_FILES are not set: make certificates with tools/make-test-certs.sh DIR, " +
			"start a server on https://127.0.0.1:PORT with DIR/server.pem, DIR/server.key and " +
			"MaskFormer:Security:ClientCaPath=DIR/ca.pem, and set both to its address and DIR (tools/test-all.sh does)")
	}
	return server, folder
}

// runWithTLS runs the command with only the given TLS variables (and no token) set.
func runWithTLS(t *testing.T, tlsEnv []string, args ...string) (int, string, string) {
	t.Helper()
	return runClientEnv(t, buildClient(t), append(withoutClientVariables(), tlsEnv...), args...)
}

func fullTLS(folder string) []string {
	return []string{
		"MASKFORMER_CA_CERT=" + filepath.Join(folder, "ca.pem"),
		"MASKFORMER_CLIENT_CERT=" + filepath.Join(folder, "client.pem"),
		"MASKFORMER_CLIENT_KEY=" + filepath.Join(folder, "client.key"),
	}
}

func TestSegmentAndStreamOverMutualTLS(t *testing.T) {
	server, folder := tlsServer(t)
	code, stdout, stderr := runWithTLS(t, fullTLS(folder), "segment", heldoutImage, "-server", server)
	if code != 0 || !strings.Contains(stdout, "classes:") {
		t.Fatalf("segment: exit code %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = runWithTLS(t, fullTLS(folder), "stream", clipFolder, "-server", server, "-tasks", "semantic")
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if code != 0 || lines[len(lines)-1] != "sent 16, results 16, errors 0, skipped 0" {
		t.Fatalf("stream: exit code %d\n%s%s", code, stdout, stderr)
	}
}

func TestWithoutClientCertificateFailsAtOnce(t *testing.T) {
	server, folder := tlsServer(t)
	started := time.Now()
	code, stdout, stderr := runWithTLS(t, fullTLS(folder)[:1], "segment", heldoutImage, "-server", server, "-connect-timeout", atOnceConnectTimeout)
	if code != 2 || strings.Contains(stdout, "classes:") || !strings.Contains(stderr, "cannot reach the MaskFormer server at "+server+": ") || !strings.Contains(stderr, "the TLS handshake failed") {
		t.Fatalf("exit code %d\n%s%s: want 2 and a failed handshake", code, stdout, stderr)
	}
	if elapsed := time.Since(started); elapsed > atOnce {
		t.Fatalf("took %v to fail", elapsed)
	}
}

func TestServerFromAnotherCaRefused(t *testing.T) {
	server, folder := tlsServer(t)
	env := append([]string{"MASKFORMER_CA_CERT=" + filepath.Join(folder, "other-ca.pem")}, fullTLS(folder)[1:]...)
	started := time.Now()
	code, stdout, stderr := runWithTLS(t, env, "segment", heldoutImage, "-server", server, "-connect-timeout", atOnceConnectTimeout)
	if code != 2 || strings.Contains(stdout, "classes:") || !strings.Contains(stderr, "the TLS handshake failed") || !strings.Contains(stderr, "x509") {
		t.Fatalf("exit code %d\n%s%s: want 2, a failed handshake and the certificate's error", code, stdout, stderr)
	}
	if elapsed := time.Since(started); elapsed > atOnce {
		t.Fatalf("took %v to fail", elapsed)
	}
}

func TestCleartextAddressOfTheTLSServerSaysItSpeaksTLS(t *testing.T) {
	server, _ := tlsServer(t)
	hint := "the server there seems to speak TLS, it answered a TLS handshake: use " + server + ", with MASKFORMER_CA_CERT for a private CA)"
	for _, args := range [][]string{{"segment", heldoutImage, "-server", hostPort(server)}, {"stream", clipFolder, "-server", strings.Replace(server, "https://", "http://", 1)}} {
		started := time.Now()
		code, _, stderr := runWithTLS(t, nil, append(args, "-connect-timeout", atOnceConnectTimeout)...)
		if code != 2 || !strings.Contains(stderr, "cannot reach the MaskFormer server at "+args[3]+": ") || !strings.Contains(stderr, hint) {
			t.Fatalf("%s: exit code %d, stderr %q: want 2, the address and %q", args[0], code, stderr, hint)
		}
		if elapsed := time.Since(started); elapsed > atOnce {
			t.Fatalf("%s took %v to fail", args[0], elapsed)
		}
	}
}

// A scheme or a certificate that does not fit stays so: -wait-for-server ends with the error and hint it gives
// without, long before -connect-timeout.
func TestWaitForServerEndsAtOnceWhenWaitingCannotHelp(t *testing.T) {
	server, folder := tlsServer(t)
	full := fullTLS(folder)
	cases := []struct {
		what, server string
		env          []string
		said         string
	}{
		{"a cleartext address", hostPort(server), nil, "the server there seems to speak TLS, it answered a TLS handshake: use " + server + ", "},
		{"no client certificate", server, full[:1], "it accepts connections, so the TLS handshake failed"},
		{"a server from another CA", server, append([]string{"MASKFORMER_CA_CERT=" + filepath.Join(folder, "other-ca.pem")}, full[1:]...), "x509"},
		{"an expired client certificate", server, []string{full[0], "MASKFORMER_CLIENT_CERT=" + filepath.Join(folder, "client-expired.pem"),
			"MASKFORMER_CLIENT_KEY=" + filepath.Join(folder, "client-expired.key")}, "refuses one out of date"},
	}
	for _, c := range cases {
		started := time.Now()
		code, stdout, stderr := runWithTLS(t, c.env, "segment", heldoutImage, "-server", c.server, "-wait-for-server", "-connect-timeout", atOnceConnectTimeout)
		if code != 2 || !strings.Contains(stderr, "cannot reach the MaskFormer server at "+c.server+": ") || !strings.Contains(stderr, c.said) {
			t.Errorf("%s: exit code %d\n%s%s: want 2, the address and %q", c.what, code, stdout, stderr, c.said)
		}
		if elapsed := time.Since(started); elapsed > atOnce {
			t.Errorf("%s: took %v to fail", c.what, elapsed)
		}
	}
}

// assertOutOfDate runs segment with client certificate name (tools/make-test-certs.sh), which must fail at once
// saying said and a date between earliest and latest from now, and returns its stderr.
func assertOutOfDate(t *testing.T, name, said string, earliest, latest time.Duration) string {
	t.Helper()
	server, folder := tlsServer(t)
	certificate := filepath.Join(folder, name+".pem")
	env := []string{fullTLS(folder)[0], "MASKFORMER_CLIENT_CERT=" + certificate, "MASKFORMER_CLIENT_KEY=" + filepath.Join(folder, name+".key")}
	started := time.Now()
	code, stdout, stderr := runWithTLS(t, env, "segment", heldoutImage, "-server", server, "-connect-timeout", atOnceConnectTimeout)
	elapsed := time.Since(started)
	if code != 2 || strings.Contains(stdout, "classes:") {
		t.Fatalf("exit code %d\n%s%s: want 2", code, stdout, stderr)
	}
	match := regexp.MustCompile("MASKFORMER_CLIENT_CERT " + regexp.QuoteMeta(certificate) + " " + said + ` (\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ)`).FindStringSubmatch(stderr)
	if match == nil || strings.Contains(stderr, "does the server want a client certificate") {
		t.Fatalf("stderr %q: want %q and a date", stderr, said)
	}
	when, err := time.Parse("2006-01-02 15:04:05Z", match[1])
	if from := time.Until(when); err != nil || from < earliest || from > latest {
		t.Fatalf("%s (%v) is %v from now: want between %v and %v", match[1], err, from, earliest, latest)
	}
	if elapsed > atOnce {
		t.Fatalf("took %v to fail", elapsed)
	}
	return stderr
}

func TestExpiredClientCertificateSaysWhenItExpired(t *testing.T) {
	if stderr := assertOutOfDate(t, "client-expired", "expired at", -48*time.Hour, 0); !strings.Contains(stderr, "; renew it)") {
		t.Fatalf("stderr %q: want what to do", stderr)
	}
}

func TestClientCertificateNotYetValidSaysFromWhen(t *testing.T) {
	if stderr := assertOutOfDate(t, "client-not-yet-valid", "is not valid before", 0, 48*time.Hour); !strings.Contains(stderr, "; is this machine's clock right?)") {
		t.Fatalf("stderr %q: want what to check", stderr)
	}
}

func TestTLSSettingsThatDoNotFitAreNamed(t *testing.T) {
	server, folder := tlsServer(t)
	for _, c := range []struct {
		name, server string
		env          []string
		want         string
	}{
		{"cleartext address", strings.Replace(server, "https://", "http://", 1), fullTLS(folder), "needs an https:// server address"},
		{"certificate without key", server, fullTLS(folder)[:2], "go together"},
		{"missing CA file", server, append([]string{"MASKFORMER_CA_CERT=/no/such/ca.pem"}, fullTLS(folder)[1:]...), "cannot read /no/such/ca.pem"},
		{"CA file without certificates", server, append([]string{"MASKFORMER_CA_CERT=" + filepath.Join(folder, "client.key")}, fullTLS(folder)[1:]...), "holds no PEM CA certificate"},
		{"key of another certificate", server, append(fullTLS(folder)[:2], "MASKFORMER_CLIENT_KEY="+filepath.Join(folder, "server.key")), "cannot read the client certificate"},
	} {
		code, _, stderr := runWithTLS(t, c.env, "segment", heldoutImage, "-server", c.server)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit code %d, stderr %q: want 2 and %q", c.name, code, stderr, c.want)
		}
	}
}

// silentServer reads every frame and answers none, until the client cancels: a server that stops answering,
// which the real server cannot be made to be.
type silentServer struct {
	pb.UnimplementedSegmentationServiceServer
}

func (silentServer) SegmentStream(stream pb.SegmentationService_SegmentStreamServer) error {
	for {
		if _, err := stream.Recv(); err != nil {
			break
		}
	}
	<-stream.Context().Done()
	return stream.Context().Err()
}

func TestStreamToAServerThatStopsAnsweringCancelledAfterTheAnswerTimeout(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := grpc.NewServer()
	pb.RegisterSegmentationServiceServer(server, silentServer{})
	go server.Serve(listener)
	defer server.Stop()
	conn, err := connect(listener.Addr().String(), defaultConnectTimeout, false)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	saved := answerTimeout
	answerTimeout = time.Second
	defer func() { answerTimeout = saved }()

	started := time.Now()
	_, err = streamFrames(pb.NewSegmentationServiceClient(conn), &pb.StreamConfig{}, []string{heldoutImage}, io.Discard, nil)

	if err == nil || !strings.Contains(err.Error(), "no answer for 1s while 1 frame(s) waited: stream cancelled") {
		t.Fatalf("got %v, want the answer timeout named", err)
	}
	if elapsed := time.Since(started); elapsed > 30*time.Second {
		t.Fatalf("cancelled only after %v", elapsed)
	}
}
