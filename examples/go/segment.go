package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	pb "github.com/maskformer-serve/maskformer/gen/go/maskformer/v1"
	"google.golang.org/grpc/status"
)

// callDeadline bounds each unary call: a call that runs out of it may be retried (Segment is idempotent).
const callDeadline = 30 * time.Second

func segmentCommand(args []string) int {
	flags := flag.NewFlagSet("segment", flag.ContinueOnError)
	server, connectTimeout := connectionFlags(flags)
	taskList := flags.String("tasks", "semantic,panoptic", "comma-separated tasks: semantic, instance, panoptic")
	path, err := parseFlags(flags, args, "IMAGE")
	if err != nil {
		return fail(err, 2)
	}
	tasks, err := parseTasks(*taskList)
	if err != nil {
		return fail(err, 2)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fail(err, 2)
	}

	conn, err := connect(*server, *connectTimeout)
	if err != nil {
		return fail(err, 2)
	}
	defer conn.Close()

	response, err := segment(pb.NewSegmentationServiceClient(conn), data, tasks)
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: Segment failed with %s: %s\n", status.Code(err), status.Convert(err).Message())
		return 1
	}
	fmt.Printf("image:   %s\n", path)
	printResponse(os.Stdout, response)
	return 0
}

// segment sends one encoded image and returns the answer.
func segment(client pb.SegmentationServiceClient, encoded []byte, tasks []pb.SegmentationTask) (*pb.SegmentResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callDeadline)
	defer cancel()
	return client.Segment(ctx, &pb.SegmentRequest{
		Image:   &pb.Image{Source: &pb.Image_Encoded{Encoded: encoded}},
		Tasks:   tasks,
		FrameId: 1,
	})
}

func printResponse(out io.Writer, r *pb.SegmentResponse) {
	fmt.Fprintf(out, "model:   %s (version %s) on %s\n", r.GetModel(), orDash(r.GetModelVersion()), orDash(r.GetDevice()))
	fmt.Fprintf(out, "size:    %dx%d\n", r.GetWidth(), r.GetHeight())
	total := float64(r.GetWidth()) * float64(r.GetHeight())
	if semantic := r.GetSemantic(); semantic != nil {
		lm := semantic.GetLabelMap()
		fmt.Fprintf(out, "semantic label map: %dx%d, %d-bit, %s, %d bytes\n", lm.GetWidth(), lm.GetHeight(), lm.GetBitsPerPixel(), lm.GetEncoding(), len(lm.GetData()))
		fmt.Fprintln(out, "classes:")
		for _, c := range semantic.GetClasses() {
			fmt.Fprintf(out, "  %3d %-16s %8d px  %5.1f%%\n", c.GetLabelId(), c.GetLabelName(), c.GetArea(), 100*float64(c.GetArea())/total)
		}
	}
	if instance := r.GetInstance(); instance != nil {
		fmt.Fprintf(out, "instances (%d):\n", len(instance.GetInstances()))
		for _, i := range instance.GetInstances() {
			b := i.GetBbox()
			fmt.Fprintf(out, "  %-16s score %.3f  area %6d  bbox [%d, %d, %d, %d]\n", i.GetLabelName(), i.GetScore(), i.GetArea(), b.GetX(), b.GetY(), b.GetWidth(), b.GetHeight())
		}
	}
	if panoptic := r.GetPanoptic(); panoptic != nil {
		fmt.Fprintf(out, "panoptic segments (%d):\n", len(panoptic.GetSegments()))
		for _, s := range panoptic.GetSegments() {
			kind := "stuff"
			if s.GetIsThing() {
				kind = "thing"
			}
			b := s.GetBbox()
			fmt.Fprintf(out, "  id %3d %-16s %s  score %.3f  area %6d  bbox [%d, %d, %d, %d]\n", s.GetId(), s.GetLabelName(), kind, s.GetScore(), s.GetArea(), b.GetX(), b.GetY(), b.GetWidth(), b.GetHeight())
		}
	}
	t := r.GetTimings()
	fmt.Fprintf(out, "timings (ms): decode %.2f, preprocess %.2f, queue %.2f, inference %.2f (batch %d), postprocess %.2f, encode %.2f, total %.2f\n",
		t.GetDecodeMs(), t.GetPreprocessMs(), t.GetQueueMs(), t.GetInferenceMs(), t.GetBatchSize(), t.GetPostprocessMs(), t.GetEncodeMs(), t.GetTotalMs())
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
