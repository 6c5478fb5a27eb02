// Command order is the order service of the ordershipping example: it
// places orders (over HTTP, or -place N at start), appends OrderPlaced
// events that its relay publishes to NATS JetStream, and marks an order
// shipped when the shipping service's ShipmentScheduled comes back.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/examples/ordershipping/events"
	"github.com/muninn-es/muninn/examples/ordershipping/node"
)

func main() {
	dir := flag.String("dir", "", "store directory (required)")
	natsURL := flag.String("nats", "nats://127.0.0.1:4222", "NATS JetStream URL")
	httpAddr := flag.String("http", "127.0.0.1:8080", "HTTP listen address (loopback)")
	place := flag.Int("place", 0, "orders to place at start")
	flag.Parse()
	if *dir == "" || *place < 0 {
		fmt.Fprintln(os.Stderr, "order: -dir is required and -place must not be negative")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *dir, *natsURL, *httpAddr, *place); err != nil {
		fmt.Fprintln(os.Stderr, "order:", err)
		os.Exit(1)
	}
}

// Order is the read model of one order.
type Order struct {
	ID     string `json:"id"`
	Item   string `json:"item"`
	Status string `json:"status"`
}

const ordersPrefix = "order/orders/"

type service struct {
	store eventstore.Store
	out   sync.Mutex // serializes lines on stdout
}

func (s *service) println(a ...any) {
	s.out.Lock()
	defer s.out.Unlock()
	fmt.Println(a...)
}

// placeOrder appends OrderPlaced and writes the read model in the same
// batch (WithState).
func (s *service) placeOrder(ctx context.Context, item string) (Order, error) {
	o := Order{ID: uuid.NewString(), Item: item, Status: "placed"}
	payload, _ := json.Marshal(events.OrderPlaced{OrderID: o.ID, Item: item})
	view, _ := json.Marshal(o)
	_, err := s.store.Append(ctx, events.TopicOrders, o.ID, eventstore.NoStream,
		[]eventstore.Event{{Type: events.TypeOrderPlaced, Payload: payload}},
		eventstore.WithState(func(_ eventstore.AppendResult, w eventstore.StateWriter) error {
			return w.Set([]byte(ordersPrefix+o.ID), view)
		}))
	return o, err
}

func (s *service) orders(ctx context.Context) ([]Order, error) {
	var list []Order
	for kv, err := range s.store.Scan(ctx, []byte(ordersPrefix), eventstore.PrefixEnd([]byte(ordersPrefix)), false) {
		if err != nil {
			return nil, err
		}
		var o Order
		if err := json.Unmarshal(kv.Value, &o); err != nil {
			return nil, err
		}
		list = append(list, o)
	}
	return list, nil
}

// shipped marks an order shipped, in the inbound Txn: exactly once.
func (s *service) shipped(_ context.Context, tx eventstore.Txn, rec eventstore.Record) error {
	if rec.Type != events.TypeShipmentScheduled {
		return nil
	}
	var sch events.ShipmentScheduled
	if err := json.Unmarshal(rec.Payload, &sch); err != nil {
		return fmt.Errorf("decode %s: %w", rec.Type, err)
	}
	key := []byte(ordersPrefix + sch.OrderID)
	v, ok, err := tx.Get(key)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("shipment %s for unknown order %s", sch.ShipmentID, sch.OrderID)
	}
	var o Order
	if err := json.Unmarshal(v, &o); err != nil {
		return err
	}
	o.Status = "shipped"
	v, _ = json.Marshal(o)
	return tx.Set(key, v)
}

// announceShipped prints that an order shipped, once the inbound
// transaction that marked it is committed: a reader who sees the line and
// asks GET /orders sees the order shipped.
func (s *service) announceShipped(_ context.Context, rec eventstore.Record) {
	var sch events.ShipmentScheduled
	if rec.Type == events.TypeShipmentScheduled && json.Unmarshal(rec.Payload, &sch) == nil {
		s.println("order", sch.OrderID, "shipped")
	}
}

func (s *service) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Item string `json:"item"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil || req.Item == "" {
			http.Error(w, `want a JSON body {"item": "..."}`, http.StatusBadRequest)
			return
		}
		o, err := s.placeOrder(r.Context(), req.Item)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(o)
	})
	mux.HandleFunc("GET /orders", func(w http.ResponseWriter, r *http.Request) {
		list, err := s.orders(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(list)
	})
	return mux
}

func run(ctx context.Context, dir, natsURL, httpAddr string, place int) error {
	n, err := node.Open(ctx, "order", dir, natsURL, events.TopicOrders, events.TopicShipments)
	if err != nil {
		return err
	}
	defer n.Close()
	s := &service{store: n.Store}

	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 5 * time.Second}
	s.println("listening on http://" + ln.Addr().String())
	for i := range place {
		o, err := s.placeOrder(ctx, fmt.Sprintf("item-%d", i+1))
		if err != nil {
			return err
		}
		s.println("order", o.ID, "placed")
	}
	serve := func(ctx context.Context) error {
		go func() {
			<-ctx.Done()
			shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			srv.Shutdown(shut)
		}()
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
	return n.Run(ctx, s.shipped, s.announceShipped, serve)
}
