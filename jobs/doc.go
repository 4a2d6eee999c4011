// Package jobs holds example and benchmark jobs, each a main package built
// against sdk only: wordcount (a bounded file job), keyedcount (a paced
// generator with keyed state), bayvisits (session windows), windowdemo
// (early, on-time and late firings with retractions).
package jobs
