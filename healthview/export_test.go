package healthview

// SetRowsPerStatement sets how many rows one INSERT writes (1: one per
// row), for the benchmarks; it returns a function that puts it back.
func SetRowsPerStatement(n int) func() {
	old := rowsPerStatement
	rowsPerStatement = n
	return func() { rowsPerStatement = old }
}
