package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	muninnv1 "github.com/muninn-es/muninn/api/muninn/v1"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/examples/shop"
	"github.com/muninn-es/muninn/examples/shop/order"
	"github.com/muninn-es/muninn/service"
	"github.com/muninn-es/muninn/service/admin"
)

// The operator commands (topics, tail, groups, trace, projections, rebuild,
// dlq, sagas) are clients of the framework's services (muninn.v1): against
// a running server (--server, its gRPC address) or directly on a data
// directory (--data), where they serve those services in-process on a
// loopback port for the command's duration. One code path either way.

// target is where an operator command finds the store.
type target struct {
	server string
	data   string
	asJSON bool
}

func (t *target) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&t.server, "server", service.DefaultGRPCAddr, "gRPC address of a running muninn server")
	f.StringVar(&t.data, "data", "", "open the store in this directory instead of asking a server (it must not be in use)")
	f.BoolVar(&t.asJSON, "json", false, "print JSON (one object per line) instead of tables")
}

// client is a connection to the framework's services.
type client struct {
	conn        *grpc.ClientConn
	store       muninnv1.EventStoreServiceClient
	groups      muninnv1.GroupServiceClient
	trace       muninnv1.TraceServiceClient
	projections muninnv1.ProjectionServiceClient
	sagas       muninnv1.SagaServiceClient
	closeFn     func() error
}

func (c *client) Close() error {
	err := c.conn.Close()
	if c.closeFn != nil {
		err = errors.Join(err, c.closeFn())
	}
	return err
}

// connect dials the server, or serves the data directory in-process.
func (t *target) connect(ctx context.Context) (*client, error) {
	addr := t.server
	var closeFn func() error
	if t.data != "" {
		a, stop, err := serveData(ctx, t.data)
		if err != nil {
			return nil, err
		}
		addr, closeFn = a, stop
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		if closeFn != nil {
			err = errors.Join(err, closeFn())
		}
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	return &client{
		conn:        conn,
		store:       muninnv1.NewEventStoreServiceClient(conn),
		groups:      muninnv1.NewGroupServiceClient(conn),
		trace:       muninnv1.NewTraceServiceClient(conn),
		projections: muninnv1.NewProjectionServiceClient(conn),
		sagas:       muninnv1.NewSagaServiceClient(conn),
		closeFn:     closeFn,
	}, nil
}

// callError turns a gRPC error into one for people: the status message,
// and what to do when the server cannot be reached.
func (t *target) callError(what string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", what, err)
	}
	if st.Code().String() == "Unavailable" && t.data == "" {
		return fmt.Errorf("%s: no muninn server answers at %s (start one with muninn serve, or pass --data DIR): %s", what, t.server, st.Message())
	}
	return fmt.Errorf("%s: %s: %s", what, st.Code(), st.Message())
}

// opCommand builds an operator command that connects, runs f and closes.
func opCommand(use, short, long string, args cobra.PositionalArgs, f func(ctx context.Context, t *target, c *client, out io.Writer, args []string) error) (*cobra.Command, *target) {
	t := &target{}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  args,
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SilenceUsage = true
			c, err := t.connect(cmd.Context())
			if err != nil {
				return err
			}
			return errors.Join(f(cmd.Context(), t, c, cmd.OutOrStdout(), args), c.Close())
		},
	}
	t.flags(cmd)
	return cmd, t
}

var jsonOut = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

// printJSON writes m as one line of proto JSON.
func printJSON(w io.Writer, m proto.Message) error {
	b, err := jsonOut.Marshal(m)
	if err != nil {
		return err
	}
	// protojson's output is deliberately unstable in whitespace: compact it.
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, buf.String())
	return err
}

