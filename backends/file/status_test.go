package file

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestClusterStatus(t *testing.T) {
	b := openTemp(t)
	ctx := t.Context()
	host, _ := os.Hostname()

	st, err := b.ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := st.Members[0]
	if st.Backend != Name || st.Leader != b.Path() || len(st.Members) != 1 || m.Name != host || m.Address != b.Path() ||
		m.Role != "leader" || !m.Leader || m.Health != healthOK {
		t.Errorf("status of a missing file = %+v", st)
	}
	if m.Details["instances"] != "0" || m.Details["writable"] != "true" || m.Details["size"] != "0" || !strings.Contains(strings.Join(st.Notes, " "), "does not exist yet") {
		t.Errorf("details of a missing file = %v, notes %q", m.Details, st.Notes)
	}

	for i := range 3 {
		if err := b.Register(ctx, webInstance("web-"+strconv.Itoa(i), i+1)); err != nil {
			t.Fatal(err)
		}
	}
	st, err = b.ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := os.Stat(b.Path())
	d := st.Members[0].Details
	modified, err := time.Parse(time.RFC3339Nano, d["modified"])
	if d["instances"] != "3" || d["revision"] != "3" || d["size"] != strconv.FormatInt(info.Size(), 10) ||
		d["path"] != b.Path() || d["writable"] != "true" || err != nil || !modified.Equal(info.ModTime()) {
		t.Errorf("details after three registrations = %v", d)
	}
	if st.Members[0].Health != healthOK || len(st.Notes) != 0 {
		t.Errorf("health %q notes %q", st.Members[0].Health, st.Notes)
	}
}
