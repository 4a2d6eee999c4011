package state_test

import (
	"testing"

	"github.com/weir-run/weir/internal/state"
	"github.com/weir-run/weir/internal/state/statetest"
)

func TestMemoryContract(t *testing.T) {
	statetest.RunContract(t, func(*testing.T) state.Backend { return state.NewMemory() })
}