// allPages calls fetch with each page's token, from the first page ("")
// until a page has no next token, and returns every item.
func allPages[T any](fetch func(token string) ([]T, string, error)) ([]T, error) {
	var all []T
	token := ""
	for {
		items, next, err := fetch(token)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if next == "" {
			return all, nil
		}
		token = next
	}
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func newTopicsCmd() *cobra.Command {
	cmd, _ := opCommand("topics", "List the topics with their partitions, records and cleanup policy", `topics lists every topic of the store: its partitions, records, end offsets
and cleanup policy.`, cobra.NoArgs,
		func(ctx context.Context, t *target, c *client, out io.Writer, _ []string) error {
			topics, err := allPages(func(token string) ([]*muninnv1.Topic, string, error) {
				resp, err := c.store.ListTopics(ctx, &muninnv1.ListTopicsRequest{PageToken: token})
				return resp.GetTopics(), resp.GetNextPageToken(), err
			})
			if err != nil {
				return t.callError("list topics", err)
			}
			if t.asJSON {
				for _, tp := range topics {
					if err := printJSON(out, tp); err != nil {
						return err
					}
				}
				return nil
			}
			tw := table(out)
			fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tRECORDS\tEND OFFSETS\tCLEANUP")
			for _, tp := range topics {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", tp.GetName(), len(tp.GetPartitions()), tp.GetRecords(), tp.GetEndOffsetsTotal(), tp.GetCleanupPolicy())
			}
			return tw.Flush()
		})
	return cmd
}

func newTailCmd() *cobra.Command {
	var follow bool
	var from string
	var last int
	cmd, _ := opCommand("tail TOPIC", "Print a topic's newest records, and with --follow the ones that come", `tail prints the last records of every partition of TOPIC (--last, default 10),
or those from --from (an offset, applied to every partition, or "beginning").
With --follow it goes on printing records as they are appended, until
interrupted.`, cobra.ExactArgs(1),
		func(ctx context.Context, t *target, c *client, out io.Writer, args []string) error {
			topic := args[0]
			tp, err := c.store.DescribeTopic(ctx, &muninnv1.DescribeTopicRequest{Topic: topic})
			if err != nil {
				return t.callError("describe topic "+topic, err)
			}
			var starts []*muninnv1.PartitionOffset
			for _, p := range tp.GetPartitions() {
				start := max(p.GetEndOffset()-int64(last), p.GetStartOffset())
				switch from {
				case "":
				case "beginning":
					start = p.GetStartOffset()
				default:
					var n int64
					if _, err := fmt.Sscan(from, &n); err != nil || n < 0 {
						return fmt.Errorf("tail: --from %q is neither an offset nor \"beginning\"", from)
					}
					start = n
				}
				starts = append(starts, &muninnv1.PartitionOffset{Topic: topic, Partition: p.GetPartition(), Offset: start})
			}
			pr := &eventPrinter{out: out, asJSON: t.asJSON}
			if !follow {
				for _, s := range starts {
					offset := s.GetOffset()
					for {
						resp, err := c.store.ReadPartition(ctx, &muninnv1.ReadPartitionRequest{Topic: topic, Partition: s.GetPartition(), FromOffset: offset})
						if err != nil {
							return t.callError("read partition", err)
						}
						for _, e := range resp.GetEvents() {
							if err := pr.print(e); err != nil {
								return err
							}
						}
						if len(resp.GetEvents()) == 0 || resp.GetNextOffset() >= resp.GetEndOffset() {
							break
						}
						offset = resp.GetNextOffset()
					}
				}
				return nil
			}
			sub, err := c.store.Subscribe(ctx, &muninnv1.SubscribeRequest{Topic: topic, FromOffsets: starts})
			if err != nil {
				return t.callError("subscribe", err)
			}
			for {
				m, err := sub.Recv()
				if err != nil {
					if ctx.Err() != nil {
						return nil // interrupted: the normal end of --follow
					}
					return t.callError("subscribe", err)
				}
				if e := m.GetEvent(); e != nil {
					if err := pr.print(e); err != nil {
						return err
					}
				}
			}
		})
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing records as they are appended")
	cmd.Flags().StringVar(&from, "from", "", `start at this offset in every partition, or "beginning"`)
	cmd.Flags().IntVarP(&last, "last", "n", 10, "without --from, print this many of each partition's newest records")
	return cmd
}

// eventPrinter prints records one per line.
type eventPrinter struct {
	out    io.Writer
	asJSON bool
}

func (p *eventPrinter) print(e *muninnv1.Event) error {
	if p.asJSON {
		return printJSON(p.out, e)
	}
	data := string(e.GetPayload())
	if d := e.GetData(); d != nil {
		if b, err := protojson.Marshal(d); err == nil {
			var buf bytes.Buffer
			if json.Compact(&buf, b) == nil {
				data = buf.String()
			}
		}
	}
	if e.GetTombstone() {
		data = "(tombstone)"
	}
	if len(data) > 120 {
		data = data[:117] + "..."
	}
	_, err := fmt.Fprintf(p.out, "%s  %s  %s v%d  %s  corr=%s  %s\n", e.GetPosition(),
		e.GetTimestamp().AsTime().UTC().Format(time.RFC3339Nano), e.GetKey(), e.GetVersion(), e.GetType(), e.GetCorrelationId(), data)
	return err
}

func newGroupsCmd() *cobra.Command {
	cmd, _ := opCommand("groups [GROUP]", "List the consumer groups with their lag, or describe one", `groups lists every consumer group with its members and lag (in records and
in time); given a GROUP it prints its partitions: member, committed offset,
end offset and lag.`, cobra.MaximumNArgs(1),
		func(ctx context.Context, t *target, c *client, out io.Writer, args []string) error {
			var groups []*muninnv1.Group
			if len(args) == 1 {
				g, err := c.groups.DescribeGroup(ctx, &muninnv1.DescribeGroupRequest{Group: args[0]})
				if err != nil {
					return t.callError("describe group "+args[0], err)
				}
				groups = append(groups, g)
			} else {
				all, err := allPages(func(token string) ([]*muninnv1.Group, string, error) {
					resp, err := c.groups.ListGroups(ctx, &muninnv1.ListGroupsRequest{PageToken: token})
					return resp.GetGroups(), resp.GetNextPageToken(), err
				})
				if err != nil {
					return t.callError("list groups", err)
				}
				groups = all
			}
			if t.asJSON {
				for _, g := range groups {
					if err := printJSON(out, g); err != nil {
						return err
					}
				}
				return nil
			}
			tw := table(out)
			if len(args) == 1 {
				fmt.Fprintln(tw, "TOPIC\tPARTITION\tMEMBER\tCOMMITTED\tEND\tLAG\tLAG (s)")
				for _, p := range groups[0].GetPartitions() {
					fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%.1f\n", p.GetTopic(), p.GetPartition(), p.GetMemberId(), p.GetCommitted(), p.GetEndOffset(), p.GetLag(), p.GetLagSeconds())
				}
				return tw.Flush()
			}
			fmt.Fprintln(tw, "GROUP\tGENERATION\tMEMBERS\tPARTITIONS\tLAG\tLAG (s)")
			for _, g := range groups {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.1f\n", g.GetName(), g.GetGeneration(), len(g.GetMembers()), len(g.GetPartitions()), g.GetLag(), g.GetLagSeconds())
			}
			return tw.Flush()
		})
	return cmd
}

func newTraceCmd() *cobra.Command {
	cmd, _ := opCommand("trace CORRELATION_ID", "Print everything a correlation ID caused, as a tree by causation", `trace finds every event with the correlation ID and prints them as a tree by
causation: a command, the events it produced, the saga steps they triggered,
the commands those sent, and their events.`, cobra.ExactArgs(1),
		func(ctx context.Context, t *target, c *client, out io.Writer, args []string) error {
			resp, err := c.trace.Trace(ctx, &muninnv1.TraceRequest{CorrelationId: args[0]})
			if err != nil {
				return t.callError("trace "+args[0], err)
			}
			if t.asJSON {
				return printJSON(out, resp)
			}
			return writeTrace(out, resp)
		})
	return cmd
}

// writeTrace prints a trace as an indented tree.
func writeTrace(out io.Writer, resp *muninnv1.TraceResponse) error {
	ew := &errWriter{w: out}
	fmt.Fprintf(ew, "correlation %s: %d events", resp.GetCorrelationId(), resp.GetEvents())
	if resp.GetTruncated() {
		fmt.Fprintf(ew, " (the scan stopped after %d records: there may be more)", resp.GetScanned())
	}
	fmt.Fprintln(ew)
	var walk func(n *muninnv1.TraceNode, prefix string, last bool)
	walk = func(n *muninnv1.TraceNode, prefix string, last bool) {
		branch, next := "├─ ", "│  "
		if last {
			branch, next = "└─ ", "   "
		}
		fmt.Fprintf(ew, "%s%s%s\n", prefix, branch, traceLabel(n))
		for i, ch := range n.GetChildren() {
			walk(ch, prefix+next, i == len(n.GetChildren())-1)
		}
	}
	for i, r := range resp.GetRoots() {
		walk(r, "", i == len(resp.GetRoots())-1)
	}
	return ew.err
}

func traceLabel(n *muninnv1.TraceNode) string {
	switch n.GetKind() {
	case muninnv1.TraceNode_KIND_COMMAND:
		return "command " + n.GetId()
	case muninnv1.TraceNode_KIND_DEADLINE:
		return "deadline " + n.GetId()
	}
	e := n.GetEvent()
	if e == nil {
		return n.GetId()
	}
	return fmt.Sprintf("%s  %s v%d  (%s)", e.GetType(), e.GetKey(), e.GetVersion(), e.GetPosition())
}

func newProjectionsCmd() *cobra.Command {
	cmd, _ := opCommand("projections", "List the projections with their state and lag", `projections lists the projections the server runs: state, generation, lag
in records and in time, and the records parked in their dead-letter topics.`, cobra.NoArgs,
		func(ctx context.Context, t *target, c *client, out io.Writer, _ []string) error {
			resp, err := c.projections.ListProjections(ctx, &muninnv1.ListProjectionsRequest{})
			if err != nil {
				return t.callError("list projections", err)
			}
			if t.asJSON {
				for _, p := range resp.GetProjections() {
					if err := printJSON(out, p); err != nil {
						return err
					}
				}
				return nil
			}
			tw := table(out)
			fmt.Fprintln(tw, "PROJECTION\tSTATE\tGENERATION\tLAG\tLAG (s)\tTOPICS\tERROR")
			for _, p := range resp.GetProjections() {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1f\t%s\t%s\n", p.GetName(), p.GetState(), p.GetGeneration(), p.GetLag(), p.GetLagSeconds(), strings.Join(p.GetTopics(), ","), p.GetError())
			}
			return tw.Flush()
		})
	return cmd
}

func newRebuildCmd() *cobra.Command {
	cmd, _ := opCommand("rebuild PROJECTION", "Rebuild a projection from its topics, with a progress bar", `rebuild builds a new generation of PROJECTION from the beginning of its
topics while the current one keeps answering queries, and switches queries
to it once it has caught up. It shows a progress bar (with --json, one
progress object per line).`, cobra.ExactArgs(1),
		func(ctx context.Context, t *target, c *client, out io.Writer, args []string) error {
			stream, err := c.projections.Rebuild(ctx, &muninnv1.RebuildRequest{Projection: args[0]})
			if err != nil {
				return t.callError("rebuild "+args[0], err)
			}
			var bar *progressbar.ProgressBar
			for {
				p, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					if bar != nil {
						_ = bar.Finish()
						fmt.Fprintln(out)
					}
					return nil
				}
				if err != nil {
					return t.callError("rebuild "+args[0], err)
				}
				if t.asJSON {
					if err := printJSON(out, p); err != nil {
						return err
					}
					continue
				}
				if bar == nil {
					bar = progressbar.NewOptions64(max(p.GetTotal(), 1),
						progressbar.OptionSetWriter(out),
						progressbar.OptionSetDescription(fmt.Sprintf("rebuild %s (generation %d)", args[0], p.GetGeneration())),
						progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("records"),
						progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(100*time.Millisecond))
				}
				if p.GetTotal() > 0 {
					bar.ChangeMax64(p.GetTotal())
				}
				_ = bar.Set64(p.GetDone())
				if p.GetFinished() {
					_ = bar.Finish()
					fmt.Fprintf(out, "\nrebuilt %s: generation %d, %d records in %.1f s\n", args[0], p.GetGeneration(), p.GetDone(), p.GetElapsedSeconds())
					bar = nil
				}
			}
		})
	return cmd
}

