package pgtest

import "syscall"

// dieWithParent has the kernel kill the process when the test binary exits, even if it
// is killed itself (a test timeout), so that no helper server outlives the tests.
func dieWithParent(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
