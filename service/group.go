package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Runner is a long-running part of a service: a command bus, projection,
// saga runner, stream app or relay. Run works until ctx ends (then returns
// nil or ctx's error, having committed its progress) or it fails.
type Runner interface {
	Run(ctx context.Context) error
}

// Group runs a service's parts under one lifecycle: servers, runners and
// closers. Run starts the runners, then the servers, and works until its
// context ends or any part fails; then it shuts down in order:
//
//  1. the servers stop intake and finish their in-flight calls
//     (Server.Shutdown), while the runners still run;
//  2. the runners' context is cancelled and Run waits for every one to
//     return (they commit on their own);
//  3. the closers run, in the reverse order of adding (the store last if
//     it was added first).
//
// The zero Group is ready to use; add parts before Run, which may be called
// once.
type Group struct {
	servers []*Server
	runners []namedRunner
	closers []namedCloser
	ran     bool
}

type namedRunner struct {
	name string
	r    Runner
}

type namedCloser struct {
	name string
	c    io.Closer
}

// AddServer adds a server: started after the runners, shut down before
// them.
func (g *Group) AddServer(s *Server) { g.servers = append(g.servers, s) }

// Add adds a runner called name (the name prefixes its errors).
func (g *Group) Add(name string, r Runner) { g.runners = append(g.runners, namedRunner{name, r}) }

// AddFunc adds a function as a runner called name.
func (g *Group) AddFunc(name string, run func(ctx context.Context) error) {
	g.Add(name, runnerFunc(run))
}

// AddCloser adds something to close, such as the store, after every runner
// has returned.
func (g *Group) AddCloser(name string, c io.Closer) {
	g.closers = append(g.closers, namedCloser{name, c})
}

type runnerFunc func(ctx context.Context) error

func (f runnerFunc) Run(ctx context.Context) error { return f(ctx) }

type partError struct {
	name string
	err  error
}

// Run runs the group until ctx ends or a part fails, then shuts it down
// (see Group). It returns the first error of a part, wrapped with the
// part's name, or nil after a clean shutdown; the context.Canceled of the
// runners' shutdown is not an error, and neither is a runner returning
// nil early (the others keep running).
func (g *Group) Run(ctx context.Context) error {
	if g.ran {
		return errors.New("service: group already ran")
	}
	g.ran = true
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	results := make(chan partError, len(g.runners))
	var wg sync.WaitGroup
	for _, r := range g.runners {
		wg.Go(func() {
			err := runGuarded(rctx, r.r)
			results <- partError{r.name, err}
		})
	}
	var first error
	record := func(name string, err error) {
		if err != nil && first == nil {
			first = fmt.Errorf("service: %s: %w", name, err)
		}
	}
	var started []*Server
	for i, s := range g.servers {
		if err := s.Start(ctx); err != nil {
			record(fmt.Sprintf("server %d", i), err)
			break
		}
		started = append(started, s)
	}
	failed := make(chan partError, len(started))
	for i, s := range started {
		go func() {
			select {
			case <-s.failed:
				failed <- partError{fmt.Sprintf("server %d", i), s.failErr}
			case <-rctx.Done():
			}
		}()
	}
	pending := len(g.runners)
	for first == nil {
		select {
		case <-ctx.Done():
		case pe := <-failed:
			record(pe.name, pe.err)
		case pe := <-results:
			pending--
			record(pe.name, pe.err)
			if first == nil {
				continue
			}
		}
		break
	}
	// 1. servers stop intake and finish in-flight calls.
	for i := len(g.servers) - 1; i >= 0; i-- {
		record(fmt.Sprintf("server %d", i), g.servers[i].Shutdown(context.WithoutCancel(ctx)))
	}
	// 2. runners are cancelled and return.
	cancel()
	for ; pending > 0; pending-- {
		pe := <-results
		if !errors.Is(pe.err, context.Canceled) {
			record(pe.name, pe.err)
		}
	}
	wg.Wait()
	// 3. closers, last added first.
	for i := len(g.closers) - 1; i >= 0; i-- {
		c := g.closers[i]
		record(c.name, c.c.Close())
	}
	return first
}

// runGuarded runs r, turning a panic into an error.
func runGuarded(ctx context.Context, r Runner) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return r.Run(ctx)
}
