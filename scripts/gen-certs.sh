#!/usr/bin/env bash
# Makes a throw-away PKI for a local raftcache cluster in ./certs (or $1):
#   ca.pem/ca-key.pem           client-facing CA (HTTPS, client certificates)
#   server.pem/server-key.pem   HTTPS certificate for 127.0.0.1, localhost and NAMES
#   client.pem/client-key.pem   a client certificate (for --tls-client-ca)
#   peer-ca.pem                 the CA that signs members' Raft certificates
#   peer-n1.pem ... peer-n3.pem and their keys
# For production use your own CA and keep the keys somewhere safer.
#
#   scripts/gen-certs.sh [DIR [NAME...]]
#
# NAMEs are extra DNS names (or IPs) in the HTTPS certificate: the names
# members advertise (--http-advertise), which clients, joining members and
# the leader's probes dial and verify. A wildcard covers one label, e.g.
# for the StatefulSet in deploy/kubernetes:
#   scripts/gen-certs.sh certs '*.raftcache-peers' '*.raftcache-peers.default.svc' \
#     '*.raftcache-peers.default.svc.cluster.local' raftcache raftcache.default.svc
# and for deploy/compose.yaml: scripts/gen-certs.sh certs rc1 rc2 rc3
# The Raft port's peer certificates need no names (members check the peer
# CA's signature, not host names); they get the same names all the same.
set -euo pipefail
dir=${1:-certs}
shift || true
san="IP:127.0.0.1,DNS:localhost"
for name in "$@"; do
  if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then san="$san,IP:$name"; else san="$san,DNS:$name"; fi
done
mkdir -p "$dir" && cd "$dir"
days=365

ca() { # name subject
  openssl ecparam -name prime256v1 -genkey -noout -out "$1-key.pem"
  openssl req -x509 -new -key "$1-key.pem" -sha256 -days $days -subj "/CN=$2" -out "$1.pem" 2>/dev/null
}
leaf() { # name ca subject extfile-lines
  openssl ecparam -name prime256v1 -genkey -noout -out "$1-key.pem"
  openssl req -new -key "$1-key.pem" -subj "/CN=$3" -out "$1.csr" 2>/dev/null
  printf '%b' "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2-key.pem" -CAcreateserial \
    -days $days -sha256 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

ca ca "raftcache client CA"
# clientAuth too: a member presents this certificate when it joins, or asks
# the others for stats, and members started with --tls-client-ca check it.
leaf server ca "raftcache server" "subjectAltName=$san\nextendedKeyUsage=serverAuth,clientAuth"
leaf client ca "raftcache client" "extendedKeyUsage=clientAuth"
ca peer-ca "raftcache peer CA"
for n in n1 n2 n3; do
  leaf "peer-$n" peer-ca "raftcache $n" "subjectAltName=$san\nextendedKeyUsage=serverAuth,clientAuth"
done
rm -f ./*.srl
echo "certificates written to $(pwd)"
