package node

import "syscall"

// raiseFileLimit raises this process's soft open-file limit to its hard limit: every
// device connection holds a descriptor, and the usual soft limit (1024) would cap a node
// far below what it can serve. It returns the limit in force. Descriptor use is exported
// as process_open_fds and process_max_fds.
func raiseFileLimit() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	if l.Cur >= l.Max {
		return l.Cur, nil
	}
	want := l
	want.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return l.Cur, err
	}
	return want.Cur, nil
}
