package registry

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/go-viper/mapstructure/v2"
)

// Option documents one configuration key of a backend, relative to the backend's section (the
// key "path" of the file backend is "file.path" in the config file and SDCTL_FILE_PATH in the
// environment).
type Option struct {
	Key     string `json:"key"`
	Default string `json:"default,omitempty"`
	Help    string `json:"help"`
	// Secret values are never printed, logged or echoed in errors.
	Secret bool `json:"secret,omitempty"`
	// Env lists further environment variables read for this key, in order of preference, such as
	// CONSUL_HTTP_ADDR. SDCTL_<BACKEND>_<KEY> always works and wins over these.
	Env []string `json:"env,omitempty"`
	// List marks keys that hold several values (comma-separated in the environment).
	List bool `json:"list,omitempty"`
}

// DecodeOptions decodes a backend's config section into the typed struct out, whose fields carry
// `mapstructure:"key"` tags. Strings are converted to numbers, booleans, durations and
// comma-separated lists; keys out does not know are an error naming them.
func DecodeOptions(section map[string]any, out any) error {
	var md mapstructure.Metadata
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:           out,
		WeaklyTypedInput: true,
		Metadata:         &md,
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		),
	})
	if err != nil {
		return err
	}
	if err := dec.Decode(section); err != nil {
		return decodeError(err)
	}
	if len(md.Unused) > 0 {
		return Invalidf(md.Unused[0], "unknown option (known: %s)", strings.Join(optionKeys(out), ", "))
	}
	return nil
}

// decodeError turns mapstructure's message ("'path' expected type ...") into a FieldError when it
// can find the key, so the caller can name the key's source.
func decodeError(err error) error {
	var de *mapstructure.DecodeError
	if errors.As(err, &de) {
		return &FieldError{Field: de.Name(), Reason: de.Unwrap().Error()}
	}
	return fmt.Errorf("%w: %w", ErrInvalid, err)
}

func optionKeys(out any) []string {
	t := reflect.TypeOf(out)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		if k, _, _ := strings.Cut(t.Field(i).Tag.Get("mapstructure"), ","); k != "" && k != "-" {
			keys = append(keys, k)
		}
	}
	return keys
}
