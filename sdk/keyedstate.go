package sdk

import (
	"encoding/binary"

	"github.com/weir-run/weir/internal/keygroup"
)

// valueState is one value of type V per key K for one operator, laid out as
// the public states are (appendStateKey), with typed keys: the built-in
// keyed aggregations use it, and iterate it at end of input.
type valueState[K, V any] struct {
	env    *opEnv
	prefix []byte // uid 0x00 name 0x00, after the key group
	kc     Codec[K]
	vc     Codec[V]
	key    []byte // scratch for the full state key
	user   []byte // scratch for the encoded user key
	val    []byte // scratch for the encoded value
}

func newValueState[K, V any](env *opEnv, name string, kc Codec[K], vc Codec[V]) *valueState[K, V] {
	return &valueState[K, V]{env: env, prefix: statePrefix(env.uid, name), kc: kc, vc: vc}
}

// stateKey builds the backend key of k in s.key.
func (s *valueState[K, V]) stateKey(k K) []byte {
	s.user = s.kc.Append(s.user[:0], k)
	g := keygroup.Of(keygroup.Hash(s.user), s.env.maxParallelism)
	s.key = appendStateKey(s.key[:0], g, s.prefix, s.user)
	return s.key
}

func (s *valueState[K, V]) get(k K) (V, bool, error) {
	var zero V
	raw, ok, err := s.env.state.Get(s.stateKey(k))
	if err != nil || !ok {
		return zero, false, err
	}
	v, err := s.vc.Decode(raw)
	return v, err == nil, err
}

func (s *valueState[K, V]) set(k K, v V) error {
	s.val = s.vc.Append(s.val[:0], v)
	return s.env.state.Set(s.stateKey(k), s.val)
}

// each visits every key of this state held by the subtask.
func (s *valueState[K, V]) each(fn func(K, V)) error {
	return s.env.state.Scan(nil, func(key, val []byte) error {
		if len(key) < 2+len(s.prefix) || string(key[2:2+len(s.prefix)]) != string(s.prefix) {
			return nil
		}
		rest := key[2+len(s.prefix):]
		n, w := binary.Uvarint(rest)
		if w <= 0 || n != uint64(len(rest)-w) {
			return errCorruptItems
		}
		k, err := s.kc.Decode(rest[w:])
		if err != nil {
			return err
		}
		v, err := s.vc.Decode(val)
		if err != nil {
			return err
		}
		fn(k, v)
		return nil
	})
}
