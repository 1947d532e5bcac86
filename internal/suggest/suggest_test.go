package suggest

import "testing"

func TestClosest(t *testing.T) {
	keys := []string{"backend", "timeout", "log-level", "plugin-path", "plugin-timeout", "plugin-mtls", "address", "token"}
	for _, tc := range []struct{ word, want string }{
		{"backnd", "backend"},
		{"timout", "timeout"},
		{"addres", "address"}, //nolint:misspell // typos are the test
		{"TIMEOUT", "timeout"},
		{"tokne", "token"},
		{"plugin-tiemout", "plugin-timeout"},
		{"log", "log-level"},
		{"zzz", ""},
		{"file", ""},
		{"", ""},
	} {
		if got := Closest(tc.word, keys); got != tc.want {
			t.Errorf("Closest(%q) = %q, want %q", tc.word, got, tc.want)
		}
	}
	if got := Closest("servce-web", []string{"service-web", "service-api"}); got != "service-web" {
		t.Errorf("service name: got %q", got)
	}
}

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"a", "", 1}, {"resovle", "resolve", 1}, {"kitten", "sitting", 3}, {"ab", "ba", 1}} { //nolint:misspell // typos are the test
		if got := distance(tc.a, tc.b); got != tc.want {
			t.Errorf("distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
