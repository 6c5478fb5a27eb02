package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"google.golang.org/protobuf/types/known/timestamppb"

	muninnv1 "github.com/muninn-es/muninn/api/muninn/v1"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/projection"
)

type projectionServer struct {
	muninnv1.UnimplementedProjectionServiceServer
	a *Admin
}

func (s *projectionServer) lookup(name string) (*projection.Projection, error) {
	if name == "" {
		return nil, invalid("projection", "is required")
	}
	p := s.a.projections[name]
	if p == nil {
		return nil, notFound("projection %q not found", name)
	}
	return p, nil
}

func (s *projectionServer) ListProjections(ctx context.Context, _ *muninnv1.ListProjectionsRequest) (*muninnv1.ListProjectionsResponse, error) {
	names := make([]string, 0, len(s.a.projections))
	for n := range s.a.projections {
		names = append(names, n)
	}
	sort.Strings(names)
	resp := &muninnv1.ListProjectionsResponse{}
	for _, n := range names {
		p := s.a.projections[n]
		st, err := p.Status(ctx)
		if err != nil {
			return nil, toStatus(err)
		}
		ps := &muninnv1.ProjectionStatus{
			Name: n, Topics: p.Topics(), State: string(mustText(st.State)), Error: st.Error, Group: st.Group,
			Generation: st.Generation, Policy: st.Policy, Lag: st.Lag, LagSeconds: st.LagSeconds,
			MissingTopics: st.MissingTopics, DeadLetterTopic: p.DeadLetterTopic(),
		}
		for _, pp := range st.Partitions {
			ps.Partitions = append(ps.Partitions, &muninnv1.ProjectionPartition{
				Topic: pp.Topic, Partition: int32(pp.Partition), Position: pp.Position, EndOffset: pp.End, Lag: pp.Lag, LagSeconds: pp.LagSeconds,
			})
		}
		if st.Rebuild != nil {
			ps.Rebuild = progressProto(*st.Rebuild)
		}
		resp.Projections = append(resp.Projections, ps)
	}
	return resp, nil
}

// mustText returns the text form of a state (its name).
func mustText(v interface{ MarshalText() ([]byte, error) }) []byte {
	b, err := v.MarshalText()
	if err != nil {
		return []byte(fmt.Sprint(v))
	}
	return b
}

func progressProto(p projection.Progress) *muninnv1.RebuildProgress {
	return &muninnv1.RebuildProgress{
		Generation: p.Generation, Done: p.Done, Total: p.Total, Fraction: p.Fraction(),
		ElapsedSeconds: p.Elapsed.Seconds(), Rate: p.Rate, EtaSeconds: p.ETA.Seconds(), Finished: p.Finished,
	}
}

func (s *projectionServer) Rebuild(req *muninnv1.RebuildRequest, stream muninnv1.ProjectionService_RebuildServer) error {
	p, err := s.lookup(req.GetProjection())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	// Progress is reported from the rebuild's goroutine; a slow client
	// must not hold it up, so only the latest report waits to be sent.
	latest := make(chan projection.Progress, 1)
	done := make(chan error, 1)
	go func() {
		done <- p.Rebuild(ctx, projection.OnProgress(func(pr projection.Progress) {
			select {
			case <-latest:
			default:
			}
			latest <- pr
		}))
	}()
	var finished bool
	for {
		select {
		case pr := <-latest:
			finished = finished || pr.Finished
			if err := stream.Send(progressProto(pr)); err != nil {
				cancel()
				<-done
				return err
			}
		case err := <-done:
			if err != nil {
				return toStatus(err)
			}
			select {
			case pr := <-latest:
				finished = finished || pr.Finished
				if err := stream.Send(progressProto(pr)); err != nil {
					return err
				}
			default:
			}
			if !finished {
				st, err := p.Status(context.WithoutCancel(ctx))
				if err != nil {
					return toStatus(err)
				}
				return stream.Send(&muninnv1.RebuildProgress{Generation: st.Generation, Fraction: 1, Finished: true})
			}
			return nil
		}
	}
}

func (s *projectionServer) ListDeadLetters(ctx context.Context, req *muninnv1.ListDeadLettersRequest) (*muninnv1.ListDeadLettersResponse, error) {
	p, err := s.lookup(req.GetProjection())
	if err != nil {
		return nil, err
	}
	size, after, err := readPage(req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	var from *eventstore.Position
	if after != "" {
		pos, err := eventstore.ParsePosition(after)
		if err != nil {
			return nil, invalid("page_token", "not a token this server gave")
		}
		from = &pos
	}
	parked, err := p.Parked(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	if from != nil {
		i, _ := slices.BinarySearchFunc(parked, *from, func(r consume.ParkedRecord, pos eventstore.Position) int {
			return comparePos(r.Record.Position(), pos)
		})
		if i < len(parked) && comparePos(parked[i].Record.Position(), *from) == 0 {
			i++
		}
		parked = parked[i:]
	}
	resp := &muninnv1.ListDeadLettersResponse{}
	if len(parked) > size {
		parked = parked[:size]
		resp.NextPageToken = encodeToken(parked[size-1].Record.Position().String())
	}
	for _, r := range parked {
		dl := &muninnv1.DeadLetter{
			Event: eventProto(r.Record), Error: r.Error, Attempts: int32(r.Attempts),
			ParkedAt: timestamppb.New(r.ParkedAt), DeadLetterPosition: r.DeadLetter.String(),
		}
		if !r.ReplayedAt.IsZero() {
			dl.ReplayedAt = timestamppb.New(r.ReplayedAt)
		}
		resp.DeadLetters = append(resp.DeadLetters, dl)
	}
	return resp, nil
}

func comparePos(a, b eventstore.Position) int {
	switch {
	case a.Topic != b.Topic:
		if a.Topic < b.Topic {
			return -1
		}
		return 1
	case a.Partition != b.Partition:
		return a.Partition - b.Partition
	case a.Offset < b.Offset:
		return -1
	case a.Offset > b.Offset:
		return 1
	}
	return 0
}

func (s *projectionServer) deadLetter(ctx context.Context, req *muninnv1.DeadLetterRequest, do func(*projection.Projection, context.Context, eventstore.Position) error) (*muninnv1.DeadLetterResponse, error) {
	p, err := s.lookup(req.GetProjection())
	if err != nil {
		return nil, err
	}
	if req.GetPosition() == "" {
		return nil, invalid("position", "is required")
	}
	pos, err := eventstore.ParsePosition(req.GetPosition())
	if err != nil {
		return nil, invalid("position", "%v", err)
	}
	if err := do(p, ctx, pos); err != nil {
		if errors.Is(err, consume.ErrNotParked) {
			return nil, notFound("no record parked at %s", pos)
		}
		return nil, toStatus(err)
	}
	return &muninnv1.DeadLetterResponse{}, nil
}

func (s *projectionServer) ReplayDeadLetter(ctx context.Context, req *muninnv1.DeadLetterRequest) (*muninnv1.DeadLetterResponse, error) {
	return s.deadLetter(ctx, req, (*projection.Projection).Replay)
}

func (s *projectionServer) DiscardDeadLetter(ctx context.Context, req *muninnv1.DeadLetterRequest) (*muninnv1.DeadLetterResponse, error) {
	return s.deadLetter(ctx, req, (*projection.Projection).Discard)
}
