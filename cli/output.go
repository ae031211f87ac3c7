package cli

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/raftcache/raftcache/client"
)

// Output formats (--output).
const (
	outputText  = "text"
	outputJSON  = "json"
	outputTable = "table"
)

// result is what a command prints, in each format.
type result struct {
	// json is the command's one JSON document.
	json any
	// text prints the human-readable form.
	text func(w io.Writer) error
	// table, if set, gives a header and rows for --output table; without
	// it, table output is the text output.
	table func() (header []string, rows [][]string)
}

// emit prints r in the format --output chose.
func emit(c *cli.Context, r result) error {
	w := c.App.Writer
	switch c.String("output") {
	case outputJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(r.json)
	case outputTable:
		if r.table != nil {
			header, rows := r.table()
			return writeTable(w, header, rows)
		}
	}
	return r.text(w)
}

func writeTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if header != nil {
		fmt.Fprintln(tw, strings.Join(header, "\t"))
	}
	for _, row := range rows {
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// fieldRows is a two-column table of names and values.
func fieldRows(kv ...string) (header []string, rows [][]string) {
	for i := 0; i+1 < len(kv); i += 2 {
		rows = append(rows, []string{kv[i], kv[i+1]})
	}
	return []string{"FIELD", "VALUE"}, rows
}

// bytesJSON puts b into a JSON object as name (valid UTF-8) or name_b64
// (anything else): Go's encoder would silently replace invalid bytes.
func bytesJSON(m map[string]any, name string, b []byte) {
	if utf8.Valid(b) {
		m[name] = string(b)
	} else {
		m[name+"_b64"] = base64.StdEncoding.EncodeToString(b)
	}
}

// printable shows bytes in text output: as they are when valid UTF-8,
// else quoted with escapes.
func printable(s string) string {
	if utf8.ValidString(s) && !strings.ContainsAny(s, "\n\r\t") {
		return s
	}
	return fmt.Sprintf("%q", s)
}

// writeJSONError reports a failed command as JSON: {"error", "code",
// "exit_code"}, plus the server's status and current_version when known.
func writeJSONError(w io.Writer, err error, code int) {
	out := map[string]any{"error": err.Error(), "exit_code": code}
	var se *client.Error
	var ce *client.CASConflictError
	switch {
	case errors.As(err, &ce):
		out["code"], out["status"], out["current_version"] = ce.Err.Code, ce.Err.Status, ce.CurrentVersion
	case errors.As(err, &se):
		out["code"], out["status"] = se.Code, se.Status
	case code == ExitUsage:
		out["code"] = "usage"
	case errors.Is(err, client.ErrUnknownOutcome):
		out["code"] = "unknown_outcome"
	case errors.Is(err, client.ErrNoLeader):
		out["code"] = "no_leader"
	default:
		out["code"] = "error"
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(out)
}

// reorderArgs lets flags follow arguments and global flags follow the
// command: urfave/cli v2 stops parsing flags at the first argument, so
// `raftcache set k v --ttl 30s` would otherwise take "--ttl" as a value.
// For a leaf command it moves the global flags found anywhere before the
// command name and the command's own flags before its arguments, which it
// puts after "--" (so an argument that looks like a flag stays an
// argument once moved). It leaves alone an explicit "--", unknown flags
// (for the parser to report), commands with subcommands, and shell
// completion requests.
func reorderArgs(app *cli.App, args []string) []string {
	if len(args) < 2 || args[len(args)-1] == "--generate-bash-completion" {
		return args
	}
	globals := flagTable(app.Flags)
	rest := args[1:]
	var pre, path []string
	i := 0
	// Global flags before the command.
	for i < len(rest) {
		n, ok := takeFlag(rest, i, globals)
		if !ok {
			break
		}
		pre = append(pre, rest[i:i+n]...)
		i += n
	}
	// The command path.
	var cmd *cli.Command
	cmds := app.Commands
	for i < len(rest) {
		var found *cli.Command
		for _, cc := range cmds {
			if cc.HasName(rest[i]) {
				found = cc
			}
		}
		if found == nil {
			break
		}
		cmd = found
		path = append(path, rest[i])
		i++
		if len(cmd.Subcommands) == 0 {
			break
		}
		cmds = cmd.Subcommands
	}
	if cmd == nil || len(cmd.Subcommands) > 0 || cmd.SkipFlagParsing {
		return args
	}
	local := flagTable(cmd.Flags)
	local["help"], local["h"] = false, false
	var flags, pos []string
	for i < len(rest) {
		a := rest[i]
		if a == "--" {
			pos = append(pos, rest[i+1:]...)
			break
		}
		if !looksLikeFlag(a) {
			pos = append(pos, a)
			i++
			continue
		}
		if n, ok := takeFlag(rest, i, local); ok {
			flags = append(flags, rest[i:i+n]...)
			i += n
			continue
		}
		if n, ok := takeFlag(rest, i, globals); ok {
			pre = append(pre, rest[i:i+n]...)
			i += n
			continue
		}
		flags = append(flags, a) // unknown: the parser reports it
		i++
	}
	out := append([]string{args[0]}, pre...)
	out = append(out, path...)
	out = append(out, flags...)
	if len(pos) > 0 {
		out = append(out, "--")
		out = append(out, pos...)
	}
	return out
}

// flagTable maps each flag name and alias to whether it takes a value.
func flagTable(flags []cli.Flag) map[string]bool {
	t := map[string]bool{}
	for _, f := range flags {
		takes := true
		if dg, ok := f.(cli.DocGenerationFlag); ok {
			takes = dg.TakesValue()
		}
		for _, n := range f.Names() {
			t[n] = takes
		}
	}
	return t
}

// looksLikeFlag: "-x", "--x", not "-" (stdin/stdout) nor "-5" (a number).
func looksLikeFlag(a string) bool {
	return len(a) > 1 && a[0] == '-' && !(a[1] >= '0' && a[1] <= '9')
}

// takeFlag reports whether args[i] is a flag in table, and how many
// arguments it spans (2 for "--name value").
func takeFlag(args []string, i int, table map[string]bool) (int, bool) {
	a := args[i]
	if !looksLikeFlag(a) || a == "--" {
		return 0, false
	}
	name := strings.TrimLeft(a, "-")
	hasValue := false
	if j := strings.IndexByte(name, '='); j >= 0 {
		name, hasValue = name[:j], true
	}
	takes, ok := table[name]
	if !ok {
		return 0, false
	}
	if takes && !hasValue && i+1 < len(args) {
		return 2, true
	}
	return 1, true
}
