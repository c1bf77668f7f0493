package service

import "syscall"

// fileBudget is what the open-file limit leaves for client connections
// once reserved files are kept for NATS, the store and logs: the default
// of both the stream and the connection limits, so that one process serves
// as many as the machine allows and never takes nats-server's files.
func fileBudget(reserved int) int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur > 1<<30 {
		return 10_000
	}
	return max(int(lim.Cur)-reserved, 16)
}
