package shim

// oomWatcher publishes TaskOOM for containers whose processes the kernel
// OOM-kills, always before the TaskExit of an OOM-killed init.
//
// This is a placeholder with the contract the service relies on; it is
// replaced by the real watcher.
type oomWatcher struct{ events *eventQueue }

func newOOMWatcher(ev *eventQueue) (*oomWatcher, error) { return &oomWatcher{events: ev}, nil }

// add starts watching c's cgroup. Called once c is created, before its
// exit can be published.
func (w *oomWatcher) add(c *container) error { return nil }

// beforeExit publishes TaskOOM for c if an OOM kill happened in its cgroup
// that was not published yet. Called on init's exit, before TaskExit is
// queued, so the order holds even for an OOM in the first milliseconds.
func (w *oomWatcher) beforeExit(c *container) {}

// remove stops watching c. Called at Delete.
func (w *oomWatcher) remove(c *container) {}

// close stops the watcher.
func (w *oomWatcher) close() {}