func newDLQCmd() *cobra.Command {
	dlq := &cobra.Command{
		Use:   "dlq",
		Short: "List, replay or discard the records a projection parked",
		Long: `dlq works on a projection's dead letters: records its handler failed on and
that the projection parked to go on with the rest.`,
	}
	list, _ := opCommand("list PROJECTION", "List a projection's parked records", "list prints every record PROJECTION parked, with its error.", cobra.ExactArgs(1),
		func(ctx context.Context, t *target, c *client, out io.Writer, args []string) error {
			dls, err := allPages(func(token string) ([]*muninnv1.DeadLetter, string, error) {
				resp, err := c.projections.ListDeadLetters(ctx, &muninnv1.ListDeadLettersRequest{Projection: args[0], PageToken: token})
				return resp.GetDeadLetters(), resp.GetNextPageToken(), err
			})
			if err != nil {
				return t.callError("list dead letters of "+args[0], err)
			}
			if t.asJSON {
				for _, d := range dls {
					if err := printJSON(out, d); err != nil {
						return err
					}
				}
				return nil
			}
			tw := table(out)
			fmt.Fprintln(tw, "POSITION\tTYPE\tKEY\tATTEMPTS\tPARKED\tREPLAYED\tERROR")
			for _, d := range dls {
				replayed := ""
				if d.GetReplayedAt() != nil {
					replayed = d.GetReplayedAt().AsTime().UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", d.GetEvent().GetPosition(), d.GetEvent().GetType(), d.GetEvent().GetKey(),
					d.GetAttempts(), d.GetParkedAt().AsTime().UTC().Format(time.RFC3339), replayed, d.GetError())
			}
			return tw.Flush()
		})
	act := func(use, short string, call func(context.Context, *client, *muninnv1.DeadLetterRequest) error, done string) *cobra.Command {
		cmd, _ := opCommand(use+" PROJECTION POSITION", short, short+": POSITION is the record's position (topic/partition@offset) as dlq list prints it.", cobra.ExactArgs(2),
			func(ctx context.Context, t *target, c *client, out io.Writer, args []string) error {
				if err := call(ctx, c, &muninnv1.DeadLetterRequest{Projection: args[0], Position: args[1]}); err != nil {
					return t.callError(use+" "+args[1], err)
				}
				_, err := fmt.Fprintf(out, "%s %s of %s\n", done, args[1], args[0])
				return err
			})
		return cmd
	}
	dlq.AddCommand(list,
		act("replay", "Run a parked record through the projection's handler again", func(ctx context.Context, c *client, r *muninnv1.DeadLetterRequest) error {
			_, err := c.projections.ReplayDeadLetter(ctx, r)
			return err
		}, "replayed"),
		act("discard", "Drop a parked record for good", func(ctx context.Context, c *client, r *muninnv1.DeadLetterRequest) error {
			_, err := c.projections.DiscardDeadLetter(ctx, r)
			return err
		}, "discarded"))
	return dlq
}

