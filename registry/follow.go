package registry

import (
	"context"
	"errors"
	"time"
)

// FollowOptions tune Follow.
type FollowOptions struct {
	// PollEvery is the delay between two polls when the registry has no Watch; 1s when zero.
	PollEvery time.Duration
	// CallTimeout bounds one poll; unbounded (but for ctx) when zero.
	CallTimeout time.Duration
	// OnPoll, when set, is called once if the registry has no Watch and Follow falls back to
	// polling (for a log line).
	OnPoll func()
}

// Follow calls fn with every instance of name (healthy or not) now and after every change,
// through the registry's Watch, or by asking it every PollEvery when it has none
// (ErrUnsupported). It returns fn's first error, the registry's, or ctx's when ctx ends.
func Follow(ctx context.Context, reg Registry, name string, opt FollowOptions, fn func([]Instance) error) error {
	err := reg.Watch(ctx, WatchRequest{Name: name}, func(ev Event) error {
		return fn(ev.Instances)
	})
	if !errors.Is(err, ErrUnsupported) {
		return err
	}
	if opt.OnPoll != nil {
		opt.OnPoll()
	}
	every := opt.PollEvery
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		callCtx, cancel := ctx, context.CancelFunc(func() {})
		if opt.CallTimeout > 0 {
			callCtx, cancel = context.WithTimeout(ctx, opt.CallTimeout)
		}
		insts, err := reg.Instances(callCtx, Query{Name: name})
		cancel()
		if err != nil {
			return err
		}
		if err := fn(insts); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
