//go:build !wasip1

package sdk

// Outside a component (unit tests) a plugin's panic stays a panic.
func crash(report string) { panic(report) }