func newSagasCmd() *cobra.Command {
	var statuses []string
	cmd, _ := opCommand("sagas [SAGA]", "List the sagas, or a saga's instances", `sagas lists the sagas the server runs with their state, pending commands and
deadlines; given a SAGA it lists its instances (--status to filter: running,
completed, failed, ...).`, cobra.MaximumNArgs(1),
		func(ctx context.Context, t *target, c *client, out io.Writer, args []string) error {
			if len(args) == 0 {
				resp, err := c.sagas.ListSagas(ctx, &muninnv1.ListSagasRequest{})
				if err != nil {
					return t.callError("list sagas", err)
				}
				if t.asJSON {
					for _, s := range resp.GetSagas() {
						if err := printJSON(out, s); err != nil {
							return err
						}
					}
					return nil
				}
				tw := table(out)
				fmt.Fprintln(tw, "SAGA\tSTATE\tPENDING\tDEADLINES\tLAG\tLAST ERROR")
				for _, s := range resp.GetSagas() {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", s.GetName(), s.GetState(), s.GetPendingCommands(), s.GetDeadlines(), s.GetLag(), s.GetLastError())
				}
				return tw.Flush()
			}
			tw := table(out)
			if !t.asJSON {
				fmt.Fprintln(tw, "KEY\tSTATUS\tSTEPS\tPENDING\tUPDATED\tCORRELATION\tFAILURE")
			}
			token := ""
			for {
				resp, err := c.sagas.ListInstances(ctx, &muninnv1.ListInstancesRequest{Saga: args[0], Statuses: statuses, PageToken: token})
				if err != nil {
					return t.callError("list instances of "+args[0], err)
				}
				for _, in := range resp.GetInstances() {
					if t.asJSON {
						if err := printJSON(out, in); err != nil {
							return err
						}
						continue
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\n", in.GetKey(), in.GetStatus(), in.GetSteps(), in.GetPendingCommands(),
						in.GetUpdated().AsTime().UTC().Format(time.RFC3339), in.GetCorrelationId(), in.GetFailureReason())
				}
				if token = resp.GetNextPageToken(); token == "" {
					break
				}
			}
			return tw.Flush()
		})
	cmd.Flags().StringSliceVar(&statuses, "status", nil, "only instances with these statuses")
	return cmd
}

