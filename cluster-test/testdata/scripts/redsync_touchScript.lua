-- github.com/go-redsync/redsync/v4 v4.18.1 scripts.go touchScript
	if redis.call("GET", KEYS[1]) == ARGV[1] then
		return redis.call("PEXPIRE", KEYS[1], ARGV[2])
	else
		return 0
	end
