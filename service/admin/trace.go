package admin

import (
	"context"
	"errors"
	"fmt"
	"sort"

	muninnv1 "github.com/muninn-es/muninn/api/muninn/v1"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/eventstore"
)

type traceServer struct {
	muninnv1.UnimplementedTraceServiceServer
	a *Admin
}

// Trace scans the log for the records of a correlation ID (there is no index
// by correlation yet: see the package documentation) and builds the tree:
//
//   - an event's parent is the event its causation ID names, if it is one of
//     the trace's; otherwise the command its causation ID names (the bus sets
//     the command ID as causation), a node of its own;
//   - a command's parent is what its events' command.CausationHeader names:
//     an event of the trace (a saga step reacting to it), or else a deadline
//     (a saga's deadline ID, which has no record of its own), a root node;
//   - a command with no cause is a root.
func (s *traceServer) Trace(ctx context.Context, req *muninnv1.TraceRequest) (*muninnv1.TraceResponse, error) {
	corr := req.GetCorrelationId()
	if corr == "" {
		return nil, invalid("correlation_id", "is required")
	}
	limit := req.GetScanLimit()
	switch {
	case limit < 0:
		return nil, invalid("scan_limit", "must not be negative, got %d", limit)
	case limit == 0:
		limit = DefaultTraceScanLimit
	}
	topics := req.GetTopics()
	if len(topics) == 0 {
		var err error
		if topics, err = s.a.store.ListTopics(ctx); err != nil {
			return nil, toStatus(err)
		}
	} else {
		for i, t := range topics {
			if _, err := s.a.store.Partitions(t); errors.Is(err, eventstore.ErrTopicNotFound) {
				return nil, invalid(fmt.Sprintf("topics[%d]", i), "topic %q not found", t)
			} else if err != nil {
				return nil, toStatus(err)
			}
		}
	}
	resp := &muninnv1.TraceResponse{CorrelationId: corr}
	var recs []eventstore.Record
scan:
	for _, t := range topics {
		n, err := s.a.store.Partitions(t)
		if errors.Is(err, eventstore.ErrTopicNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, toStatus(err)
		}
		for p := range n {
			more, err := s.scanPartition(ctx, t, p, corr, limit, resp, &recs)
			if err != nil {
				return nil, toStatus(err)
			}
			if !more {
				resp.Truncated = true
				break scan
			}
		}
	}
	resp.Events = int32(len(recs))
	resp.Roots = buildTree(recs)
	return resp, nil
}

// scanPartition appends the records of corr in one partition to recs,
// counting what it reads in resp.Scanned; false means the limit was reached.
func (s *traceServer) scanPartition(ctx context.Context, topic string, p int, corr string, limit int64, resp *muninnv1.TraceResponse, recs *[]eventstore.Record) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for rec, err := range s.a.store.ReadPartition(ctx, topic, p, 0) {
		if err != nil {
			return false, err
		}
		if resp.Scanned == limit {
			return false, nil
		}
		resp.Scanned++
		if rec.CorrelationID == corr {
			*recs = append(*recs, rec)
		}
	}
	return true, nil
}

// buildTree arranges recs by causation (see Trace), children in time order.
func buildTree(recs []eventstore.Record) []*muninnv1.TraceNode {
	sort.SliceStable(recs, func(i, j int) bool {
		a, b := recs[i], recs[j]
		if !a.Timestamp.Equal(b.Timestamp) {
			return a.Timestamp.Before(b.Timestamp)
		}
		return comparePos(a.Position(), b.Position()) < 0
	})
	events := make(map[string]*muninnv1.TraceNode, len(recs))
	for _, r := range recs {
		events[r.ID.String()] = &muninnv1.TraceNode{Kind: muninnv1.TraceNode_KIND_EVENT, Id: r.ID.String(), Event: eventProto(r), CausedBy: r.CausationID}
	}
	commands := map[string]*muninnv1.TraceNode{}
	deadlines := map[string]*muninnv1.TraceNode{}
	var roots []*muninnv1.TraceNode
	// attach puts n under the node id names: an event, else a deadline
	// node made for it; a root when id is empty.
	attach := func(n *muninnv1.TraceNode, id string) {
		switch parent := events[id]; {
		case id == "" || id == n.Id:
			roots = append(roots, n)
		case parent != nil:
			parent.Children = append(parent.Children, n)
		default:
			d := deadlines[id]
			if d == nil {
				d = &muninnv1.TraceNode{Kind: muninnv1.TraceNode_KIND_DEADLINE, Id: id}
				deadlines[id] = d
				roots = append(roots, d)
			}
			d.Children = append(d.Children, n)
		}
	}
	for _, r := range recs {
		n := events[r.ID.String()]
		cause := r.CausationID
		if parent := events[cause]; parent != nil && parent != n {
			parent.Children = append(parent.Children, n)
			continue
		}
		if cause == "" {
			roots = append(roots, n)
			continue
		}
		c := commands[cause]
		if c == nil {
			c = &muninnv1.TraceNode{Kind: muninnv1.TraceNode_KIND_COMMAND, Id: cause, CausedBy: r.Headers[command.CausationHeader],
				CommandType: r.Headers[command.CommandTypeHeader]}
			commands[cause] = c
			attach(c, c.CausedBy)
		}
		c.Children = append(c.Children, n)
	}
	return roots
}
