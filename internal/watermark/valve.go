package watermark

import (
	"fmt"
	"math"
)

// Min and Max bound event time: Min is "nothing is known yet", Max is the
// final watermark that the end of a bounded input emits, after which every
// window and timer has fired.
const (
	Min = math.MinInt64
	Max = math.MaxInt64
)

// Valve combines the watermarks of n input channels.
//
// A channel's watermark only moves forward (a smaller one is ignored). An
// idle channel does not hold the output back; when it becomes active again it
// rejoins the minimum only once its watermark has caught up with the output,
// so the output never goes backwards (Flink's StatusWatermarkValve). An ended
// channel counts as being at Max.
type Valve struct {
	ch  []channel
	out int64
	// idle is the output's status: every channel not ended is idle.
	idle bool
}

type channel struct {
	wm      int64
	idle    bool
	ended   bool
	aligned bool // takes part in the minimum
}

// Status is what changed at the output after an event. The zero Status
// means nothing changed.
type Status struct {
	// Advanced: the output watermark moved forward to Watermark.
	Advanced  bool
	Watermark int64
	// IdleChanged: the output became idle (Idle) or active again (!Idle).
	IdleChanged bool
	Idle        bool
}

// New returns the valve of n channels, all active at Min.
func New(n int) *Valve {
	if n < 1 {
		panic(fmt.Sprintf("watermark: %d channels", n))
	}
	v := &Valve{ch: make([]channel, n), out: Min}
	for i := range v.ch {
		v.ch[i] = channel{wm: Min, aligned: true}
	}
	return v
}

// StartAt starts the output at ts instead of Min: a subtask restored from a
// checkpoint resumes at the watermark it had, and its channels, which start
// at Min again, advance the output only once their minimum passes ts. Call
// it before the first event; it never moves the output back.
func (v *Valve) StartAt(ts int64) {
	v.out = max(v.out, ts)
}

// Current is the output watermark.
func (v *Valve) Current() int64 { return v.out }

// Watermark handles watermark ts on channel i; it also marks i active.
func (v *Valve) Watermark(i int, ts int64) Status {
	c := &v.ch[i]
	if c.ended {
		return Status{}
	}
	if ts > c.wm {
		c.wm = ts
	}
	c.idle = false
	if !c.aligned && c.wm >= v.out {
		c.aligned = true
	}
	return v.update()
}

// Idle marks channel i idle until its next watermark.
func (v *Valve) Idle(i int) Status {
	c := &v.ch[i]
	if c.ended || c.idle {
		return Status{}
	}
	c.idle, c.aligned = true, false
	return v.update()
}

// End handles the end of channel i's input.
func (v *Valve) End(i int) Status {
	c := &v.ch[i]
	if c.ended {
		return Status{}
	}
	c.ended, c.idle, c.aligned, c.wm = true, false, true, Max
	return v.update()
}

func (v *Valve) update() Status {
	var s Status
	lo, active, live := int64(Max), false, false
	for _, c := range v.ch {
		if !c.ended {
			live = true
		}
		if c.idle || !c.aligned {
			continue
		}
		if !c.ended {
			active = true
		}
		lo = min(lo, c.wm)
	}
	idle := live && !active
	if idle != v.idle {
		v.idle = idle
		s.IdleChanged, s.Idle = true, idle
	}
	// With every live channel idle the output holds where it is, unless
	// all that is left has ended.
	if !idle && lo > v.out {
		v.out = lo
		s.Advanced, s.Watermark = true, lo
	}
	return s
}

// String describes the valve for tests.
func (v *Valve) String() string {
	s := fmt.Sprintf("out=%s idle=%v", fmtTS(v.out), v.idle)
	for i, c := range v.ch {
		st := "active"
		switch {
		case c.ended:
			st = "ended"
		case c.idle:
			st = "idle"
		case !c.aligned:
			st = "catching-up"
		}
		s += fmt.Sprintf(" ch%d=%s/%s", i, fmtTS(c.wm), st)
	}
	return s
}

func fmtTS(ts int64) string {
	switch ts {
	case Min:
		return "min"
	case Max:
		return "max"
	}
	return fmt.Sprint(ts)
}
