#!/usr/bin/env bash
# Makes a throw-away PKI for a local raftcache cluster in ./certs (or $1):
#   ca.pem/ca-key.pem           client-facing CA (HTTPS, client certificates)
#   server.pem/server-key.pem   HTTPS certificate for 127.0.0.1 and localhost
#   client.pem/client-key.pem   a client certificate (for --tls-client-ca)
#   peer-ca.pem                 the CA that signs members' Raft certificates
#   peer-n1.pem ... peer-n3.pem and their keys
# For production use your own CA and keep the keys somewhere safer.
set -euo pipefail
dir=${1:-certs}
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
leaf server ca "raftcache server" "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth"
leaf client ca "raftcache client" "extendedKeyUsage=clientAuth"
ca peer-ca "raftcache peer CA"
for n in n1 n2 n3; do
  leaf "peer-$n" peer-ca "raftcache $n" "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth"
done
rm -f ./*.srl
echo "certificates written to $(pwd)"
