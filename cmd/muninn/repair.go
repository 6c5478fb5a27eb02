package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/muninn-es/muninn/eventstore"
	"github.com/spf13/cobra"
)

func newRepairCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "repair DIR",
		Short: "Check a store's files and recover a damaged write-ahead log, saying what was dropped",
		Long: `repair opens the event store in DIR, which must not be open elsewhere, and
checks it. If a write-ahead log is damaged before its end, which the store
refuses to open, repair drops everything logged from the damaged record on,
in that log and every newer one, and prints exactly what that was: the
partitions and offsets, the streams and versions, the topics and consumer
group commits that are gone. Copies of the logs as they were are kept in a
recovered-wal-<time> directory inside DIR. Then it reads back every key of
every table, verifying every checksum.

It exits 0 when the store is intact or was repaired, non-zero on an error:
DIR in use by a running store (stop it first), or damage that dropping the
end of a log cannot repair (a table, the manifest): restore those from a
backup. With --json it prints one JSON object for scripts.`,
		Example: `  muninn repair /var/lib/orders
  muninn repair --json /var/lib/orders > repair.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SilenceUsage = true
			dir := args[0]
			rep, err := eventstore.Repair(dir)
			if errors.Is(err, eventstore.ErrLocked) {
				return fmt.Errorf("%s is open in a running store; stop it, then run repair again (%w)", dir, err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if jerr := writeRepairJSON(out, rep, err); jerr != nil {
					return jerr
				}
			} else if werr := writeRepairTable(out, rep, err); werr != nil {
				return werr
			}
			if err != nil {
				return fmt.Errorf("the store in %s is damaged beyond what repair can drop: %w", dir, err)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object instead of tables")
	return cmd
}

// writeRepairTable prints a repair's report for people. A failed repair
// prints what it dropped before it failed, if anything.
func writeRepairTable(out io.Writer, rep eventstore.RepairReport, err error) error {
	if err != nil && rep.WAL == nil {
		return nil // nothing was done; the error says why
	}
	w := &errWriter{w: out}
	if rep.Intact() {
		fmt.Fprintf(w, "The store in %s is intact: %d keys read back, %d records verified; nothing was dropped.\n",
			rep.Dir, rep.Keys, rep.Records)
		return w.err
	}
	r := rep.WAL
	fmt.Fprintf(w, "The write-ahead log %s is damaged at byte %d (%s).\n", r.WAL, r.Offset, r.Reason)
	fmt.Fprintf(w, "Dropped everything logged from byte %d on: %d bytes, %d of them unreadable, and %d newer log(s).\n",
		r.Cut, r.DroppedBytes, r.UnreadableBytes, len(r.LaterWALs))
	fmt.Fprintf(w, "Copies of the logs as they were: %s\n", r.Backup)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(r.Partitions) > 0 {
		fmt.Fprintln(tw, "\nTOPIC\tPARTITION\tOFFSETS DROPPED\tRECORDS READ IN THE LOG")
		for _, p := range r.Partitions {
			fmt.Fprintf(tw, "%s\t%d\t%d..%d\t%d\n", p.Topic, p.Partition, p.From, p.To, p.Records)
		}
	}
	if len(r.Streams) > 0 {
		fmt.Fprintln(tw, "\nTOPIC\tSTREAM\tVERSIONS DROPPED\tEVENTS READ IN THE LOG")
		for _, s := range r.Streams {
			fmt.Fprintf(tw, "%s\t%s\t%d..%d\t%d\n", s.Topic, s.Key, s.From, s.To, s.Events)
		}
	}
	if len(r.GroupCommits) > 0 {
		fmt.Fprintln(tw, "\nGROUP\tTOPIC\tPARTITION\tCOMMITTED OFFSET DROPPED")
		for _, c := range r.GroupCommits {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", c.Group, c.Topic, c.Partition, c.Offset)
		}
	}
	tw.Flush()
	for _, t := range r.Topics {
		fmt.Fprintf(w, "Topic %s was created in the dropped part: it no longer exists.\n", t)
	}
	if r.UnreadableBytes > 0 {
		fmt.Fprintf(w, "The %d unreadable bytes held writes whose content is unknown; the ranges above start at what survived.\n", r.UnreadableBytes)
	}
	fmt.Fprintf(w, "Also dropped: %d state-space write(s), %d other write(s) of the store's own.\n", r.StateWrites, r.OtherWrites)
	if err != nil {
		return nil // the repair's error is what the command reports
	}
	fmt.Fprintf(w, "The store opens again: %d keys read back, %d records verified.\n", rep.Keys, rep.Records)
	return w.err
}

// repairJSON is the --json output: snake_case keys, stable for scripts.
type repairJSON struct {
	Dir     string       `json:"dir"`
	Intact  bool         `json:"intact"`
	Keys    int64        `json:"keys"`
	Records int64        `json:"records"`
	WAL     *recoveryOut `json:"wal,omitempty"`
	Error   string       `json:"error,omitempty"`
}

type recoveryOut struct {
	File            string           `json:"file"`
	Offset          int64            `json:"offset"`
	Reason          string           `json:"reason"`
	Cut             int64            `json:"cut"`
	LaterFiles      []string         `json:"later_files"`
	DroppedBytes    int64            `json:"dropped_bytes"`
	UnreadableBytes int64            `json:"unreadable_bytes"`
	Backup          string           `json:"backup"`
	Partitions      []partitionOut   `json:"partitions"`
	Streams         []streamOut      `json:"streams"`
	Topics          []string         `json:"topics"`
	GroupCommits    []groupCommitOut `json:"group_commits"`
	StateWrites     int              `json:"state_writes"`
	OtherWrites     int              `json:"other_writes"`
}

type partitionOut struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	From      int64  `json:"from"`
	To        int64  `json:"to"`
	Records   int    `json:"records_read"`
}

type streamOut struct {
	Topic  string `json:"topic"`
	Key    string `json:"key"`
	From   uint64 `json:"from"`
	To     uint64 `json:"to"`
	Events int    `json:"events_read"`
}

type groupCommitOut struct {
	Group     string `json:"group"`
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
}

func writeRepairJSON(w io.Writer, rep eventstore.RepairReport, err error) error {
	out := repairJSON{Dir: rep.Dir, Intact: rep.Intact() && err == nil, Keys: rep.Keys, Records: rep.Records}
	if err != nil {
		out.Error = err.Error()
	}
	if r := rep.WAL; r != nil {
		o := &recoveryOut{
			File: r.WAL, Offset: r.Offset, Reason: r.Reason, Cut: r.Cut, LaterFiles: nonNil(r.LaterWALs),
			DroppedBytes: r.DroppedBytes, UnreadableBytes: r.UnreadableBytes, Backup: r.Backup,
			Partitions: []partitionOut{}, Streams: []streamOut{}, Topics: nonNil(r.Topics), GroupCommits: []groupCommitOut{},
			StateWrites: r.StateWrites, OtherWrites: r.OtherWrites,
		}
		for _, p := range r.Partitions {
			o.Partitions = append(o.Partitions, partitionOut{p.Topic, p.Partition, p.From, p.To, p.Records})
		}
		for _, s := range r.Streams {
			o.Streams = append(o.Streams, streamOut{s.Topic, s.Key, s.From, s.To, s.Events})
		}
		for _, c := range r.GroupCommits {
			o.GroupCommits = append(o.GroupCommits, groupCommitOut{c.Group, c.Topic, c.Partition, c.Offset})
		}
		out.WAL = o
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
