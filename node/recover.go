package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/raftcache/raftcache/fsm"
)

// Disaster recovery: when a majority of the voters is lost for good, no
// leader can ever be elected again. Recover rewrites one survivor's data
// directory offline (hashicorp/raft's RecoverCluster, Consul's
// peers.json) so that its configuration lists it alone; started again, it
// elects itself and serves its data, and new members join it.
//
// The cost: every entry in the survivor's log becomes committed, including
// entries whose outcome was unknown when the quorum was lost (a write the
// client saw fail with "outcome unknown" may now be there), and entries
// the lost members committed but the survivor never received are gone.
// Recover also mints a new cluster id: the lost members, should they come
// back, are of the old cluster and are refused at the Raft handshake, so
// they cannot re-form the old quorum next to the recovered cluster.

// selfByIncarnation finds the member whose record carries this data
// directory's incarnation, replaying the log past the snapshot already
// restored into state; "" if none does (a cluster below level 2).
func selfByIncarnation(dataDir string, state *fsm.FSM, logs raft.LogStore, snaps raft.SnapshotStore) string {
	inc, err := os.ReadFile(filepath.Join(dataDir, incarnationFile))
	if err != nil {
		return ""
	}
	from := uint64(0)
	if ss, err := snaps.List(); err == nil && len(ss) > 0 {
		from = ss[0].Index
	}
	first, err1 := logs.FirstIndex()
	last, err2 := logs.LastIndex()
	if err1 != nil || err2 != nil {
		return ""
	}
	for i := max(from+1, first); i <= last && i > 0; i++ {
		var l raft.Log
		if logs.GetLog(i, &l) == nil && l.Type == raft.LogCommand {
			state.Apply(&l)
		}
	}
	for _, m := range state.MemberRecords() {
		if m.Incarnation != "" && m.Incarnation == strings.TrimSpace(string(inc)) {
			return m.ID
		}
	}
	return ""
}

// RecoverResult says what Recover did.
type RecoverResult struct {
	ID, RaftAddr        string
	Previous            []string // the voters of the configuration it replaced
	OldCluster          string   // "" if the directory had no cluster id
	NewCluster          string
	LastIndex, LastTerm uint64
}

// Recover makes the node id, at raftAddr ("" = the address the latest
// configuration lists for it), the only voter of the Raft state in dataDir.
// id "" picks the member whose record carries this directory's
// incarnation, else the configuration's only member, or hostname if listed. It
// refuses while a node holds the directory (ErrLocked), on a directory
// without Raft state, and for an id the configuration does not list.
func Recover(dataDir, id, raftAddr, hostname string, logger hclog.Logger) (RecoverResult, error) {
	var res RecoverResult
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if _, err := os.Stat(dataDir); err != nil {
		return res, fmt.Errorf("recover: %w", err)
	}
	lock, err := lockDir(dataDir)
	if err != nil {
		return res, fmt.Errorf("recover: %w", err)
	}
	defer lock.Close()
	store, err := openExisting(dataDir)
	if err != nil {
		return res, fmt.Errorf("recover: %w", err)
	}
	defer store.Close()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dataDir, 2, logger.Named("snapshots"))
	if err != nil {
		return res, fmt.Errorf("recover: snapshot store: %w", err)
	}
	if ok, err := raft.HasExistingState(store, store, snaps); err != nil || !ok {
		return res, errors.Join(errors.New("recover: the data directory holds no Raft state: nothing to recover"), err)
	}
	rc := raft.DefaultConfig()
	rc.Logger = logger.Named("raft")
	rc.LocalID = "recover"
	_, trans := raft.NewInmemTransport("")
	state := fsm.New(hclog.NewNullLogger())
	conf, err := raft.GetConfiguration(rc, state, store, store, snaps, trans) // restores the latest snapshot into state
	if err != nil {
		return res, fmt.Errorf("recover: read the configuration: %w", err)
	}
	if id == "" {
		id = selfByIncarnation(dataDir, state, store, snaps)
	}
	for _, s := range conf.Servers {
		if s.Suffrage == raft.Voter {
			res.Previous = append(res.Previous, string(s.ID))
		}
	}
	sort.Strings(res.Previous)
	var self *raft.Server
	for i, s := range conf.Servers {
		if string(s.ID) == id || (id == "" && (len(conf.Servers) == 1 || string(s.ID) == hostname)) {
			self = &conf.Servers[i]
		}
	}
	if self == nil {
		var ids []string
		for _, s := range conf.Servers {
			ids = append(ids, string(s.ID))
		}
		if id == "" {
			return res, fmt.Errorf("recover: give --id: this node's member id, one of %v", ids)
		}
		return res, fmt.Errorf("recover: the latest configuration does not list %q (it lists %v)", id, ids)
	}
	res.ID, res.RaftAddr = string(self.ID), string(self.Address)
	if raftAddr != "" {
		res.RaftAddr = raftAddr
	}
	if err := CheckAdvertisable(res.RaftAddr); err != nil {
		return res, fmt.Errorf("recover: %w", err)
	}
	if res.OldCluster, err = ReadClusterID(dataDir); err != nil {
		return res, fmt.Errorf("recover: %w", err)
	}
	// The founders list of a --bootstrap-expect formation (formation.go)
	// describes the old configuration: gone before that is rewritten, so
	// that no interrupted recovery leaves it served beside the new one.
	if err := removeSynced(filepath.Join(dataDir, foundersFile)); err != nil {
		return res, fmt.Errorf("recover: remove %s: %w", foundersFile, err)
	}
	rc.LocalID = raft.ServerID(res.ID)
	newConf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(res.ID), Address: raft.ServerAddress(res.RaftAddr)}}}
	if err := raft.RecoverCluster(rc, fsm.New(hclog.NewNullLogger()), store, store, snaps, trans, newConf); err != nil {
		return res, fmt.Errorf("recover: %w", err)
	}
	if ss, err := snaps.List(); err == nil && len(ss) > 0 {
		res.LastIndex, res.LastTerm = ss[0].Index, ss[0].Term
	}
	// Recovery takes what the survivor holds as the new cluster's whole
	// history, even if its log store was damaged (watermark.go): the mark
	// of the old history no longer applies.
	if err := removeSynced(filepath.Join(dataDir, watermarkFile)); err != nil {
		return res, fmt.Errorf("recover: remove %s: %w", watermarkFile, err)
	}
	// Nor does a hold after an unclean stop (catchup.go): there is no one
	// left to catch up with.
	if err := recordCleanStop(dataDir, store); err != nil {
		return res, fmt.Errorf("recover: %w", err)
	}
	// The survivor votes from now on, even if it was a learner that had
	// not been registered yet: it is the whole cluster.
	inc, err := loadIncarnation(dataDir)
	if err == nil {
		err = writeFileSynced(filepath.Join(dataDir, registeredFile), []byte(inc+"\n"))
	}
	if err != nil {
		return res, fmt.Errorf("recover: registration marker: %w", err)
	}
	res.NewCluster = NewClusterID()
	if err := WriteClusterID(dataDir, res.NewCluster); err != nil {
		return res, fmt.Errorf("recover: the configuration was rewritten but the new cluster id was not written (run recover again): %w", err)
	}
	return res, nil
}
