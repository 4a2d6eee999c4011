package jobgraph

import (
	"fmt"
	"strings"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// TapTarget resolves the operator a tail names, by uid or else by name,
// to its uid. Only records leaving a chain can be sampled without a cost
// per record, so the operator must end its chain and feed another one.
func TapTarget(g *weirv1.JobGraph, operator string) (string, error) {
	var v *weirv1.Vertex
	var op *weirv1.Operator
	for _, match := range []func(*weirv1.Operator) bool{
		func(o *weirv1.Operator) bool { return o.Uid == operator },
		func(o *weirv1.Operator) bool { return o.Name == operator },
	} {
		for _, cand := range g.Vertices {
			for _, o := range cand.Operators {
				if match(o) {
					if op != nil && op != o {
						return "", fmt.Errorf("jobgraph: several operators are named %q: name one by its uid", operator)
					}
					v, op = cand, o
				}
			}
		}
		if op != nil {
			break
		}
	}
	if op == nil {
		var names []string
		for _, cand := range g.Vertices {
			for _, o := range cand.Operators {
				names = append(names, o.Uid)
			}
		}
		return "", fmt.Errorf("jobgraph: the job has no operator %q (uids: %s)", operator, strings.Join(names, ", "))
	}
	tail := v.Operators[len(v.Operators)-1]
	if tail != op {
		return "", fmt.Errorf("jobgraph: operator %q is chained into %q: tail %q, the chain's last operator, instead", op.Uid, v.Name, tail.Uid)
	}
	for _, e := range g.Edges {
		if e.Source == v.Id {
			return op.Uid, nil
		}
	}
	return "", fmt.Errorf("jobgraph: operator %q ends the job (%s): it sends no records to tail", op.Uid, op.Kind)
}
