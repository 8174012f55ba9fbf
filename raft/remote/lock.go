package remote

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ErrLocked is returned when another process holds a directory's lock.
var ErrLocked = errors.New("in use by another process")

// lockDir takes the lock of dir (the file name in it, flock'd): a node's
// data dir, or a launcher's, is used by one process at a time. The lock
// goes with the process, however it ends (kill -9 included).
func lockDir(dir, name string) (release func(), err error) {
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s is %w", dir, ErrLocked)
		}
		return nil, fmt.Errorf("locking %s: %v", path, err)
	}
	f.Truncate(0)
	fmt.Fprintf(f, "%d\n", os.Getpid())
	return func() { f.Close() }, nil
}
