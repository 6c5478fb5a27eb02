package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/muninn-es/muninn/eventstore"
)

// A store whose write-ahead log was damaged in the middle refuses to open,
// naming the log and the byte; Repair (the muninn repair command) drops
// what was logged from the damaged record on and says exactly what that
// was.
func ExampleRepair() {
	dir, err := os.MkdirTemp("", "muninn-repair-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	s, err := eventstore.Open(dir)
	if err != nil {
		log.Fatal(err)
	}
	if err := s.CreateTopic(ctx, "orders", eventstore.TopicConfig{Partitions: 1}); err != nil {
		log.Fatal(err)
	}
	for i := range 10 {
		ev := eventstore.Event{Type: "order.placed", Payload: fmt.Appendf(nil, `{"order":%d}`, i)}
		if _, err := s.Append(ctx, "orders", "order-1", eventstore.Exact(uint64(i)), []eventstore.Event{ev}); err != nil {
			log.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		log.Fatal(err)
	}

	// One flipped bit in the middle of the log.
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	wal := logs[len(logs)-1]
	b, _ := os.ReadFile(wal)
	b[len(b)/2] ^= 0x08
	if err := os.WriteFile(wal, b, 0o644); err != nil {
		log.Fatal(err)
	}

	_, err = eventstore.Open(dir)
	var ce *eventstore.CorruptFileError
	fmt.Println("Open refuses:", errors.Is(err, eventstore.ErrCorrupt), errors.As(err, &ce) && ce.Path == wal)

	rep, err := eventstore.Repair(dir)
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range rep.WAL.Partitions {
		fmt.Printf("dropped %s/%d offsets %d..%d\n", p.Topic, p.Partition, p.From, p.To)
	}
	for _, st := range rep.WAL.Streams {
		fmt.Printf("dropped stream %s versions %d..%d\n", st.Key, st.From, st.To)
	}

	s, err = eventstore.Open(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	head, _ := s.HeadVersion(ctx, "orders", "order-1")
	fmt.Println("head version after repair:", head)
	// Output:
	// Open refuses: true true
	// dropped orders/0 offsets 4..9
	// dropped stream order-1 versions 5..10
	// head version after repair: 4
}
