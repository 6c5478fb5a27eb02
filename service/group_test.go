package service_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/muninn-es/muninn/service"
)

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// The first error of a part stops all, in order: the servers stop intake
// first, then the runners are cancelled, then the closers run; Run returns
// that error, named.
func TestGroupErrorStopsAll(t *testing.T) {
	srv, err := service.New(service.WithGRPCAddr("127.0.0.1:0"), service.WithHTTPAddr("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	broke := errors.New("broke")

	var g service.Group
	g.AddFunc("follower", func(ctx context.Context) error {
		<-ctx.Done()
		// The servers are down by the time the runners are cancelled.
		if c, err := net.Dial("tcp", srv.HTTPAddr()); err == nil {
			c.Close()
			note("follower cancelled while HTTP serves")
		} else {
			note("follower cancelled after the servers")
		}
		return ctx.Err()
	})
	g.AddFunc("early", func(ctx context.Context) error { return nil }) // done early: not an error
	g.AddFunc("breaker", func(ctx context.Context) error {
		<-srv.Started()
		note("breaker fails")
		return broke
	})
	g.AddServer(srv)
	g.AddCloser("store", closerFunc(func() error { note("store closed"); return nil }))
	g.AddCloser("bus", closerFunc(func() error { note("bus closed"); return nil }))

	err = g.Run(context.Background())
	if !errors.Is(err, broke) || !strings.Contains(err.Error(), "breaker") {
		t.Fatalf("Run = %v, want the breaker's error", err)
	}
	want := "breaker fails|follower cancelled after the servers|bus closed|store closed"
	if got := strings.Join(order, "|"); got != want {
		t.Fatalf("order %s, want %s", got, want)
	}
	if err := g.Run(context.Background()); err == nil {
		t.Error("a second Run is accepted")
	}
}

// A clean stop (ctx ends) returns nil: the runners' context.Canceled is
// not an error; an error a runner returns while stopping is.
func TestGroupStop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var g service.Group
	g.AddFunc("a", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	g.AddFunc("b", func(ctx context.Context) error { <-ctx.Done(); return nil })
	g.AddFunc("stopper", func(context.Context) error { cancel(); return nil })
	if err := g.Run(ctx); err != nil {
		t.Fatalf("clean stop: %v", err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	var g2 service.Group
	g2.AddFunc("flusher", func(ctx context.Context) error { <-ctx.Done(); return errors.New("flush failed") })
	g2.AddFunc("stopper", func(context.Context) error { cancel(); return nil })
	g2.AddCloser("store", closerFunc(func() error { return errors.New("close failed") }))
	if err := g2.Run(ctx); err == nil || !strings.Contains(err.Error(), "flusher: flush failed") {
		t.Fatalf("error while stopping: %v", err)
	}
}

// A panicking runner is an error, not a crash; a server that cannot bind
// stops the group.
func TestGroupFailures(t *testing.T) {
	var g service.Group
	g.AddFunc("bad", func(context.Context) error { panic("oops") })
	g.AddFunc("ok", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	if err := g.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "bad: panic: oops") {
		t.Fatalf("panic: %v", err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv, err := service.New(service.WithGRPCAddr(l.Addr().String()), service.WithHTTPAddr("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	var g2 service.Group
	stopped := make(chan struct{})
	g2.AddFunc("runner", func(ctx context.Context) error { <-ctx.Done(); close(stopped); return nil })
	g2.AddServer(srv)
	if err := g2.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "gRPC address") {
		t.Fatalf("bind failure: %v", err)
	}
	<-stopped
}
