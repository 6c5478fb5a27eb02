package command

import (
	"context"
	"log/slog"
	"time"

	"github.com/muninn-es/muninn/telemetry"
)

// Logging logs every command at its end with log/slog: Info for applied
// commands and duplicates, Warn for commands refused by validation, rules or
// authorisation, or aborted by conflicts, Error for internal failures.
// Attributes (the telemetry package's names): command, command_id,
// aggregate, aggregate_id, correlation_id, duration, trace_id and span_id
// if ctx carries a span, and the version and attempts, or the error (err)
// and its kind.
func Logging(l *slog.Logger) Middleware {
	return func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, cmd *Command) (Result, error) {
			start := time.Now()
			res, err := next(ctx, cmd)
			attrs := []slog.Attr{
				slog.String(telemetry.AttrCommand, cmd.Type), slog.String(telemetry.AttrCommandID, cmd.ID),
				slog.String(telemetry.AttrAggregate, cmd.AggregateType), slog.String(telemetry.AttrAggregateID, cmd.AggregateID),
				slog.String(telemetry.AttrCorrelationID, cmd.CorrelationID), slog.Duration("duration", time.Since(start)),
			}
			attrs = append(attrs, telemetry.TraceAttrs(ctx)...)
			if err != nil {
				k := KindOf(err)
				level := slog.LevelWarn
				if k == KindInternal || k == KindUnavailable {
					level = slog.LevelError
				}
				l.LogAttrs(ctx, level, "command failed", append(attrs, slog.String("kind", k.String()), slog.Any(telemetry.AttrError, err))...)
				return res, err
			}
			l.LogAttrs(ctx, slog.LevelInfo, "command applied", append(attrs, slog.Uint64("version", res.Version),
				slog.Int("events", len(res.EventIDs)), slog.Int("attempts", res.Attempts), slog.Bool("duplicate", res.Duplicate))...)
			return res, err
		}
	}
}

// Observation is what the Metrics middleware reports about one command.
type Observation struct {
	// AggregateType and CommandType name the aggregate and the command's
	// type (Command.Type).
	AggregateType string
	CommandType   string
	// Duration is the time the command spent in the rest of the chain.
	Duration time.Duration
	// Err is nil for an applied command; Kind classifies it otherwise.
	Err  error
	Kind Kind
	// Events is how many events the command appended; Attempts how many
	// decide-and-append attempts it took; Duplicate whether it was a
	// repeated command ID.
	Events    int
	Attempts  int
	Duplicate bool
}

// MetricsRecorder receives an Observation per command, for a recorder of
// one's own. The bus's OpenTelemetry metrics (WithMeterProvider) need no
// middleware. It must be safe for concurrent use and quick.
type MetricsRecorder interface {
	ObserveCommand(ctx context.Context, o Observation)
}

// Metrics reports every command to rec.
func Metrics(rec MetricsRecorder) Middleware {
	return func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, cmd *Command) (Result, error) {
			start := time.Now()
			res, err := next(ctx, cmd)
			o := Observation{AggregateType: cmd.AggregateType, CommandType: cmd.Type, Duration: time.Since(start),
				Err: err, Events: len(res.EventIDs), Attempts: res.Attempts, Duplicate: res.Duplicate}
			if err != nil {
				o.Kind, o.Events = KindOf(err), 0
			}
			if res.Duplicate {
				o.Events = 0 // nothing was appended this time
			}
			rec.ObserveCommand(ctx, o)
			return res, err
		}
	}
}

// Authorize runs allow before every command: a non-nil error refuses the
// command with KindPermissionDenied (or the error's own Kind, if it has
// one, such as KindInvalidArgument). It runs before the idempotency check,
// so a refused caller learns nothing of earlier results.
func Authorize(allow func(ctx context.Context, cmd *Command) error) Middleware {
	return func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, cmd *Command) (Result, error) {
			if err := allow(ctx, cmd); err != nil {
				return Result{}, classify(err, KindPermissionDenied, cmd)
			}
			return next(ctx, cmd)
		}
	}
}
