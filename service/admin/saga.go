package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"sort"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	muninnv1 "github.com/muninn-es/muninn/api/muninn/v1"
	"github.com/muninn-es/muninn/saga"
)

// Saga is the view of a saga the SagaService needs, whatever its state
// type: its instances with their state as JSON. SagaOf makes one of a
// *saga.Saga[S].
type Saga interface {
	// Name returns the saga's name.
	Name() string
	// Status returns its runner's status.
	Status(ctx context.Context) (saga.RunStatus, error)
	// Get returns one instance (saga.ErrNotFound if there is none).
	Get(ctx context.Context, key string) (saga.Instance[json.RawMessage], error)
	// Instances yields instances by key (see saga.WithStatus, saga.After).
	Instances(ctx context.Context, opts ...saga.ListOption) iter.Seq2[saga.Instance[json.RawMessage], error]
}

// SagaOf returns the view of s that WithSagas takes: its instances' states
// are marshalled to JSON with encoding/json.
func SagaOf[S any](s *saga.Saga[S]) Saga { return sagaView[S]{s} }

type sagaView[S any] struct{ s *saga.Saga[S] }

func (v sagaView[S]) Name() string { return v.s.Name() }

func (v sagaView[S]) Status(ctx context.Context) (saga.RunStatus, error) { return v.s.Status(ctx) }

func (v sagaView[S]) Get(ctx context.Context, key string) (saga.Instance[json.RawMessage], error) {
	in, err := v.s.Get(ctx, key)
	if err != nil {
		return saga.Instance[json.RawMessage]{}, err
	}
	return rawInstance(in)
}

func (v sagaView[S]) Instances(ctx context.Context, opts ...saga.ListOption) iter.Seq2[saga.Instance[json.RawMessage], error] {
	return func(yield func(saga.Instance[json.RawMessage], error) bool) {
		for in, err := range v.s.Instances(ctx, opts...) {
			if err != nil {
				yield(saga.Instance[json.RawMessage]{}, err)
				return
			}
			if !yield(rawInstance(in)) {
				return
			}
		}
	}
}

func rawInstance[S any](in saga.Instance[S]) (saga.Instance[json.RawMessage], error) {
	b, err := json.Marshal(in.State)
	if err != nil {
		return saga.Instance[json.RawMessage]{}, fmt.Errorf("admin: saga instance %q: state: %w", in.Key, err)
	}
	return saga.Instance[json.RawMessage]{
		Key: in.Key, Status: in.Status, State: b, CorrelationID: in.CorrelationID,
		Started: in.Started, Updated: in.Updated, Ended: in.Ended, Steps: in.Steps,
		PendingCommands: in.PendingCommands, Pending: in.Pending, Deadlines: in.Deadlines, LastError: in.LastError,
		Failure: in.Failure, CompensationErrors: in.CompensationErrors,
	}, nil
}

type sagaServer struct {
	muninnv1.UnimplementedSagaServiceServer
	a *Admin
}

func (s *sagaServer) lookup(name string) (Saga, error) {
	if name == "" {
		return nil, invalid("saga", "is required")
	}
	sg := s.a.sagas[name]
	if sg == nil {
		return nil, notFound("saga %q not found", name)
	}
	return sg, nil
}

func (s *sagaServer) ListSagas(ctx context.Context, _ *muninnv1.ListSagasRequest) (*muninnv1.ListSagasResponse, error) {
	names := make([]string, 0, len(s.a.sagas))
	for n := range s.a.sagas {
		names = append(names, n)
	}
	sort.Strings(names)
	resp := &muninnv1.ListSagasResponse{}
	for _, n := range names {
		st, err := s.a.sagas[n].Status(ctx)
		if err != nil {
			return nil, toStatus(err)
		}
		resp.Sagas = append(resp.Sagas, &muninnv1.SagaStatus{
			Name: st.Name, Group: st.Group, State: string(st.State), Error: st.Error, LastError: st.LastError,
			PendingCommands: int64(st.PendingCommands), Deadlines: int64(st.Deadlines), Lag: st.Loop.Lag, LagSeconds: st.Loop.LagSeconds,
		})
	}
	return resp, nil
}

func (s *sagaServer) ListInstances(ctx context.Context, req *muninnv1.ListInstancesRequest) (*muninnv1.ListInstancesResponse, error) {
	sg, err := s.lookup(req.GetSaga())
	if err != nil {
		return nil, err
	}
	size, after, err := readPage(req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	var opts []saga.ListOption
	for i, st := range req.GetStatuses() {
		switch saga.Status(st) {
		case saga.StatusRunning, saga.StatusCompleted, saga.StatusCompensating, saga.StatusFailed:
			opts = append(opts, saga.WithStatus(saga.Status(st)))
		default:
			return nil, invalid(fmt.Sprintf("statuses[%d]", i), "unknown status %q (want running, compensating, completed or failed)", st)
		}
	}
	if after != "" {
		opts = append(opts, saga.After(after))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp := &muninnv1.ListInstancesResponse{}
	for in, err := range sg.Instances(ctx, opts...) {
		if err != nil {
			return nil, toStatus(err)
		}
		if len(resp.Instances) == size {
			resp.NextPageToken = encodeToken(resp.Instances[size-1].Key)
			break
		}
		resp.Instances = append(resp.Instances, instanceProto(sg.Name(), in))
	}
	return resp, nil
}

func (s *sagaServer) GetInstance(ctx context.Context, req *muninnv1.GetInstanceRequest) (*muninnv1.SagaInstance, error) {
	sg, err := s.lookup(req.GetSaga())
	if err != nil {
		return nil, err
	}
	if req.GetKey() == "" {
		return nil, invalid("key", "is required")
	}
	in, err := sg.Get(ctx, req.GetKey())
	if err != nil {
		return nil, toStatus(err)
	}
	return instanceProto(sg.Name(), in), nil
}

func instanceProto(name string, in saga.Instance[json.RawMessage]) *muninnv1.SagaInstance {
	p := &muninnv1.SagaInstance{
		Saga: name, Key: in.Key, Status: string(in.Status), CorrelationId: in.CorrelationID,
		Started: timestamppb.New(in.Started), Updated: timestamppb.New(in.Updated),
		Steps: in.Steps, PendingCommands: int64(in.PendingCommands), LastError: in.LastError,
		CompensationErrors: in.CompensationErrors,
	}
	if !in.Ended.IsZero() {
		p.Ended = timestamppb.New(in.Ended)
	}
	if in.Failure != nil {
		p.FailureReason = in.Failure.Reason
	}
	var v structpb.Value
	if err := protojson.Unmarshal(in.State, &v); err == nil {
		p.State = &v
	}
	for _, c := range in.Pending {
		p.Pending = append(p.Pending, &muninnv1.SagaPendingCommand{Id: c.ID, Type: c.Type, AggregateId: c.AggregateID, CausationId: c.CausationID, Compensation: c.Compensation})
	}
	for _, d := range in.Deadlines {
		p.Deadlines = append(p.Deadlines, &muninnv1.SagaDeadline{Name: d.Name, Id: d.ID, At: timestamppb.New(d.At), Command: d.Command})
	}
	return p
}
