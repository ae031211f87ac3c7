package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/urfave/cli/v2"

	"github.com/raftcache/raftcache/auth"
	"github.com/raftcache/raftcache/node"
)

// securityFlags are the node's TLS and token settings (docs/security.md).
func securityFlags() []cli.Flag {
	env := func(name string) []string { return []string{"RAFTCACHE_" + name} }
	return []cli.Flag{
		&cli.StringFlag{Name: "tls-cert", EnvVars: env("TLS_CERT"), Usage: "PEM certificate for the client-facing HTTP API (serves HTTPS)"},
		&cli.StringFlag{Name: "tls-key", EnvVars: env("TLS_KEY"), Usage: "PEM key for --tls-cert"},
		&cli.StringFlag{Name: "tls-ca", EnvVars: env("TLS_CA"), Usage: "CA (PEM) to verify other members' HTTPS certificates, for calls between members (default: system roots)"},
		&cli.StringFlag{Name: "tls-client-ca", EnvVars: env("TLS_CLIENT_CA"), Usage: "require client certificates signed by this CA (PEM)"},
		&cli.StringFlag{Name: "peer-cert", EnvVars: env("PEER_CERT"), Usage: "PEM certificate for mutual TLS between members on the Raft port"},
		&cli.StringFlag{Name: "peer-key", EnvVars: env("PEER_KEY"), Usage: "PEM key for --peer-cert"},
		&cli.StringFlag{Name: "peer-ca", EnvVars: env("PEER_CA"), Usage: "CA (PEM) that signs every member's --peer-cert; peers without one cannot join, vote or append"},
		&cli.StringFlag{Name: "join-token", EnvVars: env("JOIN_TOKEN"), Usage: "admin token to present when joining a cluster that has a token file"},
		&cli.StringFlag{Name: "join-ca", EnvVars: env("JOIN_CA"), Usage: "CA (PEM) of the members' HTTPS certificates, for joining over https:// (the node presents its --tls-cert to members that require client certificates)"},
		&cli.StringFlag{Name: "token-file", EnvVars: env("TOKEN_FILE"), Usage: "bearer tokens with roles, one `ROLE TOKEN [NAME]` per line; reloaded on SIGHUP"},
	}
}

// security is what the flags above configure.
type security struct {
	serverTLS *tls.Config // HTTP API; nil = plaintext
	peerTLS   *tls.Config // Raft transport; nil = plaintext
	peerHTTP  *tls.Config // client side of node-to-node HTTP calls
	auth      *auth.Tokens
}

func loadSecurity(c *cli.Context, logger hclog.Logger) (*security, error) {
	var s security
	var err error
	cert, key, clientCA := c.String("tls-cert"), c.String("tls-key"), c.String("tls-client-ca")
	if (cert == "") != (key == "") || (clientCA != "" && cert == "") {
		return nil, usagef("--tls-cert and --tls-key go together, and --tls-client-ca needs them")
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		s.serverTLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
		if clientCA != "" {
			pool, err := loadPool(clientCA)
			if err != nil {
				return nil, fmt.Errorf("--tls-client-ca: %w", err)
			}
			s.serverTLS.ClientCAs, s.serverTLS.ClientAuth = pool, tls.RequireAndVerifyClientCert
		}
		// Calls between members (cluster stats) verify the other member's
		// certificate and present this node's, in case members require
		// client certificates.
		s.peerHTTP = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
		if ca := c.String("tls-ca"); ca != "" {
			if s.peerHTTP.RootCAs, err = loadPool(ca); err != nil {
				return nil, fmt.Errorf("--tls-ca: %w", err)
			}
		}
	}
	pc, pk, pca := c.String("peer-cert"), c.String("peer-key"), c.String("peer-ca")
	switch {
	case pc != "" && pk != "" && pca != "":
		if s.peerTLS, err = node.PeerTLSConfig(pc, pk, pca); err != nil {
			return nil, err
		}
	case pc != "" || pk != "" || pca != "":
		return nil, usagef("--peer-cert, --peer-key and --peer-ca go together")
	default:
		if !loopbackAddr(c.String("raft-addr")) {
			logger.Warn("the Raft port is plaintext and unauthenticated on a non-loopback address: anyone who reaches it can join, vote and append; keep it on a private interface or set --peer-cert/--peer-key/--peer-ca",
				"raft_addr", c.String("raft-addr"))
		}
	}
	if tf := c.String("token-file"); tf != "" {
		if s.auth, err = auth.Load(tf); err != nil {
			return nil, err
		}
	}
	return &s, nil
}

// reloadTokensOnHUP re-reads the token file on SIGHUP until stop is closed.
func (s *security) reloadTokensOnHUP(logger hclog.Logger, stop <-chan struct{}) {
	if s.auth == nil {
		return
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-stop:
				return
			case <-hup:
				if err := s.auth.Reload(); err != nil {
					logger.Error("token file reload failed; old tokens stay in force", "error", err)
				} else {
					logger.Info("token file reloaded")
				}
			}
		}
	}()
}

func loadPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("no certificates in " + path)
	}
	return pool, nil
}
