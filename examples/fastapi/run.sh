#!/bin/sh
# run.sh: the example under gunicorn with four uvicorn workers, with
# Debian's python3 and packages (installed with apt-get if missing and
# running as root). A raftcache cluster must be running: the Procfile one
# (go tool goreman -rpc-server=false start) serves RESP on 127.0.0.1:6381-6383.
#
#   BIND=127.0.0.1:8080  WORKERS=4  RAFTCACHE_NODES=127.0.0.1:6381,127.0.0.1:6382,127.0.0.1:6383
set -eu
cd "$(dirname "$0")"

if ! /usr/bin/python3 -c 'import fastapi, uvicorn, redis, httpx' 2>/dev/null || [ ! -x /usr/bin/gunicorn ]; then
	if [ "$(id -u)" = 0 ]; then
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-fastapi python3-uvicorn gunicorn python3-redis python3-httpx
	else
		echo "run.sh: needs the Debian packages python3-fastapi python3-uvicorn gunicorn python3-redis python3-httpx" >&2
		exit 1
	fi
fi

# /usr/bin/gunicorn runs /usr/bin/python3 (the first python3 on PATH may be
# another one, without these packages).
exec /usr/bin/gunicorn main:app \
	--worker-class uvicorn.workers.UvicornWorker \
	--workers "${WORKERS:-4}" \
	--bind "${BIND:-127.0.0.1:8080}" \
	--graceful-timeout 10
