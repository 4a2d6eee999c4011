// Package watermark owns how one subtask combines the event-time watermarks
// of its input channels into its own: the minimum over the
// channels that are neither idle nor ended.
//
// Valve is a pure state machine, like align.Aligner: the task runtime feeds
// it the watermark, idle and end-of-input events it reads per channel and
// acts on the Status it returns (run the operators' timers up to the new
// watermark, forward it, or forward the idle marker). It does no I/O and is
// not safe for concurrent use.
package watermark
