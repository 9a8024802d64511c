package lease

import "time"

const (
	// opTimeout bounds one etcd call made by a background loop, because
	// clientv3 waits for a connection instead of failing fast.
	opTimeout = 10 * time.Second
	// configLogEvery rate-limits "still waiting" logs.
	configLogEvery = 10 * time.Second
)