// serveData opens the store in dir and serves the framework's services on
// it, in-process, on a loopback port; it returns the address and the
// function that stops the server and closes the store. A store in use by a
// running server is refused, saying what to do instead.
func serveData(ctx context.Context, dir string) (string, func() error, error) {
	store, err := eventstore.Open(dir)
	if errors.Is(err, eventstore.ErrLocked) {
		return "", nil, fmt.Errorf("%s is in use by a running server; ask it instead with --server ADDR (%w)", dir, err)
	}
	if err != nil {
		return "", nil, fmt.Errorf("open %s: %w", dir, err)
	}
	fail := func(err error) (string, func() error, error) { return "", nil, errors.Join(err, store.Close()) }
	a, closeParts, err := adminFor(ctx, store)
	if err != nil {
		return fail(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(errors.Join(err, closeParts()))
	}
	srv := grpc.NewServer(service.ServerOptions()...)
	a.Register(srv)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	return lis.Addr().String(), func() error {
		srv.Stop()
		err := <-served
		if errors.Is(err, grpc.ErrServerStopped) {
			err = nil
		}
		return errors.Join(err, closeParts(), store.Close())
	}, nil
}

// adminFor builds the framework's services on store. When the store holds
// the example shop (its orders topic exists), the shop's projections and
// saga are registered too, so that projections, dlq and sagas see them;
// nothing is created in a store that is not the shop's.
func adminFor(ctx context.Context, store eventstore.Store) (*admin.Admin, func() error, error) {
	var opts []admin.Option
	closeParts := func() error { return nil }
	if _, err := store.DescribeTopic(ctx, order.Topic); err == nil {
		s, err := shop.New(store)
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, admin.WithProjections(s.OrderDetails().Projection), admin.WithSagas(admin.SagaOf(s.Checkout())))
		closeParts = s.Close
	}
	a, err := admin.New(store, opts...)
	if err != nil {
		return nil, nil, errors.Join(err, closeParts())
	}
	return a, closeParts, nil
}
