package node

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
)

// Advertised addresses. A listener's own address is what the node binds,
// not what others can dial: 0.0.0.0 or [::] (the container reflex) names
// every interface of whoever dials it, so a member registered under it
// sends clients and relays to themselves. Members therefore register an
// advertised address: given explicitly, or, for a wildcard bind, this
// host's name. Names stay names in member records and in Raft's
// configuration and are resolved each time they are dialled, so a pod
// that comes back with a new IP keeps its identity and its address.

// ErrUnadvertisable: an address other members cannot dial (a wildcard
// IP, an empty host or port 0) was given as an advertised address.
var ErrUnadvertisable = errors.New("address cannot be advertised")

// AdvertiseAddr is the address to register for a listener bound at bound
// (its actual address, so port 0 is resolved): advertise if given, else
// bound, with a wildcard host replaced by this host's name. The result is
// checked with CheckAdvertisable.
func AdvertiseAddr(bound, advertise string) (string, error) {
	if advertise != "" {
		return advertise, CheckAdvertisable(advertise)
	}
	host, port, err := net.SplitHostPort(bound)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrUnadvertisable, bound, err)
	}
	if host == "" || isWildcard(host) {
		name, err := os.Hostname()
		if err != nil || name == "" {
			return "", fmt.Errorf("%w: bound to %s and the host name is unknown (%v): give an advertise address", ErrUnadvertisable, bound, err)
		}
		bound = net.JoinHostPort(name, port)
	}
	return bound, CheckAdvertisable(bound)
}

// CheckAdvertisable refuses an address nobody else can dial: no host, a
// wildcard IP (0.0.0.0, ::) or a port outside 1 to 65535. Host names are
// not resolved here: they are resolved when dialled.
func CheckAdvertisable(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w: %q is not host:port: %v", ErrUnadvertisable, addr, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return fmt.Errorf("%w: %q needs a port from 1 to 65535", ErrUnadvertisable, addr)
	}
	if host == "" || isWildcard(host) {
		return fmt.Errorf("%w: %q is a wildcard address that names every host; give a DNS name or a specific IP (the --*-advertise flags)", ErrUnadvertisable, addr)
	}
	return nil
}

func isWildcard(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// nameAddr is an advertised address kept as given (a name is not
// resolved): Raft's configuration records its String().
type nameAddr string

func (a nameAddr) Network() string { return "tcp" }
func (a nameAddr) String() string  { return string(a) }
