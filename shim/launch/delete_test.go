package launch

import (
	"bytes"
	"testing"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestDeleteResponseWire checks the hand-encoded DeleteResponse against the
// generated type: same bytes, and containerd's decoder reads the same values.
func TestDeleteResponseWire(t *testing.T) {
	for _, r := range []deleteResponse{
		{Pid: 4242, ExitStatus: 137, ExitedAt: time.Unix(1764300000, 123456789)},
		{Pid: 0, ExitStatus: 0, ExitedAt: time.Unix(1764300000, 0)},
		{Pid: 1<<32 - 1, ExitStatus: 255, ExitedAt: time.Unix(0, 1)},
		{},
	} {
		want := &taskAPI.DeleteResponse{Pid: r.Pid, ExitStatus: r.ExitStatus, ExitedAt: timestamppb.New(r.ExitedAt)}
		wantBytes, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		got := r.marshal()
		if !bytes.Equal(got, wantBytes) {
			t.Errorf("%+v: marshal = %x, generated type gives %x", r, got, wantBytes)
		}
		var dec taskAPI.DeleteResponse
		if err := proto.Unmarshal(got, &dec); err != nil {
			t.Fatalf("%+v: decode: %v", r, err)
		}
		if dec.Pid != r.Pid || dec.ExitStatus != r.ExitStatus || !dec.ExitedAt.AsTime().Equal(r.ExitedAt) {
			t.Errorf("%+v: decoded as %v", r, &dec)
		}
	}
}
