package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"
)

// outputFormat is the -o flag of the listing commands.
type outputFormat string

func (o *outputFormat) String() string { return string(*o) }
func (o *outputFormat) Type() string   { return "format" }
func (o *outputFormat) Set(s string) error {
	switch s {
	case "table", "wide", "json", "yaml":
		*o = outputFormat(s)
		return nil
	}
	return fmt.Errorf("want table, wide, json or yaml")
}

func addOutputFlag(fs *pflag.FlagSet, o *outputFormat) {
	*o = "table"
	fs.VarP(o, "output", "o", "output format: table, wide, json or yaml")
}

// table is rows for the table and wide formats: the first cols columns
// are the table, all of them wide.
type table struct {
	header []string
	rows   [][]string
	narrow int
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

// write prints t (table/wide) or v (json/yaml): the machine formats carry
// the full objects, not the cells.
func writeOutput(w io.Writer, format outputFormat, t *table, v any) error {
	switch format {
	case "json":
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	n := len(t.header)
	if format == "table" && t.narrow > 0 {
		n = t.narrow
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(t.header[:n], "\t"))
	for _, r := range t.rows {
		for i := range r[:n] {
			r[i] = dash(r[i])
		}
		fmt.Fprintln(tw, strings.Join(r[:n], "\t"))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
