-- redis-py 4.3 redis.lock.Lock.LUA_RELEASE_SCRIPT
        local token = redis.call('get', KEYS[1])
        if not token or token ~= ARGV[1] then
            return 0
        end
        redis.call('del', KEYS[1])
        return 1
    
