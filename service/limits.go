package service

import "syscall"

// reservedFiles are kept for NATS, the store and logs when the stream limit
// follows the open-file limit.
const reservedFiles = 256

// defaultMaxStreams lets one process serve as many streams as its open-file
// limit allows.
func defaultMaxStreams() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur > 1<<30 {
		return 10_000
	}
	return max(int(lim.Cur)-reservedFiles, 64)
}
