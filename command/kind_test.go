package command_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/eventstore"
)

// A Kind marshals as its name and reads back from it; an unknown name or
// a number is refused.
func TestKindText(t *testing.T) {
	for k := command.KindInternal; k <= command.KindOK; k++ {
		b, err := json.Marshal(k)
		if err != nil || string(b) != `"`+k.String()+`"` {
			t.Errorf("%v marshals as %s, %v", k, b, err)
		}
		var back command.Kind
		if err := json.Unmarshal(b, &back); err != nil || back != k {
			t.Errorf("%s reads back as %v, %v", b, back, err)
		}
	}
	var k command.Kind
	if err := json.Unmarshal([]byte(`"no such kind"`), &k); !errors.Is(err, eventstore.ErrInvalidArgument) {
		t.Errorf("an unknown name: %v", err)
	}
	if err := json.Unmarshal([]byte(`3`), &k); err == nil {
		t.Error("a number is accepted")
	}
	if _, err := json.Marshal(command.Kind(99)); err == nil {
		t.Error("an unknown kind marshals")
	}
}

// KindOf classifies the store's sentinels, wrapped or not.
func TestKindOfStoreSentinels(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want command.Kind
	}{
		{eventstore.ErrVersionConflict, command.KindAborted},
		{eventstore.ErrTopicNotFound, command.KindNotFound},
		{eventstore.ErrGroupNotFound, command.KindNotFound},
		{eventstore.ErrClosed, command.KindUnavailable},
		{eventstore.ErrStoreFailed, command.KindUnavailable},
		{eventstore.ErrInvalidArgument, command.KindInvalidArgument},
		{errors.New("boom"), command.KindInternal},
	} {
		if got := command.KindOf(fmt.Errorf("reading: %w", tc.err)); got != tc.want {
			t.Errorf("KindOf(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
