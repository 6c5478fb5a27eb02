package admin

import (
	"context"
	"errors"

	muninnv1 "github.com/muninn-es/muninn/api/muninn/v1"
	"github.com/muninn-es/muninn/eventstore"
)

type groupServer struct {
	muninnv1.UnimplementedGroupServiceServer
	a *Admin
}

func (s *groupServer) ListGroups(ctx context.Context, req *muninnv1.ListGroupsRequest) (*muninnv1.ListGroupsResponse, error) {
	size, after, err := readPage(req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	names, err := s.a.store.ListGroups(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	page, next := pageOf(names, after, size)
	resp := &muninnv1.ListGroupsResponse{NextPageToken: next}
	for _, n := range page {
		g, err := s.describe(ctx, n)
		if errors.Is(err, eventstore.ErrGroupNotFound) {
			continue
		}
		if err != nil {
			return nil, toStatus(err)
		}
		resp.Groups = append(resp.Groups, g)
	}
	return resp, nil
}

func (s *groupServer) DescribeGroup(ctx context.Context, req *muninnv1.DescribeGroupRequest) (*muninnv1.Group, error) {
	if req.GetGroup() == "" {
		return nil, invalid("group", "is required")
	}
	g, err := s.describe(ctx, req.GetGroup())
	if errors.Is(err, eventstore.ErrGroupNotFound) {
		return nil, notFound("group %q not found", req.GetGroup())
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return g, nil
}

func (s *groupServer) describe(ctx context.Context, name string) (*muninnv1.Group, error) {
	info, err := s.a.store.DescribeGroup(ctx, name)
	if err != nil {
		return nil, err
	}
	g := &muninnv1.Group{Name: info.Name, Generation: info.Generation}
	for _, m := range info.Members {
		gm := &muninnv1.GroupMember{MemberId: m.ID, Topics: m.Topics}
		for _, tp := range m.Assignment {
			gm.Assignment = append(gm.Assignment, &muninnv1.TopicPartition{Topic: tp.Topic, Partition: int32(tp.Partition)})
		}
		g.Members = append(g.Members, gm)
	}
	for _, p := range info.Partitions {
		gp := &muninnv1.GroupPartition{
			Topic: p.Topic, Partition: int32(p.Partition), MemberId: p.Member,
			Committed: p.Committed, EndOffset: p.End, Lag: p.Lag,
		}
		if p.Lag > 0 {
			age, err := s.ageAt(ctx, p.Topic, p.Partition, max(p.Committed, 0))
			if err != nil {
				return nil, err
			}
			gp.LagSeconds = age
		}
		g.Lag += gp.Lag
		g.LagSeconds = max(g.LagSeconds, gp.LagSeconds)
		g.Partitions = append(g.Partitions, gp)
	}
	return g, nil
}

// ageAt returns the age of the first record at or after offset, 0 if none.
func (s *groupServer) ageAt(ctx context.Context, topic string, partition int, offset int64) (float64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for rec, err := range s.a.store.ReadPartition(ctx, topic, partition, offset) {
		if err != nil {
			return 0, err
		}
		return since(rec.Timestamp), nil
	}
	return 0, nil
}
