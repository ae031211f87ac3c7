-- github.com/go-redsync/redsync/v4 v4.18.1 scripts.go deleteScript
	local val = redis.call("GET", KEYS[1])
	if val == ARGV[1] then
		return redis.call("DEL", KEYS[1])
	elseif val == false then
		return -1
	else
		return 0
	end
