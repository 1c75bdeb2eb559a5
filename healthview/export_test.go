package healthview

import "github.com/posfleet/posfleet/store"

// SetRowsPerStatement sets how many rows one INSERT writes on every
// engine (1: one prepared statement per row), for the benchmarks; it
// returns a function that puts it back.
func SetRowsPerStatement(n int) func() {
	old := rowsPerStatement
	rowsPerStatement = map[store.Dialect]int{store.Postgres: n, store.SQLite: n}
	return func() { rowsPerStatement = old }
}
