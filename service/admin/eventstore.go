package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	muninnv1 "github.com/muninn-es/muninn/api/muninn/v1"
	"github.com/muninn-es/muninn/eventstore"
)

// subscribeBuffer is how many records each partition's reader of an
// ungrouped Subscribe holds ahead of the stream (it blocks when full).
const subscribeBuffer = 64

type eventStoreServer struct {
	muninnv1.UnimplementedEventStoreServiceServer
	a *Admin
}

func (s *eventStoreServer) ListTopics(ctx context.Context, req *muninnv1.ListTopicsRequest) (*muninnv1.ListTopicsResponse, error) {
	size, after, err := readPage(req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	names, err := s.a.store.ListTopics(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	page, next := pageOf(names, after, size)
	resp := &muninnv1.ListTopicsResponse{NextPageToken: next}
	for _, n := range page {
		info, err := s.a.store.DescribeTopic(ctx, n)
		if errors.Is(err, eventstore.ErrTopicNotFound) {
			continue // deleted since it was listed
		}
		if err != nil {
			return nil, toStatus(err)
		}
		resp.Topics = append(resp.Topics, topicProto(info))
	}
	return resp, nil
}

func (s *eventStoreServer) DescribeTopic(ctx context.Context, req *muninnv1.DescribeTopicRequest) (*muninnv1.Topic, error) {
	if req.GetTopic() == "" {
		return nil, invalid("topic", "is required")
	}
	info, err := s.a.store.DescribeTopic(ctx, req.GetTopic())
	if errors.Is(err, eventstore.ErrTopicNotFound) {
		return nil, notFound("topic %q not found", req.GetTopic())
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return topicProto(info), nil
}

func topicProto(info eventstore.TopicInfo) *muninnv1.Topic {
	t := &muninnv1.Topic{
		Name:             info.Name,
		CleanupPolicy:    string(cmpOr(info.Config.Cleanup, eventstore.Retain)),
		RetentionSeconds: info.Config.RetentionAge.Seconds(),
		RetentionBytes:   info.Config.RetentionBytes,
		Created:          timestamppb.New(info.Created),
	}
	for _, p := range info.Partitions {
		t.Partitions = append(t.Partitions, &muninnv1.Partition{
			Partition: int32(p.Partition), StartOffset: p.StartOffset, EndOffset: p.EndOffset, Records: p.Records, Bytes: p.Bytes,
		})
		t.Records += p.Records
		t.EndOffsetsTotal += p.EndOffset
	}
	return t
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// checkTopic returns NotFound for an unknown topic and the partition count of
// a known one.
func (s *eventStoreServer) checkTopic(field, topic string) (int, error) {
	if topic == "" {
		return 0, invalid(field, "is required")
	}
	n, err := s.a.store.Partitions(topic)
	if errors.Is(err, eventstore.ErrTopicNotFound) {
		return 0, notFound("topic %q not found", topic)
	}
	if err != nil {
		return 0, toStatus(err)
	}
	return n, nil
}

func (s *eventStoreServer) ReadStream(ctx context.Context, req *muninnv1.ReadStreamRequest) (*muninnv1.ReadStreamResponse, error) {
	if _, err := s.checkTopic("topic", req.GetTopic()); err != nil {
		return nil, err
	}
	if req.GetKey() == "" {
		return nil, invalid("key", "is required")
	}
	limit, err := pageSize("limit", req.GetLimit())
	if err != nil {
		return nil, err
	}
	head, err := s.a.store.HeadVersion(ctx, req.GetTopic(), req.GetKey())
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &muninnv1.ReadStreamResponse{HeadVersion: head}
	var opts []eventstore.ReadOption
	from := req.GetFromVersion()
	switch req.GetDirection() {
	case muninnv1.Direction_DIRECTION_UNSPECIFIED, muninnv1.Direction_DIRECTION_FORWARD:
		from = max(from, 1)
		if from > head {
			return resp, nil
		}
	case muninnv1.Direction_DIRECTION_BACKWARD:
		opts = append(opts, eventstore.Backward())
		if from == 0 || from > head {
			from = head
		}
		if from == 0 {
			return resp, nil
		}
	default:
		return nil, invalid("direction", "unknown direction %d", req.GetDirection())
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for rec, err := range s.a.store.ReadStream(ctx, req.GetTopic(), req.GetKey(), from, opts...) {
		if err != nil {
			return nil, toStatus(err)
		}
		if len(resp.Events) == limit {
			resp.NextVersion = rec.Version
			break
		}
		resp.Events = append(resp.Events, eventProto(rec))
	}
	return resp, nil
}

func (s *eventStoreServer) ReadPartition(ctx context.Context, req *muninnv1.ReadPartitionRequest) (*muninnv1.ReadPartitionResponse, error) {
	n, err := s.checkTopic("topic", req.GetTopic())
	if err != nil {
		return nil, err
	}
	if req.GetPartition() < 0 || int(req.GetPartition()) >= n {
		return nil, invalid("partition", "topic %q has partitions 0 to %d, got %d", req.GetTopic(), n-1, req.GetPartition())
	}
	if req.GetFromOffset() < 0 {
		return nil, invalid("from_offset", "must not be negative, got %d", req.GetFromOffset())
	}
	limit, err := pageSize("limit", req.GetLimit())
	if err != nil {
		return nil, err
	}
	info, err := s.a.store.DescribeTopic(ctx, req.GetTopic())
	if err != nil {
		return nil, toStatus(err)
	}
	end := info.Partitions[req.GetPartition()].EndOffset
	resp := &muninnv1.ReadPartitionResponse{EndOffset: end, NextOffset: max(req.GetFromOffset(), 0)}
	if req.GetFromOffset() >= end {
		return resp, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for rec, err := range s.a.store.ReadPartition(ctx, req.GetTopic(), int(req.GetPartition()), req.GetFromOffset()) {
		if err != nil {
			return nil, toStatus(err)
		}
		resp.Events = append(resp.Events, eventProto(rec))
		resp.NextOffset = rec.Offset + 1
		if len(resp.Events) == limit {
			break
		}
	}
	if len(resp.Events) < limit && resp.NextOffset < end {
		resp.NextOffset = end // the rest were gaps left by cleanup
	}
	return resp, nil
}

// eventProto converts a record; its payload also goes to data when it is
// JSON.
func eventProto(rec eventstore.Record) *muninnv1.Event {
	e := &muninnv1.Event{
		Id:            rec.ID.String(),
		Topic:         rec.Topic,
		Partition:     int32(rec.Partition),
		Offset:        rec.Offset,
		Position:      rec.Position().String(),
		Key:           rec.Key,
		Version:       rec.Version,
		Type:          rec.Type,
		SchemaVersion: int32(rec.SchemaVersion),
		Payload:       rec.Payload,
		Tombstone:     rec.IsTombstone(),
		Timestamp:     timestamppb.New(rec.Timestamp),
		CorrelationId: rec.CorrelationID,
		CausationId:   rec.CausationID,
		Headers:       rec.Headers,
	}
	if !utf8.ValidString(rec.Key) {
		// A string field cannot carry it (marshalling would fail).
		e.Key, e.KeyBytes = "", []byte(rec.Key)
	}
	if len(rec.Payload) > 0 && json.Valid(rec.Payload) {
		var v structpb.Value
		if err := protojson.Unmarshal(rec.Payload, &v); err == nil {
			e.Data = &v
		}
	}
	return e
}

func (s *eventStoreServer) Append(ctx context.Context, req *muninnv1.AppendRequest) (*muninnv1.AppendResponse, error) {
	if _, err := s.checkTopic("topic", req.GetTopic()); err != nil {
		return nil, err
	}
	if req.GetKey() == "" {
		return nil, invalid("key", "is required")
	}
	if len(req.GetEvents()) == 0 {
		return nil, invalid("events", "at least one event is required")
	}
	events := make([]eventstore.Event, len(req.GetEvents()))
	for i, ne := range req.GetEvents() {
		field := fmt.Sprintf("events[%d]", i)
		e := eventstore.Event{
			Type:          ne.GetType(),
			SchemaVersion: int(ne.GetSchemaVersion()),
			CorrelationID: ne.GetCorrelationId(),
			CausationID:   ne.GetCausationId(),
			Headers:       ne.GetHeaders(),
		}
		if e.Type == "" {
			return nil, invalid(field+".type", "is required")
		}
		if ne.GetSchemaVersion() < 0 {
			return nil, invalid(field+".schema_version", "must not be negative, got %d", ne.GetSchemaVersion())
		}
		if ne.GetId() != "" {
			id, err := uuid.Parse(ne.GetId())
			if err != nil {
				return nil, invalid(field+".id", "not a UUID: %v", err)
			}
			e.ID = id
		}
		switch {
		case ne.GetData() != nil && len(ne.GetPayload()) > 0:
			return nil, invalid(field+".data", "give payload or data, not both")
		case ne.GetData() != nil:
			b, err := protojson.Marshal(ne.GetData())
			if err != nil {
				return nil, invalid(field+".data", "%v", err)
			}
			e.Payload = b
		default:
			e.Payload = ne.GetPayload()
			if e.Payload == nil {
				e.Payload = []byte{} // an event without data, not a tombstone
			}
		}
		if ne.GetTimestamp() != nil {
			if err := ne.GetTimestamp().CheckValid(); err != nil {
				return nil, invalid(field+".timestamp", "%v", err)
			}
			e.Timestamp = ne.GetTimestamp().AsTime()
		}
		events[i] = e
	}
	expected := eventstore.Any
	if req.ExpectedVersion != nil {
		if req.GetExpectedVersion() > 1<<62 {
			return nil, invalid("expected_version", "too large: %d", req.GetExpectedVersion())
		}
		expected = eventstore.Exact(req.GetExpectedVersion())
	}
	res, err := s.a.store.Append(ctx, req.GetTopic(), req.GetKey(), expected, events)
	if errors.Is(err, eventstore.ErrVersionConflict) {
		return nil, status.Error(codes.Aborted, err.Error())
	}
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &muninnv1.AppendResponse{
		Partition: int32(res.Partition), FirstOffset: res.FirstOffset, LastOffset: res.LastOffset,
		FirstVersion: res.FirstVersion, LastVersion: res.LastVersion, Position: res.Position().String(),
	}
	for _, id := range res.EventIDs {
		resp.EventIds = append(resp.EventIds, id.String())
	}
	return resp, nil
}

func (s *eventStoreServer) Subscribe(req *muninnv1.SubscribeRequest, stream muninnv1.EventStoreService_SubscribeServer) error {
	n, err := s.checkTopic("topic", req.GetTopic())
	if err != nil {
		return err
	}
	if req.GetGroup() != "" {
		if len(req.GetFromOffsets()) > 0 {
			return invalid("from_offsets", "not allowed with a group: a group reads from its committed offsets")
		}
		if req.GetFromOffset() != 0 {
			return invalid("from_offset", "not allowed with a group: a group reads from its committed offsets")
		}
		return s.subscribeGroup(req, stream)
	}
	if req.GetMemberId() != "" {
		return invalid("member_id", "only with a group")
	}
	if req.GetFromOffset() < 0 {
		return invalid("from_offset", "must not be negative, got %d", req.GetFromOffset())
	}
	if req.GetStart() != muninnv1.StartPosition_START_POSITION_UNSPECIFIED {
		return invalid("start", "only with a group")
	}
	from := make([]int64, n)
	for p := range from {
		from[p] = req.GetFromOffset()
	}
	for i, po := range req.GetFromOffsets() {
		field := fmt.Sprintf("from_offsets[%d]", i)
		if po.GetTopic() != "" && po.GetTopic() != req.GetTopic() {
			return invalid(field+".topic", "must be empty or %q, got %q", req.GetTopic(), po.GetTopic())
		}
		if po.GetPartition() < 0 || int(po.GetPartition()) >= n {
			return invalid(field+".partition", "topic %q has partitions 0 to %d, got %d", req.GetTopic(), n-1, po.GetPartition())
		}
		if po.GetOffset() < 0 {
			return invalid(field+".offset", "must not be negative, got %d", po.GetOffset())
		}
		from[po.GetPartition()] = po.GetOffset()
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	type item struct {
		rec eventstore.Record
		err error
	}
	ch := make(chan item, subscribeBuffer)
	for p := range n {
		go func() {
			for rec, err := range s.a.store.Subscribe(ctx, req.GetTopic(), p, from[p]) {
				select {
				case ch <- item{rec, err}:
				case <-ctx.Done():
					return
				}
				if err != nil {
					return
				}
			}
		}()
	}
	for {
		select {
		case <-ctx.Done():
			return toStatus(ctx.Err())
		case it := <-ch:
			if it.err != nil {
				return toStatus(it.err)
			}
			if err := stream.Send(&muninnv1.SubscribeResponse{Message: &muninnv1.SubscribeResponse_Event{Event: eventProto(it.rec)}}); err != nil {
				return err
			}
		}
	}
}

// subscribeGroup serves a Subscribe as a member of req's group.
func (s *eventStoreServer) subscribeGroup(req *muninnv1.SubscribeRequest, stream muninnv1.EventStoreService_SubscribeServer) error {
	if err := eventstore.ValidateGroupName(req.GetGroup()); err != nil {
		return invalid("group", "%v", err)
	}
	var opts []eventstore.ConsumerOption
	if req.GetMemberId() != "" {
		opts = append(opts, eventstore.WithMemberID(req.GetMemberId()))
	}
	switch req.GetStart() {
	case muninnv1.StartPosition_START_POSITION_UNSPECIFIED, muninnv1.StartPosition_START_POSITION_EARLIEST:
	case muninnv1.StartPosition_START_POSITION_LATEST:
		opts = append(opts, eventstore.WithStartPosition(eventstore.Latest))
	default:
		return invalid("start", "unknown start position %d", req.GetStart())
	}
	ctx := stream.Context()
	key := memberKey{req.GetGroup(), req.GetMemberId()}
	if key.member != "" {
		// A client that reconnects with its member ID takes it over from
		// its old call, which the server may not have seen end yet: the
		// old member leaves the group first.
		if err := s.a.evict(ctx, key); err != nil {
			return err
		}
	}
	c, err := s.a.store.JoinGroup(ctx, req.GetGroup(), []string{req.GetTopic()}, opts...)
	if err != nil {
		return toStatus(err)
	}
	m := &member{c: c, done: make(chan struct{})}
	defer close(m.done)
	defer c.Close()
	key.member = c.ID()
	s.a.mu.Lock()
	if _, taken := s.a.mu.members[key]; taken {
		s.a.mu.Unlock()
		return status.Errorf(codes.AlreadyExists, "member %q of group %q was taken over by another call", key.member, key.group)
	}
	s.a.mu.members[key] = m
	s.a.mu.Unlock()
	defer func() {
		s.a.mu.Lock()
		if s.a.mu.members[key] == m {
			delete(s.a.mu.members, key)
		}
		s.a.mu.Unlock()
	}()

	var sent []eventstore.TopicPartition
	sendAssignment := func() error {
		asg := c.Assignment()
		if sent != nil && slices.Equal(asg, sent) {
			return nil
		}
		sent = append([]eventstore.TopicPartition{}, asg...)
		msg := &muninnv1.Assignment{Group: key.group, MemberId: key.member}
		for _, tp := range asg {
			off, _, err := s.a.store.CommittedOffset(ctx, key.group, tp.Topic, tp.Partition)
			if err != nil {
				return toStatus(err)
			}
			msg.Partitions = append(msg.Partitions, &muninnv1.PartitionOffset{Topic: tp.Topic, Partition: int32(tp.Partition), Offset: off})
		}
		return stream.Send(&muninnv1.SubscribeResponse{Message: &muninnv1.SubscribeResponse_Assignment{Assignment: msg}})
	}
	if err := sendAssignment(); err != nil {
		return err
	}
	for {
		recs, err := c.Poll(ctx, subscribeBuffer)
		if err != nil && m.evicted.Load() {
			return status.Errorf(codes.Aborted, "member %q of group %q was taken over by a new Subscribe", key.member, key.group)
		}
		if errors.Is(err, eventstore.ErrNotAssigned) {
			if err := c.Rewind(ctx); err != nil {
				return toStatus(err)
			}
			continue
		}
		if err != nil {
			return toStatus(err)
		}
		if err := sendAssignment(); err != nil {
			return err
		}
		for _, rec := range recs {
			if err := stream.Send(&muninnv1.SubscribeResponse{Message: &muninnv1.SubscribeResponse_Event{Event: eventProto(rec)}}); err != nil {
				return err
			}
		}
	}
}

func (s *eventStoreServer) Commit(ctx context.Context, req *muninnv1.CommitRequest) (*muninnv1.CommitResponse, error) {
	if req.GetGroup() == "" {
		return nil, invalid("group", "is required")
	}
	if req.GetMemberId() == "" {
		return nil, invalid("member_id", "is required")
	}
	if len(req.GetOffsets()) == 0 {
		return nil, invalid("offsets", "at least one offset is required")
	}
	offsets := make(map[eventstore.TopicPartition]int64, len(req.GetOffsets()))
	for i, po := range req.GetOffsets() {
		field := fmt.Sprintf("offsets[%d]", i)
		if po.GetTopic() == "" {
			return nil, invalid(field+".topic", "is required")
		}
		if po.GetPartition() < 0 {
			return nil, invalid(field+".partition", "must not be negative, got %d", po.GetPartition())
		}
		if po.GetOffset() < 0 {
			return nil, invalid(field+".offset", "must not be negative, got %d", po.GetOffset())
		}
		offsets[eventstore.TopicPartition{Topic: po.GetTopic(), Partition: int(po.GetPartition())}] = po.GetOffset()
	}
	s.a.mu.Lock()
	m := s.a.mu.members[memberKey{req.GetGroup(), req.GetMemberId()}]
	s.a.mu.Unlock()
	if m == nil {
		return nil, notFound("member %q of group %q has no open Subscribe on this server", req.GetMemberId(), req.GetGroup())
	}
	if err := m.c.CommitOffsets(ctx, offsets); err != nil {
		return nil, toStatus(err)
	}
	return &muninnv1.CommitResponse{}, nil
}

// evict makes the member key of an open Subscribe, if there is one, leave
// its group, and waits until its call has ended.
func (a *Admin) evict(ctx context.Context, key memberKey) error {
	for {
		a.mu.Lock()
		m := a.mu.members[key]
		a.mu.Unlock()
		if m == nil {
			return nil
		}
		m.evicted.Store(true)
		m.c.Close() // its Poll ends, and so does its call
		select {
		case <-m.done:
		case <-ctx.Done():
			return toStatus(ctx.Err())
		}
	}
}

// since returns the seconds from t to now, 0 for the zero time.
func since(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return max(time.Since(t).Seconds(), 0)
}
